"""The TensorFlow lesson's reference solutions pass their checks; typical mistakes get specific feedback."""
import numpy as np
import pytest
import tensorflow as tf

from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed
from transfer_course.imagenet import imagenet_classes

NOTEBOOK = "01_pretrained_models_tensorflow"


@pytest.mark.parametrize("exercise", ["to_model_input", "top5", "cosine_similarity"])
def test_reference_passes(exercise):
    CHECKS[("01_pretrained_models", exercise)](reference_solution(NOTEBOOK, exercise, tf=tf), framework="tensorflow")


@pytest.mark.parametrize("wrong,feedback", [
    (lambda im: tf.constant(im, tf.float32)[tf.newaxis], "divide by 255"),
    (lambda im: (tf.constant(im, tf.float32) / 255)[tf.newaxis], "subtract 0.5"),
    (lambda im: (tf.constant(im, tf.float32) / 255 - 0.5) / 0.5, "no batch dimension"),
    (lambda im: tf.transpose((tf.constant(im, tf.float32) / 255 - 0.5) / 0.5, (2, 0, 1))[tf.newaxis], "expected shape"),
    (lambda im: tf.constant(im)[tf.newaxis], "float32"),
])
def test_to_model_input_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        CHECKS[("01_pretrained_models", "to_model_input")](wrong, framework="tensorflow")


def test_top5_with_logits_instead_of_probabilities():
    names = imagenet_classes()

    def logits_only(z):
        values, idx = tf.math.top_k(z, 5)
        return [(names[i], float(v)) for v, i in zip(values.numpy(), idx.numpy())]

    with pytest.raises(ExerciseFailed, match="raw logits"):
        CHECKS[("01_pretrained_models", "top5")](logits_only, framework="tensorflow")
