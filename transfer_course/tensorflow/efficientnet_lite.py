"""EfficientNet-Lite0 in Keras 3, loading the same ImageNet weights as the PyTorch side.

EfficientNet-Lite (Tan & Le, 2019, the mobile variant) is EfficientNet-B0 without
squeeze-and-excitation, with ReLU6 instead of swish and a fixed 32-channel stem and 1280-channel
head. Its blocks are inverted residuals: 1x1 expand -> kxk depthwise -> 1x1 project, with a skip
when shape is kept. The original was trained in TensorFlow with "same" padding and BatchNorm
epsilon 1e-3, which Keras layers reproduce directly; the parity test checks that the logits
match the PyTorch model to 1e-3.

Layer names follow the parameter names of :func:`transfer_course.models.lite0_parameter_names`
with dots replaced by underscores, so loading is by name, not by position.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from ..models import LITE0_HEAD, LITE0_STAGES, LITE0_STEM, efficientnet_lite0_weights

__all__ = ["efficientnet_lite0_backbone", "load_lite0_weights"]

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1 in Keras' convention


def _bn(name):
    return layers.BatchNormalization(epsilon=_BN_EPS, momentum=_BN_MOMENTUM, name=name)


def efficientnet_lite0_backbone(input_shape=(None, None, 3), name: str = "backbone") -> keras.Model:
    """Image ``(H, W, 3)`` normalised to [-1, 1] -> pooled 1280-d features. Weights are random."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(LITE0_STEM, 3, strides=2, padding="same", use_bias=False, name="conv_stem")(inputs)
    x = layers.ReLU(6.0, name="stem_relu6")(_bn("bn1")(x))
    channels = LITE0_STEM
    for s, (kind, repeats, kernel, stride, expand, out) in enumerate(LITE0_STAGES):
        for i in range(repeats):
            b, st = f"blocks_{s}_{i}", stride if i == 0 else 1
            shortcut = x
            if kind == "ds":
                x = layers.DepthwiseConv2D(kernel, strides=st, padding="same", use_bias=False, name=f"{b}_conv_dw")(x)
                x = layers.ReLU(6.0, name=f"{b}_relu6")(_bn(f"{b}_bn1")(x))
                x = _bn(f"{b}_bn2")(layers.Conv2D(out, 1, use_bias=False, name=f"{b}_conv_pw")(x))
            else:
                x = layers.Conv2D(channels * expand, 1, use_bias=False, name=f"{b}_conv_pw")(x)
                x = layers.ReLU(6.0, name=f"{b}_relu6_a")(_bn(f"{b}_bn1")(x))
                x = layers.DepthwiseConv2D(kernel, strides=st, padding="same", use_bias=False, name=f"{b}_conv_dw")(x)
                x = layers.ReLU(6.0, name=f"{b}_relu6_b")(_bn(f"{b}_bn2")(x))
                x = _bn(f"{b}_bn3")(layers.Conv2D(out, 1, use_bias=False, name=f"{b}_conv_pwl")(x))
            if st == 1 and channels == out:
                x = layers.Add(name=f"{b}_add")([shortcut, x])
            channels = out
    x = layers.Conv2D(LITE0_HEAD, 1, use_bias=False, name="conv_head")(x)
    x = layers.ReLU(6.0, name="head_relu6")(_bn("bn2")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name=name)


def _to_keras(name: str, value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:
        # PyTorch (out, in, kh, kw) -> Keras (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)
        return value.transpose(2, 3, 0, 1) if "conv_dw" in name else value.transpose(2, 3, 1, 0)
    if value.ndim == 2:  # Linear (out, in) -> Dense (in, out)
        return value.T
    return value


def load_lite0_weights(backbone: keras.Model, classifier: layers.Dense | None = None) -> None:
    """Copy the ImageNet weights into ``backbone`` (and the 1000-way ``classifier``), by layer name."""
    weights = efficientnet_lite0_weights()
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for name, value in weights.items():
        layer, param = name.rsplit(".", 1)
        grouped.setdefault(layer.replace(".", "_"), {})[param] = _to_keras(name, value)
    for layer_name, params in grouped.items():
        if layer_name == "classifier":
            if classifier is not None:
                classifier.set_weights([params["weight"], params["bias"]])
            continue
        layer = backbone.get_layer(layer_name)
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights([params["weight"], params["bias"], params["running_mean"], params["running_var"]])
        else:
            layer.set_weights([params["weight"]])
