"""Data-parallel PyTorch: join a ``torchrun`` launch, and launch one from a notebook. Plumbing only.

The framework calls (``torch.distributed.init_process_group``, ``DistributedDataParallel``, ``DistributedSampler``)
are what lesson 06 writes out; these helpers wrap them with the course's checks and messages. ``fit`` works inside
a launch by itself (it wraps the model in DDP and shards the data when a process group is initialised).

Backend and device (see :func:`transfer_course.distributed.select_backend`): NCCL with one process per GPU
(``cuda:LOCAL_RANK``) when CUDA is there, gloo on the CPU otherwise. A short ``timeout`` makes the survivors of a
dead rank stop with an error instead of waiting for it forever.
"""
from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch
import torch.distributed as dist

from ..distributed import (
    LaunchInfo,
    launch_info,
    select_backend,
    single_process_message,
)

__all__ = ["all_reduce_mean", "cleanup_distributed", "launch", "setup_distributed", "world_info"]


def setup_distributed(timeout: float = 60.0, backend: str | None = None, verbose: bool = True) -> tuple[LaunchInfo, torch.device]:
    """Join the launch this process belongs to (``init_process_group``) and return ``(info, device)``.

    Without ``torchrun``'s variables the script runs as one process and says so. ``timeout`` (seconds) bounds how
    long a collective waits for a missing rank."""
    info = launch_info()
    chosen, device = select_backend(torch.cuda.is_available(), torch.cuda.device_count(), info.local_rank)
    backend = backend or chosen
    if not info.launched or info.world_size == 1:
        if verbose and not info.launched:
            print(single_process_message("torch"), flush=True)
        return info, torch.device(device)
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)  # one process per GPU: this rank's GPU, before any CUDA work
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                                timeout=datetime.timedelta(seconds=timeout))
    return info, torch.device(device)


def cleanup_distributed() -> None:
    """Leave the process group (call at the end of a script, in every rank). The ranks wait for each other first: a
    rank that takes its end of the group down while another still finishes its work (rank 0 writing files) can be
    aborted by gloo ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over all ranks (what DDP does to gradients); unchanged in one process."""
    _, world = world_info()
    if world == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world


def launch(script: str | Path, nproc: int = 2, args=(), timeout: float = 600, env=None,
           echo: bool = True) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc_per_node=nproc script args`` (as ``python -m torch.distributed.run``, so
    it uses this Python) and return the finished process; its output is printed as it comes when ``echo``.

    Raises ``RuntimeError`` with the output's end when the run fails, ``subprocess.TimeoutExpired`` after ``timeout``."""
    if nproc < 1:
        raise ValueError(f"nproc={nproc}: start at least one process.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script),
           *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # its own process group: a timeout stops every rank
    killed, lines = [], []
    timer = threading.Timer(timeout, lambda: (killed.append(True), os.killpg(proc.pid, signal.SIGKILL)))  # a hung run is stopped, not waited for
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)
        proc.wait()
    finally:
        timer.cancel()
    out = "".join(lines)
    if killed:
        raise subprocess.TimeoutExpired(cmd, timeout, out)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with {proc.returncode}:\n{out[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")
