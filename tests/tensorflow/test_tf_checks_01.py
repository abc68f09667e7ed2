"""Lesson 01 (TensorFlow): the reference solutions pass their checks; typical mistakes get specific feedback."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "01_pretrained_models_tensorflow"


def run(exercise, fn):
    return CHECKS[("01_pretrained_models", exercise)](fn, framework="tensorflow")


@pytest.mark.parametrize("exercise", ["to_model_input", "feature_extractor", "intermediate_features"])
def test_reference_passes(exercise):
    run(exercise, reference_solution(NOTEBOOK, exercise, tf=tf, keras=keras))


@pytest.mark.parametrize("wrong,feedback", [
    (lambda im: tf.constant(im, tf.float32)[tf.newaxis], "divide by 255"),
    (lambda im: (tf.constant(im, tf.float32) / 255)[tf.newaxis], "subtract 0.5"),
    (lambda im: (tf.constant(im, tf.float32) / 255 - 0.5) / 0.5, "no batch dimension"),
    (lambda im: tf.transpose((tf.constant(im, tf.float32) / 255 - 0.5) / 0.5, (2, 0, 1))[tf.newaxis], "expected shape"),
    (lambda im: tf.constant(im)[tf.newaxis], "float32"),
])
def test_to_model_input_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("to_model_input", wrong)


@pytest.mark.parametrize("wrong,feedback", [
    (lambda model: model, "still outputs the 1000 ImageNet class scores"),
    (lambda model: keras.Model(model.input, model.get_layer("out_relu").output), "4-D spatial feature map"),
    (lambda model: None, "returned None"),
    (lambda model: model.layers[-2].output, "return a model you can call"),
    (lambda model: keras.Model(model.input, model.get_layer("Conv_1_bn").output), "4-D spatial feature map"),
    (lambda model: keras.Model(model.input, keras.layers.GlobalAveragePooling2D()(model.get_layer("Conv_1_bn").output)),
     "values differ"),
])
def test_feature_extractor_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("feature_extractor", wrong)


def _features(reduce=lambda m: np.asarray(m).mean(axis=(1, 2)), training=False, offset=0, as_numpy=True):
    """intermediate_features with one thing changed at a time."""
    def fn(backbone, images, stages):
        ends = [[l.name for l in backbone.layers if l.name.startswith(f"blocks_{s + offset}_")][-1] for s in stages]
        probe = keras.Model(backbone.input, [backbone.get_layer(n).output for n in ends])
        maps = probe(images, training=training)
        return {s: reduce(m) if as_numpy else tf.reduce_mean(m, axis=(1, 2)) for s, m in zip(stages, maps)}
    return fn


@pytest.mark.parametrize("wrong,feedback", [
    (_features(reduce=lambda m: np.asarray(m)), "4-D spatial feature map"),
    (_features(reduce=lambda m: np.asarray(m).mean(axis=(2, 3))), "averaged over the channels"),
    (_features(reduce=lambda m: np.asarray(m).reshape(len(m), -1)), "flattened"),
    (_features(reduce=lambda m: np.asarray(m).mean()), "averaged over too much"),
    (_features(training=True), "training mode"),
    (_features(offset=-1), "width of stage 0"),
    (_features(as_numpy=False), "return NumPy arrays"),
    (lambda backbone, images, stages: [0] * len(stages), "return a dict"),
])
def test_intermediate_features_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("intermediate_features", wrong)
