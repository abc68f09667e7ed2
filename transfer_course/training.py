"""What both frameworks' training loops share: the learning-curve record, early stopping, schedules,
and the checks that turn bad arguments into clear errors before any work is done."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import json
import math
from pathlib import Path

import numpy as np

from .errors import choices_message

__all__ = ["History", "EarlyStopper", "SCHEDULES", "lr_factor", "check_lr", "check_fit_args", "fingerprint",
           "CheckpointMismatchError", "check_finite_inputs", "check_finite_loss", "phase_checkpoint", "Digest",
           "folder_digest", "feature_cache_key", "read_feature_cache", "write_feature_cache", "OPTIMIZERS",
           "check_batch_size", "check_checkpoint_path", "class_indices", "as_float_inputs"]

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
    x = data[0]
    if hasattr(x, "detach"):  # a torch tensor, perhaps on a GPU or requiring grad
        x = x.detach().cpu()
    x = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
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


OPTIMIZERS = ("adamw", "adam", "sgd")


def check_fit_args(epochs, lr, backbone_lr=None, schedule="constant", clip_grad_norm=None, num_train=None,
                   optimizer="adamw", batch_size=32, weight_decay=0.0, warmup_epochs=0) -> None:
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
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(choices_message("optimizer", optimizer, OPTIMIZERS) + " Pass its name as a string; for "
                         "another optimizer, write the training loop yourself (lessons 02 and 03 show how).")
    check_batch_size(batch_size)
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float, np.floating)) \
            or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0 (typical: 0 to 0.05); received {weight_decay!r}.")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, np.integer)) or not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be an integer from 0 to epochs ({epochs}); received {warmup_epochs!r}.")
    if num_train == 0:
        raise ValueError("The training data is empty: there is nothing to learn from. Check the train/ folder "
                         "(one sub-folder of images per class) or the arrays passed to fit.")


def check_backbone_and_head(model, part_type, kind: str) -> None:
    """``backbone_lr`` needs a model with a ``backbone`` and a ``head`` part, each a ``part_type`` (``nn.Module``,
    ``keras.layers.Layer``); otherwise a ``ValueError`` naming the model's class and the missing parts."""
    missing = [part for part in ("backbone", "head") if not isinstance(getattr(model, part, None), part_type)]
    if missing:
        raise ValueError(f"backbone_lr needs a model with a `backbone` and a `head` {kind} (a TransferModel, or any "
                         f"model with those two attributes); this {type(model).__name__} has no "
                         f"{' and no '.join(f'`{m}`' for m in missing)}. Give it both, or train with lr alone.")


def check_batch_size(batch_size, name: str = "batch_size") -> int:
    """A positive integer, or a ``ValueError`` that says so."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{name} must be a positive integer (typical: 16 to 128); received {batch_size!r}.")
    return int(batch_size)


def check_checkpoint_path(path, kind: str):
    """``path`` as a ``Path``, refusing a folder where a checkpoint file is expected (PyTorch) and a file where a
    checkpoint folder is expected (TensorFlow)."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"checkpoint must be a path (str or pathlib.Path); received {path!r}.")
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise IsADirectoryError(f"checkpoint={str(path)!r} is a folder; in PyTorch a checkpoint is one file. Pass a file "
                                f"path such as {str(path / 'run.pt')!r}.")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"checkpoint={str(path)!r} is a file; in TensorFlow a checkpoint is a folder (weights "
                                 f"+ state.json). Pass a folder path such as {str(path.with_suffix(''))!r}_ckpt.")
    return path


def class_indices(y, what: str = "labels") -> np.ndarray:
    """``y`` as an int64 array of class indices, refusing what would be silently truncated or misread: fractional
    values (``1.7`` is not class 1), one-hot rows, negative values, non-numbers."""
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise TypeError(f"{what} must be integer class indices; received dtype {y.dtype}. Map class names to "
                        "indices first, e.g. {name: i for i, name in enumerate(class_names)}.")
    if y.ndim == 2 and y.shape[1] > 1:
        raise ValueError(f"{what} have shape {y.shape}, which looks one-hot encoded; pass class indices instead: "
                         "y.argmax(axis=1).")
    if y.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices; received shape {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_:
        fractional = ~np.isfinite(y) | (np.mod(np.nan_to_num(y), 1) != 0)
        if fractional.any():
            raise ValueError(f"{what} must be whole numbers (class indices); {int(fractional.sum())} are not, e.g. "
                             f"{y[fractional][:3].tolist()}. Converting them would silently truncate 1.7 to class 1.")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{what} must be >= 0 (class indices); found {int(y.min())}.")
    return y


def as_float_inputs(x, what: str = "inputs") -> np.ndarray:
    """``x`` as a float32 array, refusing non-numeric data with a message (instead of a deep cast error)."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"{what} must be a numeric array (images or features); received dtype {a.dtype}.")
    if a.ndim == 0:
        raise ValueError(f"{what} must be an array with one row per sample; received a single value.")
    return a.astype(np.float32, copy=False)


def fingerprint(named_shapes, class_names=None) -> str:
    """A short hash of a model's parameter names and shapes (and class names): checkpoints carry it so
    that resuming into a different model is refused."""
    payload = json.dumps([[str(n), list(map(int, s))] for n, s in named_shapes] + [list(class_names or [])])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def phase_checkpoint(checkpoint, phase: str):
    """The checkpoint path of one phase of ``fine_tune`` (``None`` when not checkpointing)."""
    return Path(f"{checkpoint}.{phase}") if checkpoint else None


class Digest:
    """A running SHA-256 over what a result depends on: strings, numbers and arrays (with their dtype and shape,
    so that the same bytes read as another array do not collide)."""

    def __init__(self, *parts):
        self._h = hashlib.sha256()
        self.update(*parts)

    def update(self, *parts) -> "Digest":
        for part in parts:
            if isinstance(part, (bytes, bytearray, memoryview)):
                self._h.update(b"b%d:" % len(part))
                self._h.update(part)
            elif isinstance(part, (tuple, list)):
                self._h.update(b"t%d:" % len(part))
                self.update(*part)
            elif isinstance(part, np.ndarray) or hasattr(part, "__array__"):
                a = np.ascontiguousarray(np.asarray(part))
                self._h.update(f"a{a.dtype.str}{a.shape}:".encode())
                self._h.update(a.tobytes())
            else:
                text = repr(part).encode()
                self._h.update(b"s%d:" % len(text))
                self._h.update(text)
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def folder_digest(folder) -> str:
    """The contents of an image folder split: every file's bytes, its label and the class names (not the paths:
    moving a dataset keeps its cache; overwriting an image or relabelling it does not)."""
    d = Digest("folder", list(folder.class_names))
    for path, label in zip(folder.paths, folder.labels):
        d.update(Path(path).read_bytes(), int(label))
    return d.hexdigest()


def feature_cache_key(spec_name: str, weights_digest: str, image_size, data_digest: str) -> str:
    """What cached features depend on: the backbone (its name and a digest of every weight and BatchNorm
    statistic), the image size, and the data's content (the files' bytes and labels, or the arrays)."""
    return Digest("features-v2", spec_name, weights_digest, image_size or "", data_digest).hexdigest()[:32]


_CACHE_FIELDS = {"features", "labels", "key"}


def read_feature_cache(path, key: str):
    """``(features, labels)`` saved at ``path`` under ``key``, or ``None`` when absent or made from other data or
    another backbone. A file there that is not a feature cache is refused (it is never overwritten)."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"The feature cache path {path} is a folder; pass a file path such as {path / 'features.npz'}.")
    try:
        with np.load(path, allow_pickle=False) as saved:
            if set(saved.files) != _CACHE_FIELDS:
                raise ValueError
            return (saved["features"], saved["labels"]) if str(saved["key"]) == key else None
    except Exception:  # not an .npz we wrote: leave it alone
        raise FileExistsError(f"{path} exists and is not a feature cache written by cache_features; it is left "
                              "untouched. Pass another path (or delete the file yourself).") from None


def write_feature_cache(path, key: str, features: np.ndarray, labels: np.ndarray) -> None:
    """Save the arrays at exactly ``path`` (no suffix is added), through a temporary file so that an interrupted
    write never leaves half a cache."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, features=features, labels=labels, key=np.array(key))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
