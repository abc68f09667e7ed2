"""transfer_course.tensorflow.adapt: the reversal layer's gradient (λ as a tensor inside tf.function), CORAL against
NumPy, AdaBN touching only BatchNorm statistics, the errors for bad input, and DANN beating source-only on rotated
two moons over seeds."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import make_moons

import transfer_course.tensorflow as T
from transfer_course.adapt import coral_numpy


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_minus_lambda_backward(lam):
    x = tf.random.normal((5, 4))
    upstream = tf.random.normal((5, 4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = T.GradientReversal(lam)(x)
        loss = tf.reduce_sum(y * upstream)
    assert np.array_equal(y.numpy(), x.numpy())
    assert np.allclose(tape.gradient(loss, x).numpy(), -lam * upstream.numpy(), atol=1e-6)


def test_lambda_reaches_a_tf_function_as_a_tensor():
    x = tf.Variable(tf.ones((3,)))

    @tf.function
    def grad(lam):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(T.grad_reverse(x * 1.0, lam))
        return tape.gradient(loss, x)

    assert np.allclose(grad(tf.constant(0.2)).numpy(), -0.2)
    assert np.allclose(grad(tf.constant(0.9)).numpy(), -0.9)  # the same graph, a new λ


def test_grad_reverse_refuses_a_negative_lambda():
    with pytest.raises(ValueError, match="lam must be a finite number >= 0; received -1"):
        T.grad_reverse(tf.ones(2), -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        T.GradientReversal(-0.5)


def test_coral_loss_equals_numpy_and_is_differentiable():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(32, 6)).astype(np.float32), (rng.normal(size=(20, 6)) * 3 + 1).astype(np.float32)
    xa = tf.Variable(a)
    with tf.GradientTape() as tape:
        loss = T.coral_loss(xa, tf.constant(b))
    assert np.isclose(float(loss), coral_numpy(a, b), rtol=1e-4)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, xa)))) > 0
    with pytest.raises(ValueError, match="same d"):
        T.coral_loss(a, np.zeros((3, 5), np.float32))


def _pretrained_net():
    net = T.make_adaptation_net(6, 3, hidden_units=8, seed=0)
    T.adabn(net, np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32))
    return net


def test_adabn_changes_batchnorm_statistics_and_nothing_else():
    net = _pretrained_net()
    before = {v.path: v.numpy().copy() for v in net.weights}
    target = (np.random.default_rng(2).normal(size=(128, 6)) * 2 + 3).astype(np.float32)
    T.adabn(net, target, batch_size=32)
    changed = {path for path, value in before.items()
               if not np.array_equal(value, next(v for v in net.weights if v.path == path).numpy())}
    bn = net.features.layers[1]
    assert changed == {bn.moving_mean.path, bn.moving_variance.path}
    h = net.features.layers[0](target).numpy()
    assert np.allclose(bn.moving_mean.numpy(), h.mean(0), atol=1e-4)  # equal batches: the target mean
    assert bn.momentum == 0.9


def test_adabn_errors():
    model = keras.Sequential([keras.layers.Dense(2)])
    model.build((None, 3))
    with pytest.raises(ValueError, match="no BatchNormalization layer.*nothing to adapt"):
        T.adabn(model, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="empty target"):
        T.adabn(_pretrained_net(), np.zeros((0, 6), np.float32))


def test_fit_adapted_bad_input():
    net = T.make_adaptation_net(6, 3, hidden_units=8)
    x, y = np.zeros((12, 6), np.float32), np.arange(12) % 3
    with pytest.raises(ValueError, match="Unknown adaptation method 'mmd'"):
        T.fit_adapted(net, (x, y), x, method="mmd")
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        T.fit_adapted(net, (x, y), x, method="dann", lam=-1)
    with pytest.raises(ValueError, match="target set is empty"):
        T.fit_adapted(net, (x, y), x[:0], method="coral")
    with pytest.raises(ValueError, match="features have different sizes"):
        T.fit_adapted(net, (x, y), np.zeros((12, 5), np.float32), method="dann")
    with pytest.raises(ValueError, match="target-only ceiling"):
        T.fit_adapted(net, (x, y), x, method="target-only")


def test_fit_adapted_history_and_reproducibility():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), np.arange(40) % 3
    runs = []
    for _ in range(2):
        net = T.make_adaptation_net(6, 3, hidden_units=8, seed=1)
        history = T.fit_adapted(net, (x, y), x + 1, val=(x, y), target_val=(x + 1, y), method="dann", epochs=3,
                                seed=1, progress=False)
        runs.append([w.copy() for w in net.get_weights()])
    assert len(history) == 3 and {"loss", "transfer_loss", "domain_accuracy", "val_accuracy", "target_val_accuracy",
                                  "lam"} <= set(history.metrics)
    assert 0 < history["lam"][0] < history["lam"][-1] < 1  # the λ_p schedule
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def _rotated_moons(seed, angle=35.0):
    x, y = make_moons(300, noise=0.1, random_state=seed)
    xt, yt = make_moons(300, noise=0.1, random_state=seed + 100)
    a = np.deg2rad(angle)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (x - x.mean(0)).astype(np.float32), y, ((xt - xt.mean(0)) @ rotation.T).astype(np.float32), yt


def test_dann_beats_source_only_on_rotated_two_moons_on_average():
    scores = {"source-only": [], "dann": []}
    for seed in range(3):
        x, y, xt, yt = _rotated_moons(seed)
        for method, values in scores.items():
            net = T.make_adaptation_net(2, 2, hidden_units=32, dropout=0.0, seed=seed)
            T.fit_adapted(net, (x, y), xt, method=method, epochs=30, seed=seed, progress=False)
            values.append(float((np.argmax(net(xt, training=False).numpy(), 1) == yt).mean()))
    assert np.mean(scores["dann"]) >= np.mean(scores["source-only"]) + 0.02, scores


def test_lessons_written_out_dann_loop_equals_fit_adapted():
    from helpers import check_written_out_dann_equals_fit_adapted

    names = {"tf": tf, "keras": keras, "layers": keras.layers, "adabn": T.adabn,
             "make_adaptation_net": T.make_adaptation_net, "seed_everything": T.seed_everything}
    names["accuracy"] = lambda model, split: 0.0  # the cell's per-epoch curve; not what is compared

    def weights(model):
        return [np.array(v) for v in model.weights]

    check_written_out_dann_equals_fit_adapted("tensorflow", T, names, weights)


def test_adabn_keeps_dropout_off():
    """Dropout before BatchNorm: the re-estimated statistics are those of the deterministic features."""
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8)(inputs)
    h = keras.layers.Dropout(0.5)(h)
    outputs = keras.layers.BatchNormalization()(h)
    model = keras.Model(inputs, outputs)
    target = (np.random.default_rng(3).normal(size=(128, 6)) * 2 + 3).astype(np.float32)
    T.adabn(model, target, batch_size=128)
    bn = model.layers[-1]
    features = model.layers[1](target).numpy()
    assert np.allclose(bn.moving_mean.numpy(), features.mean(0), atol=1e-4)
    assert np.allclose(bn.moving_variance.numpy(), features.var(0), rtol=1e-3, atol=1e-4)
    assert "call" not in vars(bn)  # the layer's own call is back
