"""Data-parallel TensorFlow: join a ``TF_CONFIG`` launch, and launch one from a notebook. Plumbing only.

The framework calls (``tf.distribute.MultiWorkerMirroredStrategy``, ``strategy.scope()``,
``strategy.distribute_datasets_from_function`` / ``experimental_distribute_dataset``, ``strategy.run``) are what
lesson 06 writes out; these helpers wrap them with the course's checks and messages.

Which strategy (see :func:`transfer_course.distributed.select_strategy`): ``MultiWorkerMirroredStrategy`` when
``TF_CONFIG`` names several workers (one process per machine, or per GPU, all running the same script),
``MirroredStrategy`` for several GPUs driven by one process, else ``OneDeviceStrategy``. What the user does in
``strategy.scope()``: build the model (its variables become mirrored, the same on every replica, initialised from
the chief). ``fit(..., strategy=strategy)`` then compiles in that scope, splits each global batch over the
replicas, and averages the gradients.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import tensorflow as tf

from ..distributed import (
    LaunchInfo,
    free_port,
    parse_tf_config,
    select_strategy,
    single_process_message,
)

__all__ = [
    "all_reduce_mean",
    "cleanup_distributed",
    "launch",
    "make_strategy",
    "setup_distributed",
    "tf_config_for",
    "world_info",
]


def make_strategy(kind: str, timeout: float = 60.0) -> tf.distribute.Strategy:
    """The strategy called ``kind`` (as :func:`select_strategy` names it). ``timeout`` (seconds) bounds how long a
    multi-worker collective waits for a missing worker."""
    if kind == "MultiWorkerMirroredStrategy":
        gpus = tf.config.list_physical_devices("GPU")
        implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL if gpus
                          else tf.distribute.experimental.CommunicationImplementation.RING)
        options = tf.distribute.experimental.CommunicationOptions(implementation=implementation, timeout_seconds=timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if kind == "MirroredStrategy":
        return tf.distribute.MirroredStrategy()  # all local GPUs, NCCL all-reduce between them
    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.OneDeviceStrategy("/GPU:0" if gpus else "/CPU:0")


def setup_distributed(timeout: float = 60.0, verbose: bool = True) -> tuple[LaunchInfo, tf.distribute.Strategy]:
    """Read ``TF_CONFIG`` (checked), create the matching strategy, and return ``(info, strategy)``.

    Call it first, before any other TensorFlow work (a multi-worker strategy must start before TensorFlow does).
    Without ``TF_CONFIG`` the script runs as one process and says so."""
    config = parse_tf_config()
    kind = select_strategy(len(tf.config.list_physical_devices("GPU")), config)
    if config is None and verbose:
        print(single_process_message("tensorflow"), flush=True)
    strategy = make_strategy(kind, timeout)
    if config is None or config.world_size == 1:
        return LaunchInfo(), strategy
    host, _, port = config.workers[0].rpartition(":")
    return LaunchInfo(config.rank, config.world_size, 0, host, int(port), launched=True), strategy


def cleanup_distributed() -> None:
    """Nothing to release in TensorFlow (the same name as PyTorch's side, for scripts that run on both)."""


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of this process from ``TF_CONFIG``; ``(0, 1)`` without it."""
    config = parse_tf_config()
    return (0, 1) if config is None else (config.rank, config.world_size)


def all_reduce_mean(value, strategy: tf.distribute.Strategy | None = None):
    """The mean of ``value`` over all replicas (what the strategy does to gradients); unchanged in one replica."""
    strategy = strategy or tf.distribute.get_strategy()
    if strategy.num_replicas_in_sync == 1:
        return tf.convert_to_tensor(value)
    value = tf.convert_to_tensor(value)

    @tf.function
    def mean():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("MEAN", value))

    return strategy.experimental_local_results(mean())[0]


# TensorFlow's C++ start-up lines, written before its logging reads TF_CPP_MIN_LOG_LEVEL: kept in the output, not echoed
_STARTUP_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog|[IW]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]")


def tf_config_for(rank: int, ports) -> str:
    """The ``TF_CONFIG`` of worker ``rank`` in a cluster on this machine listening on ``ports``."""
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": rank}})


def launch(script: str | Path, nproc: int = 2, args=(), timeout: float = 600, env=None,
           echo: bool = True) -> subprocess.CompletedProcess:
    """Start ``nproc`` workers of ``script`` on this machine, each with its ``TF_CONFIG`` (free ports), and wait.

    Worker 0's output is printed as it comes (``echo``); the others' is kept. When one worker fails, the others are
    stopped (a multi-worker run cannot go on without it) and ``RuntimeError`` shows each one's last lines;
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
    if nproc < 1:
        raise ValueError(f"nproc={nproc}: start at least one worker.")
    ports = [free_port() for _ in range(nproc)]
    while len(set(ports)) < nproc:
        ports = [free_port() for _ in range(nproc)]
    base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), **(env or {})}
    logs = [tempfile.TemporaryFile("w+") for _ in range(nproc)]  # noqa: SIM115 - closed below, after the workers end
    procs = []
    for rank in range(nproc):
        worker_env = ({**base, "TF_CONFIG": tf_config_for(rank, ports)} if nproc > 1
                      else {k: v for k, v in base.items() if k != "TF_CONFIG"})  # one process: no cluster
        procs.append(subprocess.Popen([sys.executable, str(script), *map(str, args)], env=worker_env, text=True,
                                      stdout=subprocess.PIPE if rank == 0 else logs[rank], stderr=subprocess.STDOUT))
    lines = []

    def read():
        for line in procs[0].stdout:
            lines.append(line)
            if echo and not _STARTUP_NOISE.match(line):
                print(line, end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline, failed = time.monotonic() + timeout, None
    while any(p.poll() is None for p in procs):
        failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
        if failed is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    reader.join(timeout=5)
    outputs = ["".join(lines)]
    for log in logs[1:]:
        log.seek(0)
        outputs.append(log.read())
    for log in logs:
        log.close()
    if failed is None and time.monotonic() > deadline and any(p.returncode not in (0,) for p in procs):
        raise subprocess.TimeoutExpired([str(script)], timeout, outputs[0])
    codes = [p.returncode for p in procs]
    if any(codes):
        tails = "\n".join(f"--- worker {i} (exit {c}):\n{o[-1500:]}" for i, (c, o) in enumerate(zip(codes, outputs)))
        raise RuntimeError(f"worker {failed if failed is not None else codes.index(next(c for c in codes if c))} failed; "
                           f"the others were stopped.\n{tails}")
    return subprocess.CompletedProcess([str(script)], 0, outputs[0], "\n".join(outputs[1:]))
