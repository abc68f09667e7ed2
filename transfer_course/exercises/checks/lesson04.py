"""Checks for lesson 04, domain adaptation: AdaBN by hand, the CORAL loss, the gradient-reversal layer.

Each compares the student's function with a closed form computed here in NumPy (batch statistics, the CORAL
formula, ``-λ · grad``), never with a copy of the solution."""
from __future__ import annotations

import importlib

import numpy as np

from ._base import check, expect, side, to_numpy

TOPIC = "04_domain_adaptation"


# --- AdaBN by hand ---------------------------------------------------------------------------------------
def _bn_stats(model, framework: str):
    if framework == "torch":
        bn = model.features[1]
        return np.array(to_numpy(bn.running_mean)), np.array(to_numpy(bn.running_var))  # copies: updated in place
    bn = model.features.layers[1]
    return np.array(to_numpy(bn.moving_mean)), np.array(to_numpy(bn.moving_variance))


def _weights(model, framework: str) -> list[np.ndarray]:
    if framework == "torch":
        return [np.array(to_numpy(p)) for p in model.parameters()]
    return [np.array(to_numpy(v)) for v in model.trainable_weights]


def _pre_bn(model, x: np.ndarray, framework: str) -> np.ndarray:
    """What the BatchNorm layer sees: the Dense/Linear layer's output, computed here in NumPy."""
    if framework == "torch":
        w, b = to_numpy(model.features[0].weight), to_numpy(model.features[0].bias)
        return x @ w.T + b
    kernel, bias = (to_numpy(v) for v in model.features.layers[0].weights)
    return x @ kernel + bias


@check(TOPIC, "adabn_by_hand")
def _adabn_by_hand(fn, framework: str) -> str:
    T = side(framework)
    rng = np.random.default_rng(0)
    model = T.make_adaptation_net(8, 3, hidden_units=6, seed=0)
    source = rng.normal(0, 1, (128, 8)).astype(np.float32)
    target = rng.normal(1.5, 2.0, (192, 8)).astype(np.float32)
    target[128:] += 2.0  # the last batch differs from the others: an estimate from it alone is easy to spot
    T.adabn(model, source)
    source_mean, _ = _bn_stats(model, framework)
    before = _weights(model, framework)
    if framework == "torch":
        model.eval()
        x = importlib.import_module("torch").from_numpy(target)
    else:
        x = target
    fn(model, x)
    mean, var = _bn_stats(model, framework)
    h = _pre_bn(model, target, framework)
    want_mean = h.mean(0)
    want_var = np.mean([h[i:i + 64].var(0, ddof=1) for i in range(0, 192, 64)], axis=0)
    last_mean = h[128:].mean(0)
    moved = [np.abs(a - b).max() for a, b in zip(before, _weights(model, framework))]
    expect(max(moved) < 1e-6, "weights moved: AdaBN takes no gradient step. Only the BatchNorm statistics may change "
           "(no optimizer, and in PyTorch wrap the forward passes in torch.no_grad()).")
    only_reset = np.allclose(mean, 0.0) and np.allclose(var, 1.0)
    expect(not np.allclose(mean, source_mean, atol=1e-4) and not only_reset, "the BatchNorm statistics did not change "
           "(or were only reset): they only update when the "
           "model runs in training mode (" + ("model.train() before the forward passes" if framework == "torch" else
           "call model(x, training=True)") + ").")
    scale = np.abs(want_mean - source_mean).max()
    if not np.allclose(mean, want_mean, atol=0.05 * scale + 1e-3):
        if np.allclose(mean, last_mean, atol=0.05 * scale + 1e-3):
            raise_msg = ("the statistics are those of the last batch only: each batch overwrote the previous one. "
                         "Average over all target batches (" + ("momentum=None gives a cumulative average" if
                         framework == "torch" else "momentum = k / (k + 1) for batch k") + ").")
        else:
            raise_msg = ("the running mean is neither the target's mean nor the source's: an exponential moving average "
                         "of a few batches still remembers the source statistics. Reset the statistics first and use a "
                         "cumulative average (" + ("bn.reset_running_stats(); bn.momentum = None" if framework == "torch"
                         else "moving_mean = 0, moving_variance = 1, then momentum = k / (k + 1)") + ").")
        expect(False, raise_msg)
    expect(np.allclose(var, want_var, rtol=0.1, atol=1e-3), "the running mean is right but the variance is not: reset "
           "the variance too (to ones) and average it over the same batches.")
    if framework == "torch":
        expect(not model.training, "the model is still in training mode: end with model.eval(), so that predictions "
               "use the new statistics (and dropout is off).")
    return "The BatchNorm layer now normalises with the target's statistics; no weight moved."


# --- CORAL -------------------------------------------------------------------------------------------------
def _cov(x, ddof=1, center=True):
    if center:
        x = x - x.mean(0)
    return x.T @ x / (len(x) - ddof)


@check(TOPIC, "coral")
def _coral(fn, framework: str) -> str:
    rng = np.random.default_rng(1)
    d = 5
    source = rng.normal(0.5, 1.0, (40, d)).astype(np.float32)
    target = (rng.normal(-0.3, 1.0, (30, d)) @ rng.normal(0, 1, (d, d))).astype(np.float32)
    if framework == "torch":
        torch = importlib.import_module("torch")
        xs, xt = torch.tensor(source, requires_grad=True), torch.tensor(target)
        out = fn(xs, xt)
        expect(isinstance(out, torch.Tensor), f"return a torch tensor (received {type(out).__name__}), so the loss "
               "can be added to the classification loss and differentiated.")
        value = float(out.detach().reshape(-1)[0]) if out.numel() == 1 else None
        expect(value is not None, f"return one number (a scalar tensor); received shape {tuple(out.shape)}.")
        expect(out.requires_grad, "the result has no gradient: compute it with torch operations on the input tensors "
               "(no .numpy(), no .detach()).")
    else:
        tf = importlib.import_module("tensorflow")
        xs, xt = tf.Variable(source), tf.constant(target)
        with tf.GradientTape() as tape:
            out = fn(xs, xt)
        expect(tf.is_tensor(out), f"return a TensorFlow tensor (received {type(out).__name__}), so the loss can be "
               "added to the classification loss and differentiated.")
        expect(int(np.prod(out.shape)) == 1, f"return one number (a scalar tensor); received shape {tuple(out.shape)}.")
        value = float(tf.reshape(out, [-1])[0])
        expect(tape.gradient(out, xs) is not None, "the result has no gradient: compute it with tf operations on the "
               "input tensors (no .numpy()).")
    diff = lambda a, b: float(((a - b) ** 2).sum())
    want = diff(_cov(source), _cov(target)) / (4 * d * d)
    close = lambda v: np.isclose(value, v, rtol=1e-3)
    expect(not close(want * 4 * d * d), "the value is 4·d² times too large: divide the squared Frobenius norm by 4·d².")
    expect(not close(want * d), "the value is d times too large: the normaliser is 4·d² (d squared), not 4·d.")
    expect(not close(diff(_cov(source, 0), _cov(target, 0)) / (4 * d * d)), "the covariance divides by n; the "
           "formula uses the unbiased estimate, divided by n − 1.")
    expect(not close(diff(_cov(source, 1, False), _cov(target, 1, False)) / (4 * d * d)), "the features were not "
           "centred: subtract each domain's mean (over the batch, per feature) before forming Xᵀ X.")
    expect(not close(float(np.sqrt(diff(_cov(source), _cov(target)))) / (4 * d * d)), "that is the Frobenius norm, "
           "not its square: sum the squared differences without taking the square root.")
    expect(close(want), f"coral(source, target) = {value:.6g}; ‖C_s − C_t‖²_F / (4 d²) = {want:.6g} for these batches "
           f"(n_s = 40, n_t = 30, d = {d}).")
    return "Your CORAL loss matches the formula and can be trained on."


# --- gradient reversal -------------------------------------------------------------------------------------
def _forward_backward(fn, x: np.ndarray, w: np.ndarray, lam: float, framework: str):
    if framework == "torch":
        torch = importlib.import_module("torch")
        xt = torch.tensor(x, requires_grad=True)
        y = fn(xt, lam)
        (y * torch.from_numpy(w)).sum().backward()
        return to_numpy(y), None if xt.grad is None else to_numpy(xt.grad)
    tf = importlib.import_module("tensorflow")
    xt = tf.Variable(x)

    @tf.function
    def run(lam_tensor):
        with tf.GradientTape() as tape:
            y = fn(xt, lam_tensor)
            loss = tf.reduce_sum(y * w)
        return y, tape.gradient(loss, xt)

    y, grad = run(tf.constant(lam, tf.float32))
    return to_numpy(y), None if grad is None else to_numpy(grad)


@check(TOPIC, "reverse_gradient")
def _reverse_gradient(fn, framework: str) -> str:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (4, 3)).astype(np.float32)
    w = rng.normal(0, 1, (4, 3)).astype(np.float32)
    for lam in (0.5, 2.0):
        y, grad = _forward_backward(fn, x, w, lam, framework)
        expect(not np.allclose(y, -x), "the forward pass negates its input; it must be the identity (y = x). Only the "
               "gradient is reversed, in the backward pass.")
        expect(np.allclose(y, x, atol=1e-6), f"the forward pass must return its input unchanged (identity); received "
               f"values off by up to {np.abs(y - x).max():.3g}.")
        expect(grad is not None, "no gradient reached the input: the backward pass must return a gradient for x.")
        expect(not np.allclose(grad, w), "the gradient passes through unchanged: the backward pass must multiply the "
               "incoming gradient by −λ (a plain identity is not enough; define the backward pass yourself).")
        expect(not np.allclose(grad, lam * w), "the gradient is multiplied by +λ; reverse it: −λ · grad.")
        expect(not np.allclose(grad, -w) or lam == 1.0, f"with λ = {lam} the gradient was −grad: λ is ignored. "
               "Multiply by −λ, using the λ passed to the function" + (" (as a tensor argument, so a changing λ reaches "
               "a tf.function)." if framework != "torch" else "."))
        expect(np.allclose(grad, -lam * w, atol=1e-5), f"with λ = {lam}, the gradient should be −λ × the incoming one; "
               f"it differs by up to {np.abs(grad + lam * w).max():.3g}.")
    return "Forward: identity. Backward: −λ × the gradient, for every λ."
