import keras
import numpy as np
import pytest
import tensorflow as tf

import transfer_course.tensorflow as T
from helpers import check_model_outputs
from transfer_course.errors import WeightsUnavailableError
from transfer_course.models import efficientnet_lite0_weights


def test_weights_land_in_the_right_layers(lite0):
    weights = efficientnet_lite0_weights()
    stem = lite0.backbone.get_layer("conv_stem").kernel.numpy()
    assert np.array_equal(stem, weights["conv_stem.weight"].transpose(2, 3, 1, 0))
    dw = lite0.backbone.get_layer("blocks_5_3_conv_dw").kernel.numpy()
    assert np.array_equal(dw, weights["blocks.5.3.conv_dw.weight"].transpose(2, 3, 0, 1))
    bn = lite0.backbone.get_layer("bn2")
    assert np.array_equal(bn.moving_variance.numpy(), weights["bn2.running_var"])


def test_new_head(lite0):
    model = T.create_model(num_classes=5)
    assert model(tf.zeros((2, 64, 64, 3))).shape == (2, 5)
    assert np.array_equal(model.backbone.get_layer("conv_stem").kernel.numpy(), lite0.backbone.get_layer("conv_stem").kernel.numpy())


@pytest.mark.parametrize("bad", [1, 0, -3, "3", 2.5])
def test_num_classes_must_be_at_least_two(bad):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        T.create_model(num_classes=bad)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="Valid choices: efficientnet_lite0, mobilenet_v2, resnet50, vgg16"):
        T.create_model("resnet18")


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "vgg16"])
def test_online_architectures_split_into_backbone_and_head(name):
    model = T.create_model(name, pretrained=False, num_classes=3)
    x = tf.zeros((1, 224, 224, 3))
    assert model.backbone(x).shape == (1, model.spec.feature_dim)
    assert model(x).shape == (1, 3)
    imagenet = T.create_model(name, pretrained=False)
    assert imagenet.output_shape[-1] == 1000 and len(imagenet.class_names) == 1000


def test_online_weights_offline_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        T.create_model("resnet50")
    message = str(err.value)
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels.h5") in message
    assert "efficientnet_lite0" in message


def test_download_failure_is_translated(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] name resolution")

    monkeypatch.setattr(keras.applications, "MobileNetV2", no_network)
    with pytest.raises(WeightsUnavailableError, match="Could not download ImageNet weights for mobilenet_v2"):
        T.create_model("mobilenet_v2")


def test_frozen_backbone_and_batchnorm_do_not_move_in_a_training_step():
    keras.utils.set_random_seed(0)
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in model.backbone.weights]
    head_before = model.head.get_layer("classifier").kernel.numpy().copy()
    model.fit(np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32"), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    moved = [w.path for w, b in zip(model.backbone.weights, before) if not np.array_equal(w.numpy(), b)]
    assert moved == [], f"frozen weights or BatchNorm statistics moved: {moved[:5]}"
    assert not np.array_equal(head_before, model.head.get_layer("classifier").kernel.numpy()), "the head must train"
    assert T.count_parameters(model)[1] == 1280 * 3 + 3


def test_trainable_batchnorm_does_update():
    """The counterpart: an unfrozen backbone's BatchNorm statistics move, so the test above can fail."""
    model = T.create_model(num_classes=3)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.backbone.get_layer("bn1").moving_mean.numpy().copy()
    model.fit(np.random.default_rng(0).normal(size=(4, 64, 64, 3)).astype("float32"), np.array([0, 1, 2, 0]), verbose=0)
    assert not np.array_equal(before, model.backbone.get_layer("bn1").moving_mean.numpy())


def test_parameter_counts_match_pytorch_convention(lite0):
    assert T.count_parameters(lite0) == (4_652_008, 4_652_008)


def test_features_predictions_maps_and_grayscale(lite0):
    check_model_outputs(T, lite0)


def test_saved_model_reloads(tmp_path):
    model = T.create_model(num_classes=3)
    x = tf.random.uniform((1, 64, 64, 3), -1, 1)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert np.allclose(reloaded(x, training=False), model(x, training=False), atol=1e-5)
