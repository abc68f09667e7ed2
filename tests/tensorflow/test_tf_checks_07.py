"""Lesson 07 (TensorFlow): the reference solutions pass their checks; typical mistakes get specific feedback."""
import keras
import pytest
import tensorflow as tf
from helpers import reference_solution
from keras import ops

from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "07_nlp_transfer_tensorflow"
NAMES = {"tf": tf, "keras": keras, "ops": ops}


def run(exercise, fn):
    return CHECKS[("07_nlp_transfer", exercise)](fn, framework="tensorflow")


@pytest.mark.parametrize("exercise", ["mean_pooling", "encoder_param_groups", "cosine_similarities"])
def test_reference_solutions_pass(exercise):
    assert run(exercise, reference_solution(NOTEBOOK, exercise, **NAMES))


def _mask(x, m):
    return ops.cast(m, x.dtype)[:, :, None]


@pytest.mark.parametrize("answer, message", [
    (lambda x, m: ops.mean(x, axis=1), "padding included"),
    (lambda x, m: ops.sum(x * _mask(x, m), axis=1), "masked SUM"),
    (lambda x, m: ops.sum(x * _mask(x, m), axis=1) / x.shape[1], "padded length T"),
    (lambda x, m: ops.mean(x * _mask(x, m), axis=2), "one vector per text"),
])
def test_mean_pooling_mistakes(answer, message):
    with pytest.raises(ExerciseFailed, match=message):
        run("mean_pooling", answer)


def _groups(swap=False, bottom=False, freeze=True):
    def answer(model, head_lr, encoder_lr, top_layers):
        if freeze:
            for layer in model.encoder.layers:
                layer.trainable = False
        ids = range(top_layers) if bottom else range(6 - top_layers, 6)
        top = [model.encoder.get_layer(f"layer_{i}") for i in ids]
        for layer in top:
            layer.trainable = True
        lrs = (encoder_lr, head_lr) if swap else (head_lr, encoder_lr)
        return [{"variables": list(model.head.trainable_variables), "lr": lrs[0]},
                {"variables": [v for layer in top for v in layer.trainable_variables], "lr": lrs[1]}]
    return answer


@pytest.mark.parametrize("kwargs, message", [
    ({"swap": True}, "swapped"),
    ({"bottom": True}, "BOTTOM"),
    ({"freeze": False}, "still trainable"),
])
def test_param_group_mistakes(kwargs, message):
    with pytest.raises(ExerciseFailed, match=message):
        run("encoder_param_groups", _groups(**kwargs))


def _normalize(x, axis):
    return x / ops.norm(x, axis=axis, keepdims=True)


@pytest.mark.parametrize("answer, message", [
    (lambda a, b: ops.matmul(a, ops.transpose(b)), "plain dot product"),
    (lambda a, b: 1 - ops.matmul(_normalize(a, 1), ops.transpose(_normalize(b, 1))), "DISTANCE"),
    (lambda a, b: ops.matmul(_normalize(a, 0), ops.transpose(_normalize(b, 0))), "wrong axis"),
])
def test_cosine_mistakes(answer, message):
    with pytest.raises(ExerciseFailed, match=message):
        run("cosine_similarities", answer)
