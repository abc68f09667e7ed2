"""Where TensorFlow runs and in which precision. Nothing here runs at import time.

GPUs are listed (and memory growth switched on, so TensorFlow does not grab all GPU memory at
start), a Keras mixed-precision policy follows one validated value (``fp32``, ``bf16``, ``fp16``),
and :func:`get_strategy` picks a distribution strategy for the devices present.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from ..precision import validate_precision

__all__ = ["get_device", "check_device", "describe_devices", "configure_gpus", "Precision", "resolve_precision",
           "get_strategy", "seed_everything"]

_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def configure_gpus(memory_growth: bool = True) -> list:
    """List the GPUs TensorFlow sees; turn on memory growth (must run before the GPUs are first used)."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, memory_growth)
        except RuntimeError:  # already initialised: the setting can no longer change, which is harmless
            pass
    return gpus


def get_device() -> str:
    """``/GPU:0`` when TensorFlow sees a GPU, else ``/CPU:0``."""
    return "/GPU:0" if configure_gpus() else "/CPU:0"


def check_device(device) -> str | None:
    """A TensorFlow device string for ``device`` (``None`` lets TensorFlow place the work).

    Accepts ``"cpu"``, ``"gpu"``, ``"GPU:1"``, ``"/GPU:0"``, ``"/device:CPU:0"``; names that belong to PyTorch
    (``"cuda"``, ``"cuda:0"``, ``"mps"``) and GPUs this machine does not have get an error saying what to pass.
    """
    import re

    if device is None:
        return None
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as '/GPU:0' or '/CPU:0' (or None); received {device!r}.")
    text = device.strip()
    if re.fullmatch(r"(?i)cuda(:\d+)?|mps", text):
        index = text.split(":")[1] if ":" in text else "0"
        hint = f"'/GPU:{index}'" if text.lower().startswith("cuda") else "'/GPU:0' (TensorFlow on Apple GPUs uses tensorflow-metal)"
        raise ValueError(f"device={device!r} is PyTorch's name; TensorFlow calls it {hint}.")
    m = re.fullmatch(r"(?i)/?(?:job:\w+/(?:replica:\d+/)?(?:task:\d+/)?)?(?:device:)?(cpu|gpu)(?::(\d+))?", text)
    if not m:
        raise ValueError(f"device={device!r} is not a TensorFlow device name. Use '/CPU:0', '/GPU:0' (or 'cpu', 'gpu'); "
                         "the available ones: " + ", ".join(d.name for d in tf.config.list_logical_devices()) + ".")
    kind, index = m.group(1).upper(), int(m.group(2) or 0)
    if kind == "GPU":
        count = len(configure_gpus())
        if index >= count:
            raise ValueError(f"device={device!r}: TensorFlow sees {count} GPU(s) here"
                             + (f", numbered 0..{count - 1}." if count else "; use '/CPU:0' or None.")
                             + " On Colab, choose a GPU runtime (Runtime > Change runtime type).")
    return f"/{kind}:{index}"


def describe_devices() -> dict:
    gpus = []
    for gpu in configure_gpus():
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append({"name": details.get("device_name", gpu.name), "capability": details.get("compute_capability")})
    return {"framework": "tensorflow", "version": tf.__version__, "keras": keras.__version__,
            "cuda_build": tf.test.is_built_with_cuda(), "gpus": gpus, "mps": False,
            "default_device": get_device()}


@dataclasses.dataclass
class Precision:
    """A resolved precision: ``policy`` is the Keras mixed-precision policy now in force."""

    name: str
    policy: str


def resolve_precision(precision: str = "fp32") -> Precision:
    """Validate ``precision`` and set Keras' global dtype policy (build models after this call).

    ``fp16`` needs a GPU; Keras then wraps the optimizer in a loss-scale optimizer at ``compile``.
    """
    name = validate_precision(precision)
    if name == "fp16" and not configure_gpus():
        raise ValueError("precision='fp16' needs a GPU; on this CPU use 'bf16' or 'fp32'.")
    policy = _POLICIES[name]
    keras.mixed_precision.set_global_policy(policy)
    return Precision(name, policy)


def get_strategy() -> tf.distribute.Strategy:
    """``MirroredStrategy`` over several GPUs, ``OneDeviceStrategy`` on one GPU or on the CPU."""
    gpus = configure_gpus()
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy("/GPU:0" if gpus else "/CPU:0")


def seed_everything(seed: int = 0, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic`` ask for reproducible ops."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
