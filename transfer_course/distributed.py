"""Data-parallel training, the framework-neutral part: who am I in a launch, which samples are mine, which rate.

Data parallelism (Goyal et al. 2017, *Accurate, Large Minibatch SGD*; Li et al. 2020, *PyTorch Distributed*):
``W`` processes ("ranks") each hold a full copy of the model. Every step, rank ``r`` takes its own batch of ``b``
samples, computes the gradient ``g_r`` of its mean loss, and an all-reduce replaces every ``g_r`` by the average
``g = (g_0 + ... + g_{W-1}) / W``. With equal batches that is exactly the gradient of the mean loss over the
``B = W · b`` samples of the step (the effective batch), so all copies take the same step and stay identical.

The linear scaling rule: when the effective batch grows from ``B0`` to ``B``, scale the learning rate by ``B / B0``
(with a warm-up for large factors); the square-root rule ``sqrt(B / B0)`` is the cautious alternative for Adam.

Sharding (what ``torch.utils.data.DistributedSampler`` does): the ``N`` indices (shuffled with ``seed + epoch`` when
asked) are padded by repeating the first ones up to ``W · ceil(N / W)`` (or cut to ``W · floor(N / W)`` with
``drop_last``), and rank ``r`` takes every ``W``-th index starting at ``r``: ``indices[r::W]``. Each rank gets the same
number of samples, so every rank runs the same number of steps (a rank with one step more would wait forever for
the others in the all-reduce).

A launcher tells each process its place: ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``; TensorFlow reads ``TF_CONFIG`` (JSON: the cluster's ``worker`` addresses and this
process's ``task``). This module reads and checks both and imports no framework.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket

import numpy as np

__all__ = [
    "DistributedError",
    "LaunchInfo",
    "TFConfig",
    "check_shardable",
    "free_port",
    "launch_info",
    "parse_tf_config",
    "scale_learning_rate",
    "select_backend",
    "select_strategy",
    "shard_indices",
    "shard_sizes",
    "single_process_message",
]


class DistributedError(RuntimeError):
    """A distributed run cannot go on (another process died, or did not arrive in time)."""


@dataclasses.dataclass(frozen=True)
class LaunchInfo:
    """This process's place in a launch: ``launched`` is False for a plain ``python script.py`` run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    launched: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _int_var(env, name) -> int:
    text = env[name]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"${name}={text!r} is not a whole number; a launcher such as torchrun sets it "
                         "(unset it to run as one process).") from None


def launch_info(env=None) -> LaunchInfo:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` (as torchrun sets them).

    Without them: one process (``launched=False``). Inconsistent values raise ``ValueError`` naming the variable."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return LaunchInfo()
    missing = [k for k in ("RANK", "WORLD_SIZE") if k not in env]
    if missing:
        raise ValueError(f"${missing[0]} is not set but {'$RANK' if missing[0] == 'WORLD_SIZE' else '$WORLD_SIZE'} is: "
                         "a launcher sets both. Launch with torchrun, or unset both to run as one process.")
    rank, world = _int_var(env, "RANK"), _int_var(env, "WORLD_SIZE")
    local = _int_var(env, "LOCAL_RANK") if "LOCAL_RANK" in env else rank
    if world < 1:
        raise ValueError(f"$WORLD_SIZE={world}: the number of processes must be at least 1.")
    if not 0 <= rank < world:
        raise ValueError(f"$RANK={rank} is outside 0..{world - 1} ($WORLD_SIZE={world}).")
    port = _int_var(env, "MASTER_PORT") if "MASTER_PORT" in env else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"$MASTER_PORT={port} is not a TCP port (1..65535).")
    if world > 1 and "MASTER_ADDR" not in env:
        raise ValueError("$MASTER_ADDR is not set: the processes need the address of rank 0 to meet there "
                         "(torchrun sets it; by hand: MASTER_ADDR=localhost MASTER_PORT=<free port>).")
    return LaunchInfo(rank, world, local, env.get("MASTER_ADDR"), port, launched=True)


@dataclasses.dataclass(frozen=True)
class TFConfig:
    """A checked ``TF_CONFIG``: the workers' ``host:port`` addresses and this task's index among them."""

    workers: tuple
    task_type: str
    task_index: int

    @property
    def world_size(self) -> int:
        return len(self.workers)

    @property
    def rank(self) -> int:
        return self.task_index

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0)


def parse_tf_config(text: str | dict | None = None) -> TFConfig | None:
    """Parse and check ``TF_CONFIG`` (``None`` reads ``$TF_CONFIG``; unset or empty gives ``None``: one process).

    Expected: ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``
    (a ``"chief"`` list of one address may come first)."""
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if isinstance(text, str):
        if not text.strip():
            return None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON ({exc.msg} at character {exc.pos}): {text[:120]!r}. "
                             'Expected {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                             '"index": 0}}.') from None
    else:
        config = text
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError('TF_CONFIG needs a "cluster" object, e.g. {"worker": ["localhost:12345", "localhost:12346"]}.')  # noqa: TRY004
    cluster = config["cluster"]
    chief, workers = list(cluster.get("chief", [])), cluster.get("worker", [])
    if not isinstance(workers, list) or not (workers or chief):
        raise ValueError('TF_CONFIG\'s cluster needs a "worker" list of "host:port" addresses.')
    if len(chief) > 1:
        raise ValueError(f'TF_CONFIG lists {len(chief)} chiefs; a cluster has at most one ("chief": ["host:port"]).')
    addresses = chief + list(workers)
    for address in addresses:
        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"TF_CONFIG address {address!r} is not 'host:port' (e.g. 'localhost:12345').")
    if len(set(addresses)) != len(addresses):
        raise ValueError(f"TF_CONFIG lists the same address twice ({addresses}): each task needs a port of its own.")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError('TF_CONFIG needs a "task": {"type": "worker", "index": i} saying which address is this process.')
    kind, index = task["type"], task["index"]
    if kind not in ("worker", "chief"):
        raise ValueError(f"TF_CONFIG task type {kind!r}: this course runs 'worker' (and 'chief') tasks only.")
    group = workers if kind == "worker" else chief
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(group):
        raise ValueError(f"TF_CONFIG task index {index!r} is outside the {len(group)} {kind} address(es) of the cluster.")
    return TFConfig(tuple(addresses), kind, index + (len(chief) if kind == "worker" else 0))


def check_shardable(num_samples: int, world_size: int, batch_size: int | None = None, global_batch: bool = False) -> None:
    """Raise ``ValueError`` when ``world_size`` ranks cannot share ``num_samples`` sensibly.

    ``batch_size`` is per rank, or the global batch split over the ranks when ``global_batch`` (TensorFlow's way)."""
    if world_size < 1:
        raise ValueError(f"world_size={world_size}: there must be at least one process.")
    if num_samples < world_size:
        raise ValueError(f"{num_samples} samples cannot be shared by {world_size} processes: some would get only "
                         "padding copies of other processes' samples. Use fewer processes or more data.")
    if batch_size is not None and global_batch and batch_size < world_size:
        raise ValueError(f"A global batch of {batch_size} split over {world_size} processes gives "
                         f"{batch_size // world_size} samples per process. Make the batch at least {world_size} "
                         f"(a multiple of {world_size}).")


def shard_sizes(num_samples: int, world_size: int, drop_last: bool = False) -> int:
    """Samples per rank: ``ceil(N / W)`` with padding, ``floor(N / W)`` with ``drop_last``."""
    return num_samples // world_size if drop_last else math.ceil(num_samples / world_size)


def shard_indices(num_samples: int, rank: int, world_size: int, drop_last: bool = False, order=None) -> np.ndarray:
    """The indices rank ``rank`` sees in one epoch, as ``DistributedSampler`` chooses them.

    ``order`` is the epoch's permutation of ``range(num_samples)`` (the identity when ``None``)."""
    check_shardable(num_samples, world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} is outside 0..{world_size - 1}.")
    indices = np.arange(num_samples) if order is None else np.asarray(order)
    per_rank = shard_sizes(num_samples, world_size, drop_last)
    total = per_rank * world_size
    if drop_last:
        indices = indices[:total]
    else:
        indices = np.resize(indices, total)  # pads by repeating from the start (several times if needed)
    return indices[rank:total:world_size]


_RULES = ("linear", "sqrt", "none")


def scale_learning_rate(lr: float, world_size: int, rule: str = "linear") -> float:
    """The learning rate for ``world_size`` ranks of the same per-rank batch (effective batch ``world_size`` times
    larger): ``linear`` multiplies by ``world_size`` (Goyal et al. 2017), ``sqrt`` by its square root, ``none`` keeps it."""
    if rule not in _RULES:
        raise ValueError(f"rule={rule!r}; choose one of {', '.join(_RULES)}.")
    if world_size < 1:
        raise ValueError(f"world_size={world_size}: there must be at least one process.")
    return float(lr * {"linear": world_size, "sqrt": math.sqrt(world_size), "none": 1}[rule])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port no one listens on now (the system picks it), for a launch on this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def single_process_message(framework: str) -> str:
    """What a distributed script says when it was started without a launcher."""
    how = ("torchrun --standalone --nproc_per_node=N script.py" if framework == "torch"
           else "one process per worker, each with TF_CONFIG set")
    return f"Not launched by {'torchrun' if framework == 'torch' else 'TF_CONFIG'}: running as one process. To use N processes: {how}."


def select_backend(cuda_available: bool, gpus: int = 0, local_rank: int = 0) -> tuple[str, str]:
    """PyTorch's process-group backend and this rank's device: NCCL and ``cuda:LOCAL_RANK`` (one process per GPU)
    when CUDA is there, else gloo on the CPU."""
    if cuda_available and gpus > 0:
        if local_rank >= gpus:
            raise ValueError(f"LOCAL_RANK={local_rank} but this machine has {gpus} GPU(s): start at most one process "
                             f"per GPU (--nproc_per_node={gpus}).")
        return "nccl", f"cuda:{local_rank}"
    return "gloo", "cpu"


def select_strategy(gpus: int, tf_config: TFConfig | None) -> str:
    """Which ``tf.distribute`` strategy fits: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several
    workers, ``MirroredStrategy`` for several GPUs in one process, else ``OneDeviceStrategy``."""
    if tf_config is not None and tf_config.world_size > 1:
        return "MultiWorkerMirroredStrategy"
    if gpus > 1:
        return "MirroredStrategy"
    return "OneDeviceStrategy"
