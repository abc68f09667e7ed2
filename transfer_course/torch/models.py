"""Pretrained models for PyTorch: one :func:`create_model`, freeze/unfreeze, features, predictions.

Every model is a :class:`TransferModel` = ``backbone`` (image -> feature vector) + ``head``
(feature vector -> class scores), so the transfer recipe reads the same for every architecture.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import WeightsUnavailableError
from ..imagenet import imagenet_classes
from ..models import (
    MODEL_SPECS, OFFLINE_WEIGHTS_HINT, ModelSpec, as_model_input, block_key, check_feature_map_stages, check_head,
    check_head_output, check_unfreeze_top, efficientnet_lite0_weights, get_spec, head_classes, label_predictions,
)
from ..paths import manual_download_help, require_cached_when_offline

__all__ = [
    "TransferModel", "create_model", "available_models", "make_head", "replace_head", "backbone_blocks",
    "freeze", "unfreeze", "train_mode", "save_model", "load_model",
    "count_parameters", "to_tensor", "predict_proba", "classify_images", "extract_features", "feature_maps",
]


class TransferModel(nn.Module):
    """``head(backbone(x))``; ``spec`` says how inputs must be preprocessed."""

    def __init__(self, backbone: nn.Module, head: nn.Module, spec: ModelSpec, class_names=None):
        super().__init__()
        self.backbone, self.head, self.spec = backbone, head, spec
        self.class_names = tuple(class_names) if class_names else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def available_models() -> list[str]:
    return sorted(MODEL_SPECS["torch"])


def create_model(name: str = "efficientnet_lite0", pretrained: bool = True, num_classes: int | None = None,
                 dropout: float = 0.2, class_names=None, hidden_units: int | None = None) -> TransferModel:
    """Build ``name`` with ImageNet weights (``pretrained``) and, if ``num_classes`` is given, a new head.

    ``efficientnet_lite0`` works offline; the torchvision models download their weights once
    (to ``torch.hub.get_dir()``) and raise :class:`WeightsUnavailableError` when they cannot.
    """
    spec = get_spec(name, "torch")
    check_head(num_classes, class_names)
    if name == "efficientnet_lite0":
        backbone, imagenet_head = _lite0(pretrained)
    else:
        backbone, imagenet_head = _torchvision(name, pretrained)
    if num_classes is None:
        head, class_names = imagenet_head, imagenet_classes()
    else:
        head = make_head(spec.feature_dim, num_classes, hidden_units, dropout)
    return TransferModel(backbone, head, spec, class_names)


def make_head(feature_dim: int, num_classes: int, hidden_units: int | None = 256, dropout: float = 0.2) -> nn.Sequential:
    """A new classifier: dense (ReLU) -> dropout -> output, or dropout -> output without ``hidden_units``."""
    check_head(num_classes)
    if hidden_units:
        return nn.Sequential(nn.Linear(feature_dim, hidden_units), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(hidden_units, num_classes))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))


def replace_head(model: TransferModel, num_classes: int | None = None, hidden_units: int | None = 256,
                 dropout: float = 0.2, class_names=None, head: nn.Module | None = None) -> TransferModel:
    """Swap ``model.head`` for a new classifier (built by :func:`make_head`, or ``head`` if given).

    A given ``head`` is checked on a dummy feature vector: it must accept the backbone's
    ``spec.feature_dim`` features and return one score per class.
    """
    num_classes = head_classes(num_classes, class_names, head)
    if head is None:
        head = make_head(model.spec.feature_dim, num_classes, hidden_units, dropout)
    else:
        head.eval()
        try:
            with torch.no_grad():
                out = head(torch.zeros(2, model.spec.feature_dim))
        except RuntimeError as exc:
            raise ValueError(f"The new head does not accept the backbone's features: {model.spec.name} produces "
                             f"{model.spec.feature_dim} features per image ({exc}). Make the head's first layer "
                             f"nn.Linear({model.spec.feature_dim}, ...).") from exc
        num_classes = check_head_output(tuple(out.shape), num_classes)
    model.head = head.to(next(model.backbone.parameters()).device)
    model.class_names = tuple(class_names) if class_names else None
    return model


def _lite0(pretrained: bool):
    import timm

    backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0, drop_rate=0.0)
    classifier = nn.Linear(1280, 1000)
    if pretrained:
        weights = {k: torch.from_numpy(v) for k, v in efficientnet_lite0_weights().items()}
        classifier.load_state_dict({"weight": weights.pop("classifier.weight"), "bias": weights.pop("classifier.bias")})
        missing, unexpected = backbone.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"EfficientNet-Lite0 weights do not fit timm's model: missing {missing}, unexpected {unexpected}.")
    return backbone, nn.Sequential(nn.Dropout(0.2), classifier)


def _torchvision(name: str, pretrained: bool):
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        model.load_state_dict(load_state_dict_from_url(weights.url))
    # The last Linear layer is the ImageNet classifier; everything before it is the backbone.
    attr, last = None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            attr, last = module_name, module
    parent_name, _, leaf = attr.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, nn.Identity())
    return model, last


def load_state_dict_from_url(url: str, timeout: float = 30.0) -> dict:
    """torch.hub's cached download, with a clear error when the file is neither cached nor reachable."""
    import socket
    import urllib.error

    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    fix = manual_download_help(url, target, alternative=OFFLINE_WEIGHTS_HINT)
    require_cached_when_offline(target, WeightsUnavailableError, fix)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True, weights_only=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise WeightsUnavailableError(f"Could not download pretrained weights ({getattr(exc, 'reason', exc)}).\n{fix}") from exc
    except RuntimeError as exc:  # hash mismatch
        target.unlink(missing_ok=True)
        raise WeightsUnavailableError(f"Downloaded weights failed their hash check and were deleted ({exc}). Try again.") from exc
    finally:
        socket.setdefaulttimeout(previous)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients for every parameter of ``module`` (e.g. ``model.backbone``)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def backbone_blocks(module: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The backbone's blocks, input to output: ``(name, modules)`` per block.

    A block is a residual/inverted-residual block, or a top-level layer; a lone BatchNorm joins the
    layer before it. EfficientNet-Lite0 has 18: ``conv_stem``, ``blocks.0.0`` ... ``blocks.6.0``, ``conv_head``.
    """
    groups: list[tuple[str, list[nn.Module]]] = []
    for name, m in module.named_modules():
        if not list(m.parameters(recurse=False)):
            continue
        key = block_key(name.split("."))
        if groups and (groups[-1][0] == key or (isinstance(m, nn.modules.batchnorm._BatchNorm) and "." not in name)):
            groups[-1][1].append(m)
        else:
            groups.append((key, [m]))
    return groups


def unfreeze(module: nn.Module, top: int | None = None, train_bn: bool = False) -> nn.Module:
    """Let ``module`` train again: all of it, or with ``top=N`` only its last ``N`` blocks (see
    :func:`backbone_blocks`); the others stay frozen.

    With ``top`` set, BatchNorm layers stay frozen unless ``train_bn``: on small target batches their
    ImageNet statistics are better than what a few images can estimate.
    """
    if top is None:
        for p in module.parameters():
            p.requires_grad_(True)
        return module
    blocks = backbone_blocks(module)
    check_unfreeze_top(top, [name for name, _ in blocks])
    freeze(module)
    for _, modules in blocks[len(blocks) - top:]:
        for m in modules:
            if train_bn or not isinstance(m, nn.modules.batchnorm._BatchNorm):
                for p in m.parameters(recurse=False):
                    p.requires_grad_(True)
    return module


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, except BatchNorm layers whose parameters are frozen stay in inference mode.

    A frozen BatchNorm must also stop updating its running mean/variance, or the "frozen"
    backbone drifts with every batch (and small target batches have poor statistics).
    """
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def to_tensor(x: np.ndarray, device=None) -> torch.Tensor:
    """Preprocessed ``(N, H, W, 3)`` float array -> ``(N, 3, H, W)`` tensor (PyTorch's channels-first layout)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"Expected preprocessed images of shape (N, H, W, 3); received {x.shape}.")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device or "cpu")


def _batches(model, images, fn, batch_size):
    """``fn`` over the images batch by batch, preprocessing each batch only when it is needed (a whole dataset
    preprocessed at once, at 224 px in float32, is 0.6 MB per image)."""
    if not (isinstance(images, np.ndarray) and images.ndim == 4):
        images = [images] if isinstance(images, np.ndarray) else list(images)
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            chunk = images[i:i + batch_size]
            x = as_model_input(chunk if isinstance(chunk, np.ndarray) else list(chunk), model.spec)
            out.append(fn(to_tensor(x, device)).float().cpu().numpy())
    return np.concatenate(out)


def predict_proba(model: TransferModel, images, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``(N, classes)`` for uint8 images (preprocessed here) or preprocessed arrays."""
    return _batches(model, images, lambda t: model(t).softmax(-1), batch_size)


def classify_images(model: TransferModel, images, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(class name, probability)`` for each image."""
    return label_predictions(predict_proba(model, images), model.class_names, k)


def extract_features(model: TransferModel, images, batch_size: int = 32) -> np.ndarray:
    """Backbone feature vectors ``(N, feature_dim)``: the model with its top removed."""
    return _batches(model, images, model.backbone, batch_size)


def feature_maps(model: TransferModel, image, stages=(0, 6)) -> dict[int, np.ndarray]:
    """Activations ``(H, W, C)`` of EfficientNet-Lite0 stages for one image, keyed by stage index."""
    check_feature_map_stages(model.spec, stages)
    captured, hooks = {}, []
    for s in stages:
        hooks.append(model.backbone.blocks[s].register_forward_hook(
            lambda _m, _i, out, s=s: captured.__setitem__(s, out[0].permute(1, 2, 0).cpu().numpy())))
    try:
        _batches(model, np.asarray(image)[None] if np.asarray(image).ndim == 3 else image, model.backbone, 1)
    finally:
        for h in hooks:
            h.remove()
    return {s: captured[s] for s in stages}


#: head layers save_model can describe as data (so that loading never unpickles code): type -> constructor arguments
_HEAD_LAYERS = {
    "Linear": lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
    "ReLU": lambda m: {}, "GELU": lambda m: {}, "SiLU": lambda m: {}, "Tanh": lambda m: {}, "Identity": lambda m: {},
    "Flatten": lambda m: {},
    "Dropout": lambda m: {"p": m.p},
    "BatchNorm1d": lambda m: {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum},
    "LayerNorm": lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps},
}


def _describe_head(head: nn.Module) -> list[dict]:
    """The head as a list of layer descriptions (data, not code), for :func:`save_model`."""
    layers = list(head) if isinstance(head, nn.Sequential) else [head]
    described = []
    for layer in layers:
        kind = type(layer).__name__
        if kind not in _HEAD_LAYERS or type(layer) is not getattr(nn, kind):
            raise TypeError(f"save_model stores the head as a list of standard layers ({', '.join(_HEAD_LAYERS)}) inside "
                            f"an nn.Sequential, so that loading never runs code from a file; this head contains "
                            f"{type(layer).__module__}.{type(layer).__qualname__}. Save your own head's weights with "
                            "torch.save(model.state_dict(), path) and rebuild the head in code before load_state_dict.")
        described.append({"type": kind, **_HEAD_LAYERS[kind](layer)})
    return described


def _head_from_description(description: list[dict]) -> nn.Sequential:
    """The inverse of :func:`_describe_head`."""
    layers = []
    for item in description:
        item = dict(item)
        kind = item.pop("type", None)
        if kind not in _HEAD_LAYERS:
            raise ValueError(f"Unknown head layer {kind!r} in a saved model; expected one of {', '.join(_HEAD_LAYERS)}.")
        layers.append(getattr(nn, kind)(**item))
    return nn.Sequential(*layers)


def save_model(model: TransferModel, path) -> Path:
    """Save weights, head layout, preprocessing spec and class names to one ``.pt`` file.

    Everything is stored as tensors and plain data (the head as a list of layer descriptions), so
    :func:`load_model` reads it with ``torch.load(weights_only=True)`` and never runs code from the file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give save_model a file path such as {path / 'model.pt'}.")
    saved = {"format": "transfer-course model 1", "spec": model.spec.name, "class_names": list(model.class_names or []),
             "head": _describe_head(model.head), "state_dict": model.state_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)
    return path


def safe_load(path, what: str = "file") -> dict:
    """``torch.load(path, weights_only=True)`` with errors that say what is wrong with the file.

    ``weights_only=True`` restricts unpickling to tensors and plain containers, so a downloaded or handed-in file
    cannot run code on this machine.
    """
    import pickle

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a {what}. Pass the path of the {what} file itself.")
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path}.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): the {what} was never written completely. Delete it and save again.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path} is not a {what} written by this course: it holds objects other than tensors and plain "
                         "data (code could run if it were unpickled), so it is refused. Only load files you or the course "
                         f"wrote; re-save with the course's functions. ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path} cannot be read as a {what}: it is truncated or not a PyTorch file ({exc}). "
                         "Delete it and save again.") from None


def load_model(path, device=None) -> TransferModel:
    """Rebuild a model saved by :func:`save_model` (no download: the saved weights replace the ImageNet ones)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}. Save one with save_model(model, {str(path)!r}).")
    saved = safe_load(path, "saved model")
    if not isinstance(saved, dict) or saved.get("format") != "transfer-course model 1":
        raise ValueError(f"{path} is not a model saved by transfer_course.torch.save_model (no format tag). "
                         "For a plain state dict, build the model in code and call model.load_state_dict(torch.load(path, weights_only=True)).")
    model = create_model(saved["spec"], pretrained=False)
    model.head = _head_from_description(saved["head"])
    model.load_state_dict(saved["state_dict"])
    model.class_names = tuple(saved["class_names"]) or None
    return model.to(device or "cpu").eval()
