"""Pretrained models for TensorFlow/Keras: the same names and story as ``transfer_course.torch.models``.

Every model is a :class:`TransferModel` = ``backbone`` (image -> feature vector) + ``head``
(feature vector -> class scores). It is a functional Keras model, so ``fit``/``save`` work as usual.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ..errors import WeightsUnavailableError
from ..imagenet import imagenet_classes
from ..models import (
    LITE0_STAGES, MODEL_SPECS, OFFLINE_WEIGHTS_HINT, ModelSpec, as_model_input, block_key, check_feature_map_stages,
    check_head, check_head_output, check_unfreeze_top, get_spec, head_classes, label_predictions,
)
from ..paths import manual_download_help, require_cached_when_offline
from .efficientnet_lite import efficientnet_lite0_backbone, load_lite0_weights

__all__ = [
    "TransferModel", "create_model", "available_models", "make_head", "replace_head", "backbone_blocks",
    "freeze", "unfreeze", "train_mode", "save_model", "load_model",
    "count_parameters", "to_tensor", "predict_proba", "classify_images", "extract_features", "feature_maps",
]

_APPLICATIONS = {"resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2", "vgg16": "VGG16"}


@keras.saving.register_keras_serializable(package="transfer_course")
class TransferModel(keras.Model):
    """``head(backbone(x))`` as a functional model; ``spec`` says how inputs must be preprocessed.

    Saves and loads with ``model.save("m.keras")`` / ``keras.models.load_model("m.keras")`` once
    ``transfer_course.tensorflow`` is imported.
    """

    def __init__(self, backbone: keras.Model, head: keras.Model, spec: ModelSpec, class_names=None, name=None):
        inputs = keras.Input(backbone.input_shape[1:], name="image")
        super().__init__(inputs, head(backbone(inputs)), name=name or spec.name)
        self.backbone, self.head, self.spec = backbone, head, spec
        self.class_names = tuple(class_names) if class_names else None
        self._built_parts = True

    def __setattr__(self, name, value):
        # A Keras model is a graph fixed when it is built: assigning a new part would change the attribute, not the
        # computation, and the model would silently keep using the old head.
        if name in ("head", "backbone") and getattr(self, "_built_parts", False):
            fix = ("model = replace_head(model, head=new_head)" if name == "head" else
                   "create_model(...) with the backbone you want, or TransferModel(new_backbone, model.head, model.spec)")
            raise AttributeError(f"Assigning model.{name} does not change a Keras model: its graph was built with the "
                                 f"old {name} and would keep using it. Build a new model instead: {fix}.")
        super().__setattr__(name, value)

    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone),
                "head": keras.saving.serialize_keras_object(self.head),
                "spec": self.spec.name, "class_names": list(self.class_names or []), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["backbone"]),
                   keras.saving.deserialize_keras_object(config["head"]),
                   get_spec(config["spec"], "tensorflow"), config["class_names"] or None, name=config["name"])


def available_models() -> list[str]:
    return sorted(MODEL_SPECS["tensorflow"])


def create_model(name: str = "efficientnet_lite0", pretrained: bool = True, num_classes: int | None = None,
                 dropout: float = 0.2, class_names=None, hidden_units: int | None = None) -> TransferModel:
    """Build ``name`` with ImageNet weights (``pretrained``) and, if ``num_classes`` is given, a new head.

    ``efficientnet_lite0`` works offline; the ``keras.applications`` models download their weights
    once (to ``$KERAS_HOME/models``) and raise :class:`WeightsUnavailableError` when they cannot.
    """
    spec = get_spec(name, "tensorflow")
    check_head(num_classes, class_names)
    if name == "efficientnet_lite0":
        backbone = efficientnet_lite0_backbone()
        imagenet_head = keras.Sequential([keras.Input((spec.feature_dim,)), layers.Dropout(0.2),
                                          layers.Dense(1000, activation=None, name="classifier")], name="head")
        if pretrained:
            load_lite0_weights(backbone, imagenet_head.get_layer("classifier"))
    else:
        backbone, imagenet_head = _application(name, spec, pretrained)
    if num_classes is None:
        head, class_names = imagenet_head, imagenet_classes()
    else:
        head = make_head(spec.feature_dim, num_classes, hidden_units, dropout)
    return TransferModel(backbone, head, spec, class_names)


def make_head(feature_dim: int, num_classes: int, hidden_units: int | None = 256, dropout: float = 0.2) -> keras.Sequential:
    """A new classifier: dense (ReLU) -> dropout -> output, or dropout -> output without ``hidden_units``."""
    check_head(num_classes)
    hidden = [layers.Dense(hidden_units, activation="relu", name="hidden")] if hidden_units else []
    return keras.Sequential([keras.Input((feature_dim,)), *hidden, layers.Dropout(dropout),
                             layers.Dense(num_classes, name="classifier")], name="head")


def replace_head(model: TransferModel, num_classes: int | None = None, hidden_units: int | None = 256,
                 dropout: float = 0.2, class_names=None, head: keras.Model | None = None) -> TransferModel:
    """A model with the same backbone and a new classifier (built by :func:`make_head`, or ``head``).

    Keras models are graphs, so this returns a new :class:`TransferModel` that shares the backbone's
    layers and weights: use the returned model. A given ``head`` is checked on a dummy feature vector.
    """
    num_classes = head_classes(num_classes, class_names, head)
    if head is None:
        head = make_head(model.spec.feature_dim, num_classes, hidden_units, dropout)
    else:
        try:
            out = head(np.zeros((2, model.spec.feature_dim), np.float32), training=False)
        except (ValueError, tf.errors.InvalidArgumentError) as exc:
            raise ValueError(f"The new head does not accept the backbone's features: {model.spec.name} produces "
                             f"{model.spec.feature_dim} features per image ({str(exc).splitlines()[0]}). Build it "
                             f"with keras.Input(({model.spec.feature_dim},)).") from exc
        check_head_output(tuple(out.shape), num_classes)
    return TransferModel(model.backbone, head, model.spec, class_names)


def _keras_models_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "models"


def _application(name: str, spec: ModelSpec, pretrained: bool):
    builder = getattr(keras.applications, _APPLICATIONS[name])
    target = _keras_models_dir() / spec.keras_files[0]
    fix = manual_download_help(f"Keras' ImageNet weights for {name} ({target.name})", target, alternative=OFFLINE_WEIGHTS_HINT)
    if pretrained:
        require_cached_when_offline(target, WeightsUnavailableError, fix)
    try:
        full = builder(weights="imagenet" if pretrained else None, include_top=True, classifier_activation=None)
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on network failures
        if "URL fetch failure" in str(exc) or isinstance(exc, OSError):
            raise WeightsUnavailableError(f"Could not download ImageNet weights for {name}: {exc}\n{fix}") from exc
        raise
    # The last Dense layer is the ImageNet classifier; everything before it is the backbone.
    backbone = keras.Model(full.input, full.layers[-2].output, name="backbone")
    dense = full.layers[-1]
    head = keras.Sequential([keras.Input((spec.feature_dim,)), dense], name="head")
    return backbone, head


def freeze(layer: keras.layers.Layer) -> keras.layers.Layer:
    """Make ``layer`` (e.g. ``model.backbone``) untrainable. Keras then also runs its BatchNorm layers
    in inference mode. Call ``compile()`` after changing this, or Keras keeps the old setting."""
    layer.trainable = False
    return layer


def backbone_blocks(backbone: keras.Model) -> list[tuple[str, list[keras.layers.Layer]]]:
    """The backbone's blocks, input to output: ``(name, layers)`` per block, as on the PyTorch side.

    EfficientNet-Lite0 has 18: ``conv_stem``, ``blocks.0.0`` ... ``blocks.6.0``, ``conv_head``.
    """
    groups: list[tuple[str, list]] = []
    for layer in backbone.layers:
        if not layer.weights:
            continue
        parts = layer.name.split("_")
        key = block_key(parts) if any(p.isdigit() for p in parts[:3]) else layer.name
        lone_bn = isinstance(layer, layers.BatchNormalization) and key == layer.name
        if groups and (groups[-1][0] == key or lone_bn):
            groups[-1][1].append(layer)
        else:
            groups.append((key, [layer]))
    return groups


def unfreeze(layer: keras.layers.Layer, top: int | None = None, train_bn: bool = False) -> keras.layers.Layer:
    """Make ``layer`` trainable again: all of it, or with ``top=N`` only its last ``N`` blocks (see
    :func:`backbone_blocks`). With ``top`` set, BatchNorm layers stay frozen (inference mode) unless
    ``train_bn``. ``fit`` compiles afterwards, so the change takes effect."""
    if top is None:
        for sub in layer._flatten_layers(include_self=True):  # undo per-layer settings of an earlier top=N
            sub.trainable = True
        return layer
    blocks = backbone_blocks(layer)
    check_unfreeze_top(top, [name for name, _ in blocks])
    layer.trainable = True
    chosen = {id(l) for _, group in blocks[len(blocks) - top:] for l in group}
    for sub in layer.layers:
        sub.trainable = id(sub) in chosen and (train_bn or not isinstance(sub, layers.BatchNormalization))
    return layer


def train_mode(model: keras.Model) -> keras.Model:
    """Keras needs no extra step: a BatchNorm layer with ``trainable=False`` always runs in inference mode."""
    return model


def count_parameters(model: keras.Model) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    # BatchNorm moving statistics are weights in Keras but buffers in PyTorch; count them like PyTorch does.
    buffers = sum(int(np.prod(w.shape)) for l in model._flatten_layers() if isinstance(l, layers.BatchNormalization)
                  for w in (l.moving_mean, l.moving_variance))
    return trainable + non_trainable - buffers, trainable


def to_tensor(x: np.ndarray, device=None) -> tf.Tensor:
    """Preprocessed ``(N, H, W, 3)`` float array -> tensor (TensorFlow keeps the channels-last layout)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"Expected preprocessed images of shape (N, H, W, 3); received {x.shape}.")
    with tf.device(device or "/CPU:0"):
        return tf.constant(x)


def _batches(model, images, fn, batch_size):
    """``fn`` over the images batch by batch, preprocessing each batch only when it is needed (a whole dataset
    preprocessed at once, at 224 px in float32, is 0.6 MB per image)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        chunks = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
    else:
        images = list(images) if not isinstance(images, np.ndarray) else [images]
        chunks = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
    out = [np.asarray(fn(as_model_input(chunk if isinstance(chunk, np.ndarray) else list(chunk), model.spec)))
           for chunk in chunks]
    return np.concatenate(out)


def predict_proba(model: TransferModel, images, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``(N, classes)`` for uint8 images (preprocessed here) or preprocessed arrays."""
    # predict_on_batch runs a compiled graph in inference mode: far less memory than eager calls, same numbers
    return _batches(model, images, lambda x: tf.nn.softmax(tf.cast(model.predict_on_batch(x), tf.float32)), batch_size)


def classify_images(model: TransferModel, images, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(class name, probability)`` for each image."""
    return label_predictions(predict_proba(model, images), model.class_names, k)


def extract_features(model: TransferModel, images, batch_size: int = 32) -> np.ndarray:
    """Backbone feature vectors ``(N, feature_dim)``: the model with its top removed."""
    return _batches(model, images, lambda x: model.backbone.predict_on_batch(x), batch_size)


def feature_maps(model: TransferModel, image, stages=(0, 6)) -> dict[int, np.ndarray]:
    """Activations ``(H, W, C)`` of EfficientNet-Lite0 stages for one image, keyed by stage index."""
    check_feature_map_stages(model.spec, stages)
    names = {layer.name for layer in model.backbone.layers}
    outputs = []
    for s in stages:
        # A stage ends with its last block's residual sum, or its last BatchNorm when that block has no skip.
        last = f"blocks_{s}_{LITE0_STAGES[s][1] - 1}"
        end = next(n for n in (f"{last}_add", f"{last}_bn3", f"{last}_bn2") if n in names)
        outputs.append(model.backbone.get_layer(end).output)
    probe = keras.Model(model.backbone.input, outputs)
    image = np.asarray(image)
    x = as_model_input(image[None] if image.ndim == 3 else image, model.spec)
    maps = probe(tf.constant(x[:1]), training=False)
    return {s: np.asarray(m[0]) for s, m in zip(stages, maps)}


def save_model(model: TransferModel, path) -> Path:
    """Save the model (architecture, weights, preprocessing spec, class names) as one ``.keras`` file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Keras saves whole models to a '.keras' file; received {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def load_model(path) -> TransferModel:
    """Load a model saved by :func:`save_model` (without its optimizer: ready to predict or to ``fit`` again)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {path}. Save one with save_model(model, {str(path)!r}).")
    if path.suffix != ".keras":
        raise ValueError(f"{path} is not a .keras file; save_model writes the Keras format (model.keras). Pass that file.")
    try:
        # safe_mode (Keras' default, stated here on purpose): a file that asks to rebuild Python code is refused
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a damaged or foreign file
        raise ValueError(f"{path} cannot be loaded as a model written by save_model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]}). It is damaged, from another program, or asks to run code "
                         "(refused). Only load files you or the course wrote; re-save with save_model(model, path).") from None
