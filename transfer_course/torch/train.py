"""Training for PyTorch: :func:`fit`, :func:`evaluate`, :func:`predict`, :func:`cache_features`, :func:`fine_tune`.

``fit`` reads top to bottom: pick the device and precision, build the optimizer (smaller learning
rates for pretrained layers when ``backbone_lr`` is given), then per epoch train, validate, log, save
a checkpoint, and stop early when the monitored metric stalls. Its one hook is ``on_epoch_end``.

Inside a distributed launch (``torch.distributed`` initialised, world size > 1; see lesson 06) ``fit`` trains a
``DistributedDataParallel`` copy of the model, gives each rank its shard of the training data with a
``DistributedSampler`` (reshuffled each epoch with ``set_epoch``), reports loss and accuracy summed over all ranks,
and only rank 0 shows progress, writes the checkpoint and calls ``on_epoch_end``. The helpers below fit's body
(``_Dist``) hold that part.
"""
from __future__ import annotations

import copy
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..distributed import DistributedError, check_shardable
from ..memory import release_memory
from ..metrics import check_labels, report_from_probabilities
from ..models import check_preprocessed_images
from ..training import (
    CheckpointMismatchError,
    Digest,
    EarlyStopper,
    History,
    check_backbone_and_head,
    check_batch_size,
    check_checkpoint_path,
    check_finite_inputs,
    check_finite_loss,
    check_fit_args,
    feature_cache_key,
    fingerprint,
    folder_digest,
    lr_factor,
    phase_checkpoint,
    read_feature_cache,
    write_feature_cache,
)
from .data import array_loader
from .device import get_device, resolve_precision
from .models import TransferModel, freeze, safe_load, train_mode, unfreeze

__all__ = ["cache_features", "evaluate", "fine_tune", "fit", "labels_of", "predict"]

_OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def _as_loader(data, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return array_loader(*data, batch_size=batch_size, shuffle=shuffle, seed=seed)
    raise TypeError(f"Expected a DataLoader or an (inputs, labels) pair; received {type(data).__name__}.")


def labels_of(data) -> np.ndarray | None:
    """The labels of a loader or ``(x, y)`` pair, when known without iterating."""
    if isinstance(data, (tuple, list)):
        return np.asarray(data[1])
    dataset = getattr(data, "dataset", None)
    if hasattr(dataset, "folder"):
        return np.asarray(dataset.folder.labels)
    if hasattr(dataset, "tensors"):
        return dataset.tensors[1].numpy()
    return None


def _num_classes(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def _check_data(model, loader, name):
    n = len(loader.dataset)
    if name == "training" and n == 0:
        check_fit_args(1, 1.0, num_train=0)
    labels, classes = labels_of(loader), _num_classes(model)
    if labels is not None and classes is not None:
        check_labels(labels, classes, f"The {name} labels")


def _check_head(model) -> None:
    """A head set by hand must still accept the backbone's features."""
    if not isinstance(model, TransferModel):
        return
    dim = model.spec.feature_dim
    device = next(model.head.parameters()).device
    was_training = model.head.training
    try:
        with torch.no_grad():
            model.head.eval()(torch.zeros(2, dim, device=device))
    except RuntimeError as exc:
        raise ValueError(f"The model's head does not accept the backbone's {dim} features ({exc}). Build the head with "
                         f"make_head({dim}, num_classes) or replace_head(model, ...).") from exc
    finally:
        model.head.train(was_training)


def _param_groups(model, lr, backbone_lr):
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("Every parameter of the model is frozen: nothing would train. Unfreeze the head "
                         "(or the top blocks) first.")
    if backbone_lr is None:
        return [{"params": trainable, "lr": lr}]
    check_backbone_and_head(model, nn.Module, "module")
    pretrained = [p for p in model.backbone.parameters() if p.requires_grad]
    head = [p for p in model.head.parameters() if p.requires_grad]
    return [g for g in ({"params": pretrained, "lr": backbone_lr}, {"params": head, "lr": lr}) if g["params"]]


def _to(x, device, channels_last):
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _rng_state(loader):
    gen = getattr(loader, "generator", None)
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # as tensors and numbers: loadable with weights_only
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached": float(cached)}
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "loader": gen.get_state() if gen is not None else None}


def _set_rng_state(state, loader):
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state["loader"] is not None and getattr(loader, "generator", None) is not None:
        loader.generator.set_state(state["loader"])


def _model_fingerprint(model):
    return fingerprint([(n, p.shape) for n, p in model.state_dict().items()], getattr(model, "class_names", None))


class _Dist:
    """What ``fit`` does differently in a distributed run; in one process every method is a no-op."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.on = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if self.on else (0, 1)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model, device):
        """The model to train: a DistributedDataParallel copy (gradients averaged over ranks in ``backward``)."""
        if not self.on:
            return model
        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def shard(self, loader, train: bool, seed: int):
        """The same loader over this rank's shard: padded to equal shards for training (every rank runs the same
        number of steps), unpadded for evaluation (each sample counted once)."""
        if not self.on:
            return loader
        from torch.utils.data import DistributedSampler

        n = len(loader.dataset)
        check_shardable(n, self.world)
        if train:
            sampler = DistributedSampler(loader.dataset, self.world, self.rank, shuffle=True, seed=seed)
        else:
            sampler = list(range(self.rank, n, self.world))
        return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                          collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last)

    def set_epoch(self, loader, epoch: int) -> None:
        if self.on and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank

    def sum(self, *values):
        """Sums over all ranks (loss, correct, count): the epoch's metrics over all samples, not one shard."""
        if not self.on:
            return values
        t = torch.stack([torch.as_tensor(v, dtype=torch.float64).cpu() for v in values])
        if self.dist.get_backend() == "nccl":
            t = t.cuda()
        self.dist.all_reduce(t)
        return tuple(t.cpu().tolist())

    def barrier(self) -> None:
        if self.on:
            self.dist.barrier()

    def failed(self, exc: Exception) -> Exception:
        """A clear error for a collective that broke because another rank stopped or timed out."""
        return DistributedError(f"rank {self.rank} of {self.world}: the distributed run broke ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}). Another process probably "
                                "stopped or did not answer within the process group's timeout; see its own error above. "
                                "Resume from the last checkpoint with the same launch command.")


def _run_epoch(model, loader, device, precision, channels_last, optimizer=None, scheduler=None, clip=None, bar=None,
               dist=None):
    """One pass over ``loader``; trains when an ``optimizer`` is given. Returns (mean loss, accuracy), over all ranks'
    samples in a distributed run."""
    training = optimizer is not None
    train_mode(model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model) if training else model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    with torch.set_grad_enabled(training):
        for x, y in loader:
            x, y = _to(x, device, channels_last), y.to(device, non_blocking=True)
            with precision.autocast():
                logits = model(x)
                loss = nn.functional.cross_entropy(logits.float(), y)
            if training:
                optimizer.zero_grad(set_to_none=True)
                scaler = precision.scaler
                (scaler.scale(loss) if scaler else loss).backward()
                if clip:
                    if scaler:
                        scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if bar is not None:
                bar.update(1)
    if dist is not None and dist.on:
        loss_sum, right, count = dist.sum(total_loss.item(), correct.item(), seen)
        return loss_sum / count, right / count
    return (total_loss / seen).item(), (correct / seen).item()


def fit(model: nn.Module, train, val=None, *, epochs: int = 5, lr: float = 1e-3, backbone_lr: float | None = None,
        optimizer: str = "adamw", weight_decay: float = 0.0, schedule: str = "constant", warmup_epochs: int = 0,
        precision: str = "fp32", device=None, channels_last: bool = False, clip_grad_norm: float | None = None,
        early_stopping: int | None = None, monitor: str = "val_loss", restore_best: bool = True,
        checkpoint: str | Path | None = None, batch_size: int = 32, seed: int = 0, progress: bool = True,
        on_epoch_end=None) -> History:
    """Train ``model`` on ``train`` (a DataLoader or ``(x, y)`` arrays); return its :class:`History`.

    - ``backbone_lr``: learning rate of the trainable parameters of the model's ``backbone`` (a
      :class:`TransferModel`, or any module with ``backbone`` and ``head`` parts; the head uses ``lr``) —
      smaller, because pretrained weights need only small changes.
    - ``schedule``: ``constant``, ``cosine`` or ``warmup_cosine`` (stepped every batch).
    - ``precision``: ``fp32``, ``bf16`` or ``fp16`` autocast (see :func:`resolve_precision`).
    - ``early_stopping=N``: stop after ``N`` epochs without improving ``monitor``; with
      ``restore_best`` the best epoch's weights are put back.
    - ``checkpoint``: a file saved after every epoch (model, optimizer, schedule, random state and
      history); calling ``fit`` again with the same file resumes after the last completed epoch.
    - ``on_epoch_end(epoch, logs)``: called after each epoch (e.g. for a live plot).
    - In a distributed launch, ``batch_size`` (or the loader's) is per process: the effective batch is
      ``world_size`` times larger; scale ``lr`` yourself if you want (``scale_learning_rate``).
    """
    if isinstance(train, (tuple, list)) and len(train) == 2 and len(train[0]) == 0:
        check_fit_args(epochs, lr, num_train=0)
    check_fit_args(epochs, lr, backbone_lr, schedule, clip_grad_norm, optimizer=optimizer, batch_size=batch_size,
                   weight_decay=weight_decay, warmup_epochs=warmup_epochs)
    check_finite_inputs(train, "training")
    if val is not None:
        check_finite_inputs(val, "validation")
    train_loader = _as_loader(train, batch_size, True, seed)
    val_loader = None if val is None else _as_loader(val, batch_size, False, seed)
    check_fit_args(epochs, lr, backbone_lr, schedule, clip_grad_norm, num_train=len(train_loader.dataset),
                   optimizer=optimizer, batch_size=batch_size, weight_decay=weight_decay, warmup_epochs=warmup_epochs)
    optimizer = optimizer.lower()
    checkpoint = check_checkpoint_path(checkpoint, "file")
    _check_array_images(model, train, "training")
    _check_array_images(model, val, "validation")
    _check_head(model)
    _check_data(model, train_loader, "training")
    if val_loader is not None:
        _check_data(model, val_loader, "validation")
    device = get_device(device)
    prec = resolve_precision(precision, device)
    release_memory()  # start from what is really in use, not from the previous step's freed pages
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    dist = _Dist()
    train_loader = dist.shard(train_loader, True, seed)
    if val_loader is not None:
        val_loader = dist.shard(val_loader, False, seed)
    opt = _OPTIMIZERS[optimizer](_param_groups(model, lr, backbone_lr), weight_decay=weight_decay)
    steps_per_epoch = len(train_loader)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, schedule, warmup))
    history = History()
    stopper = EarlyStopper(monitor, early_stopping) if early_stopping else None
    best_state, start = None, 0

    if checkpoint and checkpoint.exists():
        start, history, best_state = _resume(checkpoint, model, opt, scheduler, prec, stopper, train_loader)

    net = dist.wrap(model, device)  # the model itself in one process
    bar = _progress(progress and dist.is_main, total, start * steps_per_epoch)
    try:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            dist.set_epoch(train_loader, epoch)
            try:
                loss, acc = _run_epoch(net, train_loader, device, prec, channels_last, opt, scheduler, clip_grad_norm,
                                       bar, dist)
                logs = {"loss": loss, "accuracy": acc}
                if val_loader is not None:
                    logs["val_loss"], logs["val_accuracy"] = _run_epoch(model, val_loader, device, prec, channels_last,
                                                                        dist=dist)
            except RuntimeError as exc:
                if not dist.on:
                    raise
                raise dist.failed(exc) from exc
            check_finite_loss(loss, epoch + 1)
            logs["lr"] = opt.param_groups[-1]["lr"]
            logs["seconds"] = time.perf_counter() - t0
            history.append(logs)
            if bar is not None:
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy")})
            stop = False
            if stopper:
                improved, stop = stopper.update(epoch, logs)
                if improved and restore_best:
                    best_state = copy.deepcopy(model.state_dict())
            if checkpoint and dist.is_main:  # one writer; the others wait until the file is complete
                _save_checkpoint(checkpoint, epoch + 1 if not stop else epochs, model, opt, scheduler, prec, history,
                                 stopper, best_state, train_loader)
            if checkpoint:
                dist.barrier()
            if on_epoch_end is not None and dist.is_main:
                on_epoch_end(epoch, logs)
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
    if stopper and restore_best and best_state is not None:
        model.load_state_dict(best_state)
    del best_state
    release_memory()
    return history


def _progress(progress, total, initial):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="batch", leave=True)


def _save_checkpoint(path, epoch, model, opt, scheduler, prec, history, stopper, best_state, loader):
    state = {"fingerprint": _model_fingerprint(model), "epoch": epoch, "model": model.state_dict(),
             "optimizer_settings": _optimizer_settings(opt),
             "optimizer": opt.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": prec.scaler.state_dict() if prec.scaler else None, "history": history.to_dict(),
             "stopper": stopper.state_dict() if stopper else None, "best_state": best_state, "rng": _rng_state(loader)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interruption while saving leaves the previous checkpoint intact


def _optimizer_settings(opt) -> dict:
    """What a resumed run must share with the run that saved: the optimizer's kind and each group's settings."""
    return {"optimizer": type(opt).__name__,
            "groups": [{"initial_lr": float(g.get("initial_lr", g["lr"])), "weight_decay": float(g.get("weight_decay", 0.0)),
                        "size": sum(p.numel() for p in g["params"])} for g in opt.param_groups]}


def _describe_settings(settings: dict) -> str:
    groups = ", ".join(f"lr {g['initial_lr']:g} wd {g['weight_decay']:g} on {g['size']} weights" for g in settings["groups"])
    return f"{settings['optimizer']}: {groups}"


def _check_array_images(model, data, what) -> None:
    """Image arrays handed to fit must be preprocessed for the model's weights, in PyTorch's channels-first layout."""
    if isinstance(model, TransferModel) and isinstance(data, (tuple, list)) and len(data) == 2:
        x = data[0].detach().cpu().numpy() if isinstance(data[0], torch.Tensor) else np.asarray(data[0])
        check_preprocessed_images(x, model.spec, channels_first=True, what=f"{what} images")


def _resume(path, model, opt, scheduler, prec, stopper, loader):
    state = safe_load(path, "training checkpoint")
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise CheckpointMismatchError(f"{path} is not a training checkpoint written by fit(checkpoint=...). Pass a new "
                                      "checkpoint path, or delete the file to start over.")
    if state.get("fingerprint") != _model_fingerprint(model):
        raise CheckpointMismatchError(
            f"{path} was saved from a different model (other layers, shapes or classes), so training cannot "
            "resume from it. Use a new checkpoint path for this model, or delete the file to start over.")
    saved, now = state.get("optimizer_settings"), _optimizer_settings(opt)
    if saved is not None and saved != now:
        raise CheckpointMismatchError(
            f"{path} was saved by a run with another optimizer set-up ({_describe_settings(saved)}), not this one "
            f"({_describe_settings(now)}). Resuming would mix the two. Call fit with the saved run's optimizer, lr, "
            "backbone_lr and weight_decay to continue it, or use a new checkpoint path to start a new run.")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if prec.scaler and state["scaler"]:
        prec.scaler.load_state_dict(state["scaler"])
    if stopper and state["stopper"]:
        for k, v in state["stopper"].items():
            setattr(stopper, k, v)
    _set_rng_state(state["rng"], loader)
    return state["epoch"], History.from_dict(state["history"]), state["best_state"]


@torch.no_grad()
def predict(model: nn.Module, data, batch_size: int = 64, device=None, precision: str = "fp32") -> np.ndarray:
    """Class probabilities ``(N, classes)`` for a DataLoader or ``(x, y)`` pair, in the data's order."""
    check_batch_size(batch_size)
    _check_array_images(model, data, "prediction")
    loader = _as_loader(data, batch_size, False, 0)
    device = get_device(device)
    prec = resolve_precision(precision, device)
    model.to(device).eval()
    out = []
    for x, *_ in loader:
        with prec.autocast():
            out.append(model(x.to(device)).float().softmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, _num_classes(model) or 0), np.float32)


def evaluate(model: nn.Module, data, class_names=None, batch_size: int = 64, device=None) -> dict:
    """Loss, accuracy, macro precision/recall/F1, per-class values and the confusion matrix on ``data``."""
    loader = _as_loader(data, batch_size, False, 0)
    labels = labels_of(loader)
    if labels is None:
        labels = np.concatenate([y.numpy() for _, y in loader])
    _check_data(model, loader, "evaluation")
    probs = predict(model, loader, device=device)
    return report_from_probabilities(labels, probs, class_names or getattr(model, "class_names", None))


@torch.no_grad()
def cache_features(model: TransferModel, data, path: str | Path | None = None, device=None,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Run the frozen backbone once over ``data``; return ``(features (N, feature_dim), labels)``.

    Training a head on these is the same as training it on images through a frozen backbone
    (in inference mode), without repeating the expensive forward pass every epoch. Use a loader
    without augmentation and without shuffling. With ``path`` the arrays are also saved there
    and read back next time, if they were made by the same backbone weights from the same data (the
    key is the content: overwritten images, new labels or new arrays are recomputed). The file is written at
    exactly ``path``; an existing file that is not a feature cache is never overwritten.
    """
    loader = _as_loader(data, 64, False, 0)
    key = _features_key(model, loader)
    cached = read_feature_cache(path, key)
    if cached is not None:
        return cached
    device = get_device(device)
    model.to(device).eval()
    feats, labels = [], []
    batches = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, desc="features", unit="batch", leave=False)
    for x, y in batches:
        feats.append(model.backbone(x.to(device)).float().cpu().numpy())
        labels.append(np.asarray(y))
    features, labels = np.concatenate(feats), np.concatenate(labels).astype(np.int64)
    write_feature_cache(path, key, features, labels)
    release_memory()
    return features, labels


def _features_key(model, loader) -> str:
    """Key the cache on content: every backbone weight and BatchNorm statistic, and the data itself (the files'
    bytes and labels for an image folder, the tensors for in-memory data, else one pass over the loader)."""
    weights = Digest(*[(k, v.detach().cpu().numpy()) for k, v in model.backbone.state_dict().items()]).hexdigest()
    dataset = loader.dataset
    if getattr(dataset, "folder", None) is not None:
        data = Digest(folder_digest(dataset.folder), repr(getattr(dataset, "transform", None))).hexdigest()
    elif isinstance(dataset, torch.utils.data.TensorDataset):
        data = Digest("tensors", *[t.detach().cpu().numpy() for t in dataset.tensors]).hexdigest()
    else:
        d = Digest("batches")
        for x, y in loader:
            d.update(np.asarray(x), np.asarray(y))
        data = d.hexdigest()
    return feature_cache_key(model.spec.name, weights, getattr(dataset, "image_size", None), data)


def fine_tune(model: TransferModel, train, val=None, *, frozen_epochs: int = 3, epochs: int = 5, top: int | None = 4,
              lr: float = 1e-3, backbone_lr: float = 1e-4, **fit_kwargs) -> History:
    """The two-phase recipe: train only the new head with the backbone frozen, then unfreeze the top
    ``top`` blocks (all with ``None``) and train on with ``backbone_lr`` for them and ``lr / 10`` for the head.
    Returns both phases as one history."""
    checkpoint = fit_kwargs.pop("checkpoint", None)
    freeze(model.backbone)
    first = fit(model, train, val, epochs=frozen_epochs, lr=lr, checkpoint=phase_checkpoint(checkpoint, "frozen"),
                **fit_kwargs)
    unfreeze(model.backbone, top=top)
    second = fit(model, train, val, epochs=epochs, lr=lr / 10, backbone_lr=backbone_lr,
                 checkpoint=phase_checkpoint(checkpoint, "unfrozen"), **fit_kwargs)
    return first + second
