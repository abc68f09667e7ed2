"""Checks for lesson 01, pretrained models."""
from __future__ import annotations

import copy
import importlib

import numpy as np

from ._base import (
    ExerciseFailed,
    check,
    expect,
    side,
    tensor_type,
    to_numpy,
)


# --- 01 pretrained models ------------------------------------------------------------------------
@check("01_pretrained_models", "to_model_input")
def _to_model_input(fn, framework: str) -> str:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    image[0, 0] = (0, 128, 255)
    original = image.copy()
    out = fn(image)
    expect(np.array_equal(image, original), "your function changed the input image in place; work on a copy.")
    kind = "torch.Tensor" if framework == "torch" else "tf.Tensor"
    expect(isinstance(out, tensor_type(framework)), f"return a {kind}, not {type(out).__name__}.")
    shape = tuple(out.shape)
    want = (1, 3, 224, 224) if framework == "torch" else (1, 224, 224, 3)
    if framework == "torch" and shape == (1, 224, 224, 3):
        raise ExerciseFailed("the channels are last (1, 224, 224, 3); PyTorch wants (1, 3, 224, 224). Use .permute(2, 0, 1) before adding the batch dimension.")
    if shape in ((3, 224, 224), (224, 224, 3)):
        raise ExerciseFailed(f"shape {shape} has no batch dimension; the model wants a batch, here of one: {want}.")
    expect(shape == want, f"expected shape {want}, got {shape}.")
    dtype = getattr(out.dtype, "name", None) or str(out.dtype)  # tf: 'float32'; torch: 'torch.float32'
    expect(dtype.endswith("float32"), f"expected float32 values, got {dtype}; convert before normalising.")
    x = to_numpy(out)
    if framework == "torch":
        x = x[0].transpose(1, 2, 0)
    else:
        x = x[0]
    expected = (original.astype(np.float32) / 255.0 - 0.5) / 0.5
    if np.allclose(x, expected, atol=1e-4):
        return "Values run from -1 (black) to +1 (white), as EfficientNet-Lite0 was trained."
    imagenet = (original / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    if np.allclose(x, imagenet, atol=1e-3):
        raise ExerciseFailed("that is the ImageNet mean/std normalisation of torchvision models; EfficientNet-Lite0 "
                             "was trained with (x / 255 - 0.5) / 0.5.")
    if x.max() > 2:
        raise ExerciseFailed(f"values reach {x.max():.0f}: scale the pixels to [0, 1] first (divide by 255).")
    if x.min() >= 0:
        raise ExerciseFailed("values are in [0, 1]; the model expects [-1, 1]: subtract 0.5 and divide by 0.5.")
    raise ExerciseFailed(f"values are off, e.g. pixel (0, 0) is {np.round(x[0, 0], 3)}, expected {np.round(expected[0, 0], 3)}.")


def _pooled_shape_feedback(out: np.ndarray, reference: np.ndarray, what: str) -> None:
    """Shared by both feature exercises: say what a wrongly shaped feature array is."""
    n, channels = reference.shape
    if out.ndim == 4:
        if out.shape[2:] == (1, 1) or out.shape[1:3] == (1, 1):
            raise ExerciseFailed(f"{what} has shape {out.shape}: pooled, but the 1×1 grid is still there; flatten it to "
                                 f"({n}, {channels}) (torch.flatten(x, 1), nn.Flatten() or keras.layers.Flatten()).")
        raise ExerciseFailed(f"{what} has shape {out.shape}: that is the 4-D spatial feature map, not one vector per "
                             f"image. Average it over its height and width (global average pooling) to get ({n}, {channels}).")
    if out.ndim < 2:
        raise ExerciseFailed(f"{what} has shape {out.shape}: you averaged over too much. Average only over height and "
                             f"width, keeping one vector of {channels} numbers per image: ({n}, {channels}).")


# --- Exercise: a framework-zoo classifier without its classifier -----------------------------------------------
@check("01_pretrained_models", "feature_extractor")
def _feature_extractor(fn, framework: str) -> str:
    rng = np.random.default_rng(2)
    if framework == "torch":
        torch = importlib.import_module("torch")
        models = importlib.import_module("torchvision.models")
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = models.resnet18(weights=None).eval()
        x = torch.from_numpy(rng.normal(size=(2, 3, 64, 64)).astype(np.float32))
        pooled = {}
        hook = model.avgpool.register_forward_hook(lambda _m, _i, out: pooled.__setitem__("x", torch.flatten(out, 1)))
        with torch.no_grad():
            model(x)
        hook.remove()
        reference, fix = pooled["x"].numpy(), "set model.fc = nn.Identity() and return the model"
        result = fn(model)
        _callable_feedback(result, fix)
        if isinstance(result, torch.nn.Module):
            result.eval()
        with torch.no_grad():
            out = result(x)
        expect(isinstance(out, torch.Tensor), f"calling the returned model gave {type(out).__name__}; it should give a tensor.")
        out = out.numpy()
    else:
        keras = importlib.import_module("keras")
        model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
        x = rng.uniform(-1, 1, size=(2, 96, 96, 3)).astype(np.float32)
        last_map = keras.Model(model.input, model.get_layer("out_relu").output)(x, training=False)
        reference = np.asarray(last_map).mean(axis=(1, 2))
        fix = "return keras.Model(model.input, model.layers[-2].output), the global-average-pooling layer's output"
        result = fn(model)
        _callable_feedback(result, fix)
        out = result(x, training=False) if isinstance(result, keras.layers.Layer) else result(x)
        out = to_numpy(out)
    if out.shape == (len(reference), 1000):
        raise ExerciseFailed("the model still outputs the 1000 ImageNet class scores: its classifier is still on top. "
                             f"Remove it: {fix}.")
    _pooled_shape_feedback(out, reference, "the output")
    expect(out.shape == reference.shape, f"expected one {reference.shape[1]}-number feature vector per image, "
           f"{reference.shape}; got {out.shape}.")
    scale = float(np.abs(reference).max()) + 1e-12  # random weights: the features can be small; compare relative to them
    expect(np.allclose(out, reference, rtol=1e-3, atol=1e-3 * scale), "the shape is right but the values differ from the "
           "network's pooled features; return the same network with only its classifier removed (no new layers).")
    return (f"images -> {reference.shape[1]} pooled features: the ImageNet classifier is gone, ready for a new head "
            "or for the features themselves.")


def _callable_feedback(result, fix: str) -> None:
    if result is None:
        raise ExerciseFailed(f"your function returned None. Return the model: {fix}.")
    if not callable(result) or isinstance(result, type):
        raise ExerciseFailed(f"return a model you can call on images, not {type(result).__name__}: {fix}.")


# --- Exercise: pooled features of intermediate stages ----------------------------------------------------------
_STAGES = (1, 3, 5)
_SIZE = 128  # stages 1, 3, 5 then have grids 32, 8 and 4 cells wide, unlike any stage's channel count


def _stage_references(framework: str, images: np.ndarray):
    """Pooled outputs of all seven stages of a fresh Lite0 backbone, in inference and in training mode, computed
    stage by stage (PyTorch) or from one multi-output sub-model (Keras). Returns ``(backbone, eval, train)``."""
    T = side(framework)
    backbone = T.create_model("efficientnet_lite0").backbone
    if framework == "torch":
        torch = importlib.import_module("torch")

        def run(module, train):
            module.train(train)
            out, x = {}, torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
            with torch.no_grad():
                x = module.bn1(module.conv_stem(x))
                for s, stage in enumerate(module.blocks):
                    x = stage(x)
                    out[s] = x.mean(dim=(2, 3)).numpy()
            return out

        reference = run(backbone, train=False)
        trained = run(copy.deepcopy(backbone), train=True)
        backbone.train()  # as a freshly built model is: the function must switch to inference mode itself
        return backbone, reference, trained, torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    keras = importlib.import_module("keras")
    ends = [[layer.name for layer in backbone.layers if layer.name.startswith(f"blocks_{s}_")][-1] for s in range(7)]
    probe = keras.Model(backbone.input, [backbone.get_layer(name).output for name in ends])
    reference = {s: np.asarray(m).mean(axis=(1, 2)) for s, m in enumerate(probe(images, training=False))}
    saved = backbone.get_weights()  # a call with training=True moves BatchNorm's statistics: put them back after
    trained = {s: np.asarray(m).mean(axis=(1, 2)) for s, m in enumerate(probe(images, training=True))}
    backbone.set_weights(saved)
    return backbone, reference, trained, images


@check("01_pretrained_models", "intermediate_features")
def _intermediate_features(fn, framework: str) -> str:
    images = np.random.default_rng(4).uniform(-1, 1, size=(3, _SIZE, _SIZE, 3)).astype(np.float32)
    backbone, reference, trained, x = _stage_references(framework, images)
    got = fn(backbone, x, list(_STAGES))
    expect(isinstance(got, dict), f"return a dict {{stage: features}}, e.g. {{1: array, 3: array, 5: array}}; got {type(got).__name__}.")
    expect(set(got) == set(_STAGES), f"asked for stages {list(_STAGES)}; the dict's keys are {sorted(got, key=str)}.")
    if framework == "torch":
        torch = importlib.import_module("torch")
        for s in _STAGES:
            if isinstance(got[s], torch.Tensor) and got[s].requires_grad:
                raise ExerciseFailed("the features still carry gradients (requires_grad=True): run the backbone inside "
                                     "`with torch.no_grad():` (or torch.inference_mode()) and return .numpy() arrays.")
        hooks = sum(len(m._forward_hooks) for m in backbone.modules())
        expect(hooks == 0, f"{hooks} forward hook(s) are still registered on the backbone after your function returned: "
               "keep the handles that register_forward_hook returns and call handle.remove() (in a finally: block).")
    for s in _STAGES:
        expect(isinstance(got[s], (np.ndarray, np.generic)), f"return NumPy arrays (tensor.numpy()), not {type(got[s]).__name__}, "
               "so that scikit-learn can use them directly.")
    for s in _STAGES:
        out, want = np.asarray(got[s]), reference[s]
        _pooled_shape_feedback(out, want, f"stage {s}'s features")
        if out.ndim == 2 and out.shape[1] != want.shape[1]:
            width = _SIZE // {0: 2, 1: 4, 2: 8, 3: 16, 4: 16, 5: 32, 6: 32}[s]
            if out.shape[1] == want.shape[1] * width * width:
                raise ExerciseFailed(f"stage {s}'s features have {out.shape[1]} numbers per image: you flattened the "
                                     f"{width}×{width} map; average it over height and width instead, to {want.shape}.")
            if out.shape[1] == width:
                raise ExerciseFailed(f"stage {s}'s features have shape {out.shape}: you averaged over the channels and "
                                     f"one spatial axis. Keep the {want.shape[1]} channels and average over height and "
                                     "width: " + ("dim=(2, 3) for PyTorch's (N, C, H, W)." if framework == "torch"
                                                  else "axis=(1, 2) for Keras' (N, H, W, C)."))
            other = [t for t, r in reference.items() if r.shape[1] == out.shape[1]]
            if other:
                raise ExerciseFailed(f"for stage {s} you returned {out.shape[1]} channels, the width of stage {other[0]}: "
                                     f"stages are numbered from 0, and stage {s} has {want.shape[1]} channels.")
        expect(out.shape == want.shape, f"stage {s}: expected {want.shape} (images, channels); got {out.shape}.")
        if not np.allclose(out, want, rtol=1e-3, atol=1e-4):
            if np.allclose(out, trained[s], rtol=1e-3, atol=1e-4):
                raise ExerciseFailed("the backbone ran in training mode, so BatchNorm normalised with this batch's own "
                                     "statistics: " + ("call backbone.eval() before the forward pass." if framework == "torch"
                                                       else "call the model with training=False."))
            raise ExerciseFailed(f"stage {s}'s features have the right shape but not the right values; take the output "
                                 "of the stage's last block, then average over height and width.")
    return "one vector per image from any depth of the network: the stage becomes a choice you can measure."
