"""Where PyTorch runs and in which precision. Nothing here runs at import time.

Device order: an explicit choice, else CUDA, else Apple MPS, else CPU. Precision is one validated
value: ``fp32`` (no autocast), ``bf16`` (autocast to bfloat16, CUDA with bf16 support or CPU) or
``fp16`` (autocast to float16 with a gradient scaler, CUDA only). Unsupported combinations are
refused with a message instead of silently doing something else.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import random

import numpy as np
import torch

from ..precision import validate_precision

__all__ = ["get_device", "describe_devices", "Precision", "resolve_precision", "seed_everything"]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``device`` if given (validated), else cuda → mps → cpu."""
    if device is not None:
        if not isinstance(device, (str, torch.device)):
            raise TypeError(f"device must be a string such as 'cuda', 'cuda:1', 'mps' or 'cpu' (or None to choose); "
                            f"received {device!r}.")
        try:
            dev = torch.device(device.strip().lstrip("/").lower() if isinstance(device, str) else device)
        except RuntimeError:
            hint = " (TensorFlow's '/GPU:0' is 'cuda:0' in PyTorch)" if "gpu" in str(device).lower() else ""
            raise ValueError(f"device={device!r} is not a PyTorch device name{hint}. Use 'cuda', 'cuda:1', 'mps', 'cpu', "
                             "or None to let the course choose.") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"Asked for device {device!r} but PyTorch sees no CUDA GPU. Use 'cpu', or install a CUDA build of torch.")
        if dev.type == "mps" and not _mps_available():
            raise ValueError(f"Asked for device {device!r} but Apple MPS is not available here. Use 'cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def describe_devices() -> dict:
    """What PyTorch sees: version, CUDA GPUs (name, memory), MPS, CPU threads."""
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                         "capability": f"{props.major}.{props.minor}"})
    return {"framework": "torch", "version": torch.__version__, "cuda_build": torch.version.cuda,
            "gpus": gpus, "mps": _mps_available(), "cpu_threads": torch.get_num_threads(),
            "default_device": str(get_device())}


@dataclasses.dataclass
class Precision:
    """A resolved precision: use ``with p.autocast():`` around the forward pass and ``p.scaler`` if not None."""

    name: str
    device: torch.device
    dtype: torch.dtype
    scaler: "torch.amp.GradScaler | None"

    def autocast(self):
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def resolve_precision(precision: str = "fp32", device: str | torch.device | None = None) -> Precision:
    """Validate ``precision`` for ``device`` and return the autocast dtype and gradient scaler to use."""
    name = validate_precision(precision)
    dev = get_device(device)
    if name == "fp32":
        return Precision(name, dev, torch.float32, None)
    if name == "fp16":
        if dev.type == "cuda":
            return Precision(name, dev, torch.float16, torch.amp.GradScaler("cuda"))
        if dev.type == "mps":
            return Precision(name, dev, torch.float16, None)
        raise ValueError("precision='fp16' needs a CUDA or MPS GPU; on this CPU use 'bf16' or 'fp32'.")
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision='bf16' is not supported by {torch.cuda.get_device_name(dev)}; use 'fp16' or 'fp32'.")
    if dev.type == "mps":
        raise ValueError("precision='bf16' is not supported on Apple MPS; use 'fp16' or 'fp32'.")
    return Precision(name, dev, torch.bfloat16, None)


def seed_everything(seed: int = 0, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch; with ``deterministic`` ask for reproducible kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
