"""Lesson 02 (TensorFlow): the reference solutions pass their checks; typical mistakes get specific feedback."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from tqdm.auto import tqdm

from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "02_feature_extraction_tensorflow"
TOPIC = "02_feature_extraction"


def run(exercise, fn):
    return CHECKS[(TOPIC, exercise)](fn, framework="tensorflow")


@pytest.mark.parametrize("exercise", ["build_head", "freeze_backbone", "extract_features"])
def test_reference_passes(exercise):
    run(exercise, reference_solution(NOTEBOOK, exercise, keras=keras, layers=layers, tqdm=tqdm))


def _head(d, c, *rest, softmax=False, dropout=True, hidden=True):
    stack = [keras.Input((d,))]
    stack += [layers.Dense(64, activation="relu")] if hidden else []
    stack += [layers.Dropout(0.3)] if dropout else []
    stack += [layers.Dense(c, activation="softmax" if softmax else None)]
    return keras.Sequential(stack)


@pytest.mark.parametrize("wrong,feedback", [
    (lambda d, c, *a, **k: _head(d, c, hidden=False), "hidden dense layer"),
    (lambda d, c, *a, **k: _head(d, c, dropout=False), "Dropout"),
    (lambda d, c, *a, **k: _head(d, c, softmax=True), "softmax"),
])
def test_build_head_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("build_head", wrong)


def _freeze_all(model):
    model.trainable = False
    return model


def _freeze_no_return(model):
    model.backbone.trainable = False


@pytest.mark.parametrize("wrong,feedback", [
    (_freeze_all, "freeze only the backbone"), (lambda model: model, "not frozen"), (_freeze_no_return, "return the model"),
])
def test_freeze_backbone_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("freeze_backbone", wrong)


def _pairs(backbone, loader, **kwargs):
    return [(np.asarray(backbone(x, **kwargs)), np.asarray(y)) for x, y in loader]


def _training_mode(backbone, loader):
    pairs = _pairs(backbone, loader, training=True)
    return np.concatenate([f for f, _ in pairs]), np.concatenate([y for _, y in pairs])


def _tensors(backbone, loader):
    pairs = [(backbone(x, training=False), y) for x, y in loader]
    return tf.concat([f for f, _ in pairs], 0), tf.concat([y for _, y in pairs], 0)


def _second_pass_labels(backbone, loader):
    features = np.concatenate([np.asarray(backbone(x, training=False)) for x, _ in loader])
    return features, np.concatenate([np.asarray(y) for _, y in loader])


def _last_batch_only(backbone, loader):
    for x, y in loader:
        features, labels = np.asarray(backbone(x, training=False)), np.asarray(y)
    return features, labels


def _list_of_batches(backbone, loader):
    pairs = _pairs(backbone, loader, training=False)
    return [f for f, _ in pairs], np.concatenate([y for _, y in pairs])


def _not_pooled(backbone, loader):  # the feature maps before pooling
    maps = keras.Model(backbone.input, backbone.layers[3].output)
    pairs = _pairs(maps, loader, training=False)
    return np.concatenate([f for f, _ in pairs]), np.concatenate([y for _, y in pairs])


@pytest.mark.parametrize("wrong,feedback", [
    (_training_mode, "training mode"), (_tensors, "return NumPy arrays"), (_second_pass_labels, "do not line up"),
    (_last_batch_only, "keep every batch"), (_list_of_batches, "np.concatenate"), (_not_pooled, "2-D"),
])
def test_extract_features_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("extract_features", wrong)
