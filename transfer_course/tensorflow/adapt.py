"""Domain adaptation in TensorFlow/Keras: AdaBN, Deep CORAL and DANN as small pieces, and :func:`fit_adapted`.

The same public names and the same computation as :mod:`transfer_course.torch.adapt`; papers, formulas and shapes:

- :func:`adabn` — Li et al. (2016). Every ``BatchNormalization`` layer's moving mean and variance are reset and
  replaced by the cumulative average of the target batches' statistics: batch ``k`` (from 0) is folded in with
  ``momentum = k / (k + 1)``, so after ``K`` batches each has weight ``1 / K``. Only those statistics change.
- :func:`coral_loss` — Sun & Saenko (2016). ``(n_s, d)``, ``(n_t, d)`` -> ``‖C_s − C_t‖²_F / (4 d²)``.
- :class:`GradientReversal` / :func:`grad_reverse` — Ganin et al. (2016). Forward identity, backward
  ``−λ · grad``, written with ``tf.custom_gradient``. ``λ`` enters as a *tensor argument*: a Python float captured
  by a ``tf.function`` would be frozen into the graph at its first value, so a schedule would never move.
- :func:`fit_adapted` — a ``GradientTape`` loop over cached features, source and target forwarded separately.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..adapt import check_domains, check_lambda, check_method, dann_lambda
from ..training import History, check_finite_loss, check_fit_args
from .device import seed_everything

__all__ = [
    "AdaptationNet",
    "GradientReversal",
    "adabn",
    "coral_loss",
    "embed",
    "fit_adapted",
    "grad_reverse",
    "make_adaptation_net",
    "make_domain_classifier",
]


@tf.custom_gradient
def _reverse_gradient(x, lam):
    def grad(upstream):
        return -lam * upstream, tf.zeros_like(lam)

    return tf.identity(x), grad


def grad_reverse(x, lam=1.0):
    """Identity in the forward pass; multiplies the gradient by ``-lam`` in the backward pass (``lam`` a number
    or a scalar tensor)."""
    if not tf.is_tensor(lam):
        lam = check_lambda(lam)
    x = tf.convert_to_tensor(x)
    return _reverse_gradient(x, tf.cast(lam, x.dtype))


class GradientReversal(keras.layers.Layer):
    """The gradient-reversal layer; ``layer(x, lam=...)`` overrides its ``lam`` for one call (pass a tensor
    inside a ``tf.function``)."""

    def __init__(self, lam: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.lam = check_lambda(lam)

    def call(self, x, lam=None):
        return grad_reverse(x, self.lam if lam is None else lam)

    def get_config(self):
        return {**super().get_config(), "lam": self.lam}


def coral_loss(source, target):
    """Deep CORAL's loss ``‖C_s − C_t‖²_F / (4 d²)`` between ``(n_s, d)`` and ``(n_t, d)`` features (n >= 2)."""
    source, target = tf.convert_to_tensor(source), tf.convert_to_tensor(target)
    if source.shape.rank != 2 or target.shape.rank != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"coral_loss needs (n, d) features with the same d; received {tuple(source.shape)} and "
                         f"{tuple(target.shape)}.")
    if (source.shape[0] is not None and source.shape[0] < 2) or (target.shape[0] is not None and target.shape[0] < 2):
        raise ValueError("coral_loss needs at least 2 samples per domain to estimate a covariance.")
    d = tf.cast(tf.shape(source)[1], source.dtype)

    def covariance(x):
        x = x - tf.reduce_mean(x, axis=0, keepdims=True)
        return tf.matmul(x, x, transpose_a=True) / tf.cast(tf.shape(x)[0] - 1, x.dtype)

    return tf.reduce_sum(tf.square(covariance(source) - covariance(target))) / (4.0 * d * d)


def _batchnorms(model) -> list:
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def _arrays(data):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        data = data[0]
    return np.asarray(data, dtype=np.float32)


def _in_training_mode(call):
    def call_in_training_mode(*args, training=None, **kwargs):
        return call(*args, training=True, **kwargs)
    return call_in_training_mode


def adabn(model, data, batch_size: int = 64):
    """AdaBN: re-estimate every BatchNormalization layer's moving statistics on ``data`` (the target inputs, or an
    ``(x, y)`` pair whose labels are ignored). BatchNorm runs in training mode, every other layer (dropout included)
    as at test time. No weight other than those statistics changes."""
    layers = _batchnorms(model)
    if not layers:
        raise ValueError(f"adabn found no BatchNormalization layer in this {type(model).__name__}: AdaBN re-estimates "
                         "BatchNorm statistics, so a model without BatchNorm has nothing to adapt. Put a "
                         "BatchNormalization layer in the network (e.g. AdaptationNet), or use CORAL or DANN.")
    x = _arrays(data)
    if len(x) == 0:
        raise ValueError("adabn received an empty target set; pass the target inputs.")
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    weights = {id(v): v.numpy() for v in model.weights}
    for layer in layers:
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
        layer.trainable = True  # a frozen BatchNormalization layer ignores training=True
        layer.call = _in_training_mode(layer.call)  # only BatchNorm: dropout stays off, no random numbers drawn
    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size) if len(x[i:i + batch_size]) > 1]
    try:
        for k, batch in enumerate(batches):
            for layer in layers:
                layer.momentum = k / (k + 1)  # cumulative average: moving = k/(k+1) · moving + 1/(k+1) · batch
            model(batch, training=False)  # every other layer as at test time
    finally:
        for layer, (momentum, trainable) in zip(layers, saved):
            layer.momentum, layer.trainable = momentum, trainable
            del layer.call  # back to the class's own call
    stats = {id(v) for layer in layers for v in (layer.moving_mean, layer.moving_variance)}
    for v in model.weights:  # nothing else may move (a stray dropout or training-mode side effect)
        if id(v) not in stats:
            v.assign(weights[id(v)])
    return model


class AdaptationNet(keras.Model):
    """Backbone features ``(N, D)`` -> ``features`` (Dense, BatchNorm, ReLU) ``(N, h)`` -> ``classifier`` ``(N, C)``."""

    def __init__(self, feature_dim: int, num_classes: int, hidden_units: int = 256, dropout: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.features = keras.Sequential([keras.layers.Dense(hidden_units),
                                          keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                                          keras.layers.ReLU()], name="features")
        self.classifier = keras.Sequential([keras.layers.Dropout(dropout), keras.layers.Dense(num_classes)],
                                           name="classifier")
        self.build((None, feature_dim))

    def build(self, input_shape):
        self.features.build(input_shape)
        self.classifier.build(self.features.compute_output_shape(input_shape))
        super().build(input_shape)

    def call(self, x, training=False):
        return self.classifier(self.features(x, training=training), training=training)


def make_adaptation_net(feature_dim: int, num_classes: int, hidden_units: int = 256, dropout: float = 0.3,
                        seed: int = 0) -> AdaptationNet:
    """An :class:`AdaptationNet` with initial weights drawn from ``seed``."""
    keras.utils.set_random_seed(seed)
    return AdaptationNet(feature_dim, num_classes, hidden_units, dropout)


def make_domain_classifier(hidden_units: int = 256) -> keras.Sequential:
    """DANN's domain classifier: ``(N, h)`` features -> one logit per sample (source = 1, target = 0)."""
    model = keras.Sequential([keras.layers.Dense(hidden_units, activation="relu"), keras.layers.Dense(1)],
                             name="domain_classifier")
    model.build((None, hidden_units))
    return model


def embed(model: AdaptationNet, x, batch_size: int = 256) -> np.ndarray:
    """The hidden features ``(N, h)`` of ``model`` (inference mode), e.g. for an embedding plot."""
    x = _arrays(x)
    return np.concatenate([model.features(x[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(x), batch_size)])


def _accuracy(model, data) -> float:
    if data is None:
        return float("nan")
    x, y = _arrays(data), np.asarray(data[1])
    return float((np.argmax(model(x, training=False).numpy(), 1) == y).mean())


def fit_adapted(model: AdaptationNet, source, target=None, val=None, *, method: str = "dann", epochs: int = 60,
                lr: float = 1e-3, batch_size: int = 32, lam: float = 1.0, target_val=None, seed: int = 0,
                progress: bool = True, domain_classifier: keras.Model | None = None,
                target_statistics: bool = True) -> History:
    """Train ``model`` on labelled ``source = (x, y)`` features and unlabelled ``target`` features with ``method``
    (``"source-only"``, ``"adabn"``, ``"coral"`` or ``"dann"``); the same arguments, steps and history as the
    PyTorch :func:`transfer_course.torch.fit_adapted`."""
    check_method(method)
    if method == "target-only":
        raise ValueError("fit_adapted trains with a method that uses *unlabelled* target data. For the target-only "
                         "ceiling, train on the labelled target split with method='source-only'.")
    check_lambda(lam)
    xs, ys = _arrays(source), np.asarray(source[1], dtype=np.int64)
    check_fit_args(epochs, lr, num_train=len(xs))
    uses_target = method != "source-only"
    xt = None
    if uses_target:
        if target is None:
            raise ValueError(f"method={method!r} needs target data: pass target=(target features) or an (x, y) pair.")
        xt = _arrays(target)
        check_domains((xs, ys), xt)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    variables = list(model.trainable_variables)
    if method == "dann":
        domain_classifier = domain_classifier or make_domain_classifier(model.features.layers[0].units)
        variables += list(domain_classifier.trainable_variables)
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(variables)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step(x_s, y_s, x_t, lam_p):
        with tf.GradientTape() as tape:
            h_s = model.features(x_s, training=True)
            logits = model.classifier(h_s, training=True)
            loss = ce(y_s, logits)
            transfer, domain_correct = tf.constant(0.0), tf.constant(0.0)
            if method in ("coral", "dann"):
                h_t = model.features(x_t, training=True)
                if method == "coral":
                    transfer = lam_p * coral_loss(h_s, h_t)
                else:
                    d_logits = domain_classifier(grad_reverse(tf.concat([h_s, h_t], 0), lam_p), training=True)
                    d_labels = tf.concat([tf.ones((tf.shape(h_s)[0], 1)), tf.zeros((tf.shape(h_t)[0], 1))], 0)
                    transfer = bce(d_labels, d_logits)
                    domain_correct = tf.reduce_sum(tf.cast(tf.cast(d_logits > 0, tf.float32) == d_labels, tf.float32))
            l2 = tf.add_n([tf.reduce_sum(tf.square(v)) for v in variables if len(v.shape) > 1]) * 0.5e-4
            total = loss + transfer + l2
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) == y_s, tf.float32))
        return loss, transfer, correct, domain_correct

    steps_per_epoch = (len(xs) + batch_size - 1) // batch_size
    total_steps, step = epochs * steps_per_epoch, 0
    history = History()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc=method, unit="step", leave=False)
    dummy_target = np.zeros((2, xs.shape[1]), np.float32)
    for epoch in range(epochs):
        sums = dict.fromkeys(("loss", "transfer_loss", "correct", "seen", "domain_correct", "domain_seen"), 0.0)
        order = rng.permutation(len(xs))
        for i in range(0, len(xs), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            x_t = xt[rng.integers(len(xt), size=len(idx))] if method in ("coral", "dann") else dummy_target
            lam_p = lam * dann_lambda(step / total_steps) if method == "dann" else lam
            loss, transfer, correct, domain_correct = train_step(xs[idx], ys[idx], x_t, tf.constant(lam_p, tf.float32))
            step += 1
            n = len(idx)
            sums["loss"] += float(loss) * n
            sums["transfer_loss"] += float(transfer) * n
            sums["correct"] += float(correct)
            sums["seen"] += n
            sums["domain_correct"] += float(domain_correct)
            sums["domain_seen"] += 2 * n
            if bar is not None:
                bar.update(1)
        check_finite_loss(sums["loss"] / sums["seen"] + sums["transfer_loss"] / sums["seen"], epoch + 1)
        logs = {"loss": sums["loss"] / sums["seen"], "transfer_loss": sums["transfer_loss"] / sums["seen"],
                "accuracy": sums["correct"] / sums["seen"], "lam": lam_p}
        if method == "dann":
            logs["domain_accuracy"] = sums["domain_correct"] / max(1.0, sums["domain_seen"])
        if val is not None:
            logs["val_accuracy"] = _accuracy(model, val)
        if target_val is not None:
            adapted = uses_target and (target_statistics or method == "adabn")
            logs["target_val_accuracy"] = _accuracy(_with_target_statistics(model, xt) if adapted else model, target_val)
        history.append(logs)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "val_accuracy", "domain_accuracy")})
    if bar is not None:
        bar.close()
    if uses_target and (target_statistics or method == "adabn"):
        adabn(model, xt)  # the target was normalised with its own statistics in training: predict it that way
    return history


def _with_target_statistics(model, xt):
    """Score with target statistics without touching ``model``: swap its statistics in, then back."""
    layers = _batchnorms(model)
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    adabn(model, xt)

    class _Restore:
        def __call__(self, x, training=False):
            out = model(x, training=training)
            for layer, (mean, var) in zip(layers, saved):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(var)
            return out

    return _Restore()

