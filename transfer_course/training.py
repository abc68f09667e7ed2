"""What both frameworks' training loops share: the learning-curve record, early stopping, schedules,
and the checks that turn bad arguments into clear errors before any work is done."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from .errors import choices_message

__all__ = ["History", "EarlyStopper", "SCHEDULES", "lr_factor", "check_lr", "check_fit_args", "fingerprint",
           "CheckpointMismatchError", "check_finite_inputs", "check_finite_loss", "phase_checkpoint", "feature_cache_key", "read_feature_cache", "write_feature_cache"]

SCHEDULES = ("constant", "cosine", "warmup_cosine")


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a different model (other layers, shapes or classes)."""


class History:
    """One dict of metrics per epoch (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``).

    ``history["val_accuracy"]`` is that metric's list over epochs; ``history.plot()`` draws the curves.
    """

    def __init__(self, epochs=None):
        self.epochs: list[dict] = [dict(e) for e in (epochs or [])]

    def append(self, logs: dict) -> None:
        self.epochs.append({k: float(v) for k, v in logs.items()})

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, metric: str) -> list[float]:
        if not self.epochs or metric not in self.epochs[-1]:
            raise KeyError(choices_message("metric", metric, self.metrics))
        return [e.get(metric, float("nan")) for e in self.epochs]

    @property
    def metrics(self) -> list[str]:
        return sorted({k for e in self.epochs for k in e})

    def last(self, metric: str) -> float:
        return self[metric][-1]

    def best(self, metric: str = "val_accuracy") -> float:
        values = self[metric]
        return float(min(values) if "loss" in metric else max(values))

    def __add__(self, other: "History") -> "History":
        """Two phases (e.g. frozen, then fine-tuned) as one history."""
        return History(self.epochs + other.epochs)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        return cls(data["epochs"])

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v:.4g}" for k, v in (self.epochs[-1] if self.epochs else {}).items())
        return f"History({len(self)} epochs; last: {last})"

    def plot(self, title: str | None = None, phases=None):
        """Loss and accuracy curves, train vs validation; ``phases`` marks where a new phase began."""
        from .plots import plot_history

        return plot_history(self, title=title, phases=phases)


@dataclasses.dataclass
class EarlyStopper:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = -1
    wait: int = 0

    @property
    def lower_is_better(self) -> bool:
        return "loss" in self.monitor

    def update(self, epoch: int, logs: dict) -> tuple[bool, bool]:
        """Record ``logs``; return ``(improved, should_stop)``."""
        if self.monitor not in logs:
            raise ValueError(f"Early stopping monitors {self.monitor!r}, but the epoch logs have {sorted(logs)}. "
                             "Pass validation data, or monitor a training metric such as 'loss'.")
        value = logs[self.monitor]
        sign = -1 if self.lower_is_better else 1
        improved = self.best is None or sign * (value - self.best) > self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        return improved, self.wait >= self.patience

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)


def lr_factor(step: int, total_steps: int, schedule: str = "constant", warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at optimizer ``step`` (0-based) of ``total_steps``."""
    if schedule == "constant":
        return 1.0
    if schedule == "warmup_cosine" and step < warmup_steps:
        return (step + 1) / warmup_steps
    start = warmup_steps if schedule == "warmup_cosine" else 0
    progress = min(1.0, (step - start) / max(1, total_steps - start))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def check_lr(lr, name: str = "lr") -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{name} must be a positive number (typical: 1e-3 for a new head, 1e-4 or less for "
                         f"pretrained layers); received {lr!r}.")
    return float(lr)


def check_finite_inputs(data, what: str = "training") -> None:
    """Refuse ``(x, y)`` arrays whose inputs hold NaN or infinite values: one of them turns every weight into NaN."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        return  # a loader or dataset: the loss check in fit catches it after the first epoch
    x = np.asarray(data[0]) if not hasattr(data[0], "numpy") else np.asarray(data[0].numpy())
    if np.issubdtype(x.dtype, np.floating) and x.size:
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise ValueError(f"The {what} inputs hold NaN or infinite values in {int(bad.sum())} of {len(x)} samples "
                             f"(the first is sample {int(np.flatnonzero(bad)[0])}); training on them would turn every "
                             "weight into NaN. Drop or repair those samples first, e.g. keep = np.isfinite(x).reshape("
                             "len(x), -1).all(axis=1); x, y = x[keep], y[keep].")


def check_finite_loss(loss: float, epoch: int) -> None:
    """Stop training as soon as the loss is no longer a number, with the usual causes."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"The training loss became {loss} in epoch {epoch}, so the weights are no longer "
                                 "numbers and further training cannot recover. Usual causes: NaN or infinite values in "
                                 "the inputs (check np.isfinite on a batch), a learning rate far too large (try 10x "
                                 "smaller), or float16 training without loss scaling.")


def check_fit_args(epochs, lr, backbone_lr=None, schedule="constant", clip_grad_norm=None, num_train=None) -> None:
    """Validate ``fit``'s arguments (both frameworks) before any work is done."""
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; received {epochs!r}.")
    check_lr(lr)
    if backbone_lr is not None:
        check_lr(backbone_lr, "backbone_lr")
    if schedule not in SCHEDULES:
        raise ValueError(choices_message("learning-rate schedule", schedule, SCHEDULES))
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be a positive number or None; received {clip_grad_norm!r}.")
    if num_train == 0:
        raise ValueError("The training data is empty: there is nothing to learn from. Check the train/ folder "
                         "(one sub-folder of images per class) or the arrays passed to fit.")


def fingerprint(named_shapes, class_names=None) -> str:
    """A short hash of a model's parameter names and shapes (and class names): checkpoints carry it so
    that resuming into a different model is refused."""
    payload = json.dumps([[str(n), list(map(int, s))] for n, s in named_shapes] + [list(class_names or [])])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def phase_checkpoint(checkpoint, phase: str):
    """The checkpoint path of one phase of ``fine_tune`` (``None`` when not checkpointing)."""
    return Path(f"{checkpoint}.{phase}") if checkpoint else None


def feature_cache_key(spec_name: str, weight_sum: float, image_size, folder=None, count: int | None = None) -> str:
    """What cached features depend on: the backbone (its name and the sum of its weights), the image size
    and the files (or, for in-memory data, their number)."""
    files = [str(p) for p in folder.paths] if folder is not None else [count]
    return fingerprint([(f"{spec_name}:{weight_sum:.6e}:{image_size or ''}", [])], files)


def read_feature_cache(path, key: str):
    """``(features, labels)`` saved at ``path`` under ``key``, or ``None`` when absent or made otherwise."""
    if path is None or not Path(path).exists():
        return None
    saved = np.load(path, allow_pickle=False)
    return (saved["features"], saved["labels"]) if str(saved["key"]) == key else None


def write_feature_cache(path, key: str, features: np.ndarray, labels: np.ndarray) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=features, labels=labels, key=key)
