"""Lesson 04 (TensorFlow): the reference solutions pass their checks; typical mistakes get specific feedback."""
import pytest
import tensorflow as tf
from helpers import reference_solution
from keras import layers

from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "04_domain_adaptation_tensorflow"
NAMES = {"tf": tf, "layers": layers}


def run(exercise, fn):
    return CHECKS[("04_domain_adaptation", exercise)](fn, framework="tensorflow")


@pytest.mark.parametrize("exercise", ["adabn_by_hand", "coral", "reverse_gradient"])
def test_reference_solutions_pass(exercise):
    assert run(exercise, reference_solution(NOTEBOOK, exercise, **NAMES))


def _adabn(reset=True, momentum=lambda k: k / (k + 1), training=True, step=False):
    def answer(model, target_x, batch_size=64):
        bns = [layer for layer in model.features.layers if isinstance(layer, layers.BatchNormalization)]
        if reset:
            for bn in bns:
                bn.moving_mean.assign(tf.zeros_like(bn.moving_mean))
                bn.moving_variance.assign(tf.ones_like(bn.moving_variance))
        if step:
            for v in model.trainable_weights:
                v.assign_add(tf.ones_like(v) * 0.1)
        for k, start in enumerate(range(0, len(target_x), batch_size)):
            for bn in bns:
                bn.momentum = momentum(k)
            model(target_x[start:start + batch_size], training=training)
        for bn in bns:
            bn.momentum = 0.9
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (_adabn(training=False), "did not change .*model\\(x, training=True\\)"),
    (_adabn(reset=False, momentum=lambda k: 0.9), "neither the target's mean nor the source's"),
    (_adabn(momentum=lambda k: 0.0), "last batch only"),
    (_adabn(step=True), "weights moved"),
])
def test_adabn_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("adabn_by_hand", wrong)


def _cov(h, ddof=1, center=True):
    if center:
        h = h - tf.reduce_mean(h, 0, keepdims=True)
    return tf.matmul(h, h, transpose_a=True) / (h.shape[0] - ddof)


def _norm(h):
    return 4.0 * h.shape[1] ** 2


@pytest.mark.parametrize("wrong,feedback", [
    (lambda s, t: tf.reduce_sum((_cov(s) - _cov(t)) ** 2), "4·d² times too large"),
    (lambda s, t: tf.reduce_sum((_cov(s) - _cov(t)) ** 2) / (4.0 * s.shape[1]), "not 4·d"),
    (lambda s, t: tf.reduce_sum((_cov(s, 0) - _cov(t, 0)) ** 2) / _norm(s), "divided by n − 1"),
    (lambda s, t: tf.reduce_sum((_cov(s, 1, False) - _cov(t, 1, False)) ** 2) / _norm(s), "not centred"),
    (lambda s, t: tf.norm(_cov(s) - _cov(t)) / _norm(s), "not its square"),
    (lambda s, t: float(tf.reduce_sum((_cov(s) - _cov(t)) ** 2) / _norm(s)), "return a TensorFlow tensor"),
    (lambda s, t: tf.constant((tf.reduce_sum((_cov(s) - _cov(t)) ** 2) / _norm(s)).numpy()), "no gradient"),
])
def test_coral_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("coral", wrong)


def _reverse(forward_sign=1.0, backward=lambda lam, g: -lam * g):
    def answer(x, lam):
        @tf.custom_gradient
        def reverse(x, lam):
            def grad(upstream):
                return backward(lam, upstream), tf.zeros_like(lam)
            return forward_sign * tf.identity(x), grad
        return reverse(x, tf.cast(lam, x.dtype))
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (lambda x, lam: tf.identity(x), "passes through unchanged"),
    (_reverse(forward_sign=-1.0), "negates its input"),
    (_reverse(backward=lambda lam, g: -g), "λ is ignored"),
    (_reverse(backward=lambda lam, g: lam * g), "multiplied by \\+λ"),
])
def test_reverse_gradient_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("reverse_gradient", wrong)
