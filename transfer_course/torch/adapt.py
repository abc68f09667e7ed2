"""Domain adaptation in PyTorch: AdaBN, Deep CORAL and DANN as small pieces, and :func:`fit_adapted`.

Papers, formulas and shapes (see also :mod:`transfer_course.adapt`):

- :func:`adabn` — Li et al. (2016), *Revisiting Batch Normalization For Practical Domain Adaptation*. Every
  BatchNorm layer's running mean and variance are replaced by the cumulative average of the statistics of the
  target batches (``momentum=None``), computed in training mode under ``torch.no_grad()``: no weight moves.
- :func:`coral_loss` — Sun & Saenko (2016), *Deep CORAL*. ``(n_s, d)`` and ``(n_t, d)`` features ->
  ``‖C_s − C_t‖²_F / (4 d²)``, with ``C`` the unbiased ``(d, d)`` covariance of a batch.
- :class:`GradientReversal` / :func:`grad_reverse` — Ganin et al. (2016), *Domain-Adversarial Training of Neural
  Networks*. Forward ``x -> x`` (any shape); backward ``grad -> −λ · grad``.
- :func:`fit_adapted` — trains an :class:`AdaptationNet` (features ``(N, D)`` -> hidden ``(N, h)`` with
  BatchNorm -> logits ``(N, C)``) on cached backbone features with ``loss = CE(source) + λ · transfer``, source
  and target forwarded *separately* so that BatchNorm normalises each domain with its own batch statistics.
  DANN's domain classifier ``(N, h) -> (N, 1)`` sits behind the reversal layer with ``λ_p`` from
  :func:`transfer_course.adapt.dann_lambda`.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

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


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``-lam`` in the backward pass."""
    return _ReverseGradient.apply(x, check_lambda(lam))


class GradientReversal(nn.Module):
    """The gradient-reversal layer as a module; set ``layer.lam`` to change its strength during training."""

    def __init__(self, lam: float = 1.0):
        super().__init__()
        self.lam = check_lambda(lam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam:g}"


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL's loss ``‖C_s − C_t‖²_F / (4 d²)`` between ``(n_s, d)`` and ``(n_t, d)`` features (n >= 2)."""
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"coral_loss needs (n, d) features with the same d; received {tuple(source.shape)} and "
                         f"{tuple(target.shape)}.")
    if len(source) < 2 or len(target) < 2:
        raise ValueError("coral_loss needs at least 2 samples per domain to estimate a covariance.")
    d = source.shape[1]

    def covariance(x):
        x = x - x.mean(0, keepdim=True)
        return x.T @ x / (len(x) - 1)

    return ((covariance(source) - covariance(target)) ** 2).sum() / (4 * d * d)


def _batchnorms(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _arrays(data):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        data = data[0]
    return torch.as_tensor(np.asarray(data, dtype=np.float32))


@torch.no_grad()
def adabn(model: nn.Module, data, batch_size: int = 64) -> nn.Module:
    """AdaBN: re-estimate every BatchNorm layer's running statistics on ``data`` (the target inputs, or an
    ``(x, y)`` pair whose labels are ignored). No parameter changes; the model is returned in eval mode."""
    layers = _batchnorms(model)
    if not layers:
        raise ValueError(f"adabn found no BatchNorm layer in this {type(model).__name__}: AdaBN re-estimates "
                         "BatchNorm statistics, so a model without BatchNorm has nothing to adapt. Put a "
                         "BatchNorm layer in the network (e.g. AdaptationNet), or use CORAL or DANN.")
    x = _arrays(data) if not isinstance(data, torch.Tensor) else data
    if len(x) == 0:
        raise ValueError("adabn received an empty target set; pass the target inputs.")
    device = next(model.parameters()).device
    was_training, momenta = model.training, [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches, not an exponential one
    model.eval()  # dropout and every other layer as at test time (and no random numbers drawn) ...
    for m in layers:
        m.train()  # ... except BatchNorm, which updates its running statistics
    for i in range(0, len(x), batch_size):
        if len(x[i:i + batch_size]) > 1:
            model(x[i:i + batch_size].to(device))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)
    return model.eval()


class AdaptationNet(nn.Module):
    """Backbone features ``(N, D)`` -> ``features`` (Linear, BatchNorm, ReLU) ``(N, h)`` -> ``classifier`` ``(N, C)``."""

    def __init__(self, feature_dim: int, num_classes: int, hidden_units: int = 256, dropout: float = 0.3):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(feature_dim, hidden_units), nn.BatchNorm1d(hidden_units), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_units, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def make_adaptation_net(feature_dim: int, num_classes: int, hidden_units: int = 256, dropout: float = 0.3,
                        seed: int = 0) -> AdaptationNet:
    """An :class:`AdaptationNet` with initial weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return AdaptationNet(feature_dim, num_classes, hidden_units, dropout)


def make_domain_classifier(hidden_units: int = 256) -> nn.Sequential:
    """DANN's domain classifier: ``(N, h)`` features -> one logit per sample (source = 1, target = 0)."""
    return nn.Sequential(nn.Linear(hidden_units, hidden_units), nn.ReLU(), nn.Linear(hidden_units, 1))


@torch.no_grad()
def embed(model: AdaptationNet, x, batch_size: int = 256) -> np.ndarray:
    """The hidden features ``(N, h)`` of ``model`` (eval mode), e.g. for an embedding plot."""
    model.eval()
    x = _arrays(x)
    return torch.cat([model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


@torch.no_grad()
def _accuracy(model, data) -> float:
    if data is None:
        return float("nan")
    model.eval()
    x, y = _arrays(data), torch.as_tensor(np.asarray(data[1]))
    return float((model(x).argmax(1) == y).float().mean())


def fit_adapted(model: AdaptationNet, source, target=None, val=None, *, method: str = "dann", epochs: int = 60,
                lr: float = 1e-3, batch_size: int = 32, lam: float = 1.0, target_val=None, seed: int = 0,
                progress: bool = True, domain_classifier: nn.Module | None = None,
                target_statistics: bool = True) -> History:
    """Train ``model`` on labelled ``source = (x, y)`` features and unlabelled ``target`` features with ``method``:

    - ``"source-only"``: cross-entropy on the source; ``target`` is not used (train on labelled target data this
      way to get the target-only ceiling);
    - ``"adabn"``: source-only training, then :func:`adabn` on the target;
    - ``"coral"``: ``CE + lam · coral_loss(h_s, h_t)`` on the hidden features;
    - ``"dann"``: ``CE + BCE(domain classifier(grad_reverse(h, lam · λ_p)))``.

    Each step forwards a source batch and a target batch of the same size separately (BatchNorm sees one domain at
    a time). ``val`` (source) and ``target_val`` are only scored, never trained on; with ``target_val`` the history
    shows the curve a project without target labels could not see. With ``target_statistics`` (the default), the
    methods that forwarded target batches end with :func:`adabn` on the target, so that target images are
    normalised at test time as they were in training (otherwise the running statistics mix both domains). Returns a :class:`History` per epoch: ``loss``,
    ``transfer_loss``, ``accuracy``, ``val_accuracy``, ``target_val_accuracy``, ``lam`` and, for DANN,
    ``domain_accuracy`` (the domain classifier's, on training batches)."""
    check_method(method)
    if method == "target-only":
        raise ValueError("fit_adapted trains with a method that uses *unlabelled* target data. For the target-only "
                         "ceiling, train on the labelled target split with method='source-only'.")
    check_lambda(lam)
    xs, ys = _arrays(source), torch.as_tensor(np.asarray(source[1]), dtype=torch.long)
    check_fit_args(epochs, lr, num_train=len(xs))
    uses_target = method != "source-only"
    if uses_target:
        if target is None:
            raise ValueError(f"method={method!r} needs target data: pass target=(target features) or an (x, y) pair.")
        check_domains((np.asarray(xs), np.asarray(ys)), np.asarray(_arrays(target)))
        xt = _arrays(target)
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    if method == "dann":
        domain_classifier = domain_classifier or make_domain_classifier(model.features[0].out_features)
        params += list(domain_classifier.parameters())
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=1e-4)
    steps_per_epoch = (len(xs) + batch_size - 1) // batch_size
    total, step = epochs * steps_per_epoch, 0
    history = History()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=method, unit="step", leave=False)
    for epoch in range(epochs):
        model.train()
        if domain_classifier is not None:
            domain_classifier.train()
        sums = {"loss": 0.0, "transfer_loss": 0.0, "correct": 0.0, "seen": 0, "domain_correct": 0.0, "domain_seen": 0}
        order = torch.randperm(len(xs), generator=generator)
        for i in range(0, len(xs), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            h_s = model.features(xs[idx])
            logits = model.classifier(h_s)
            loss = nn.functional.cross_entropy(logits, ys[idx])
            transfer = torch.zeros(())
            lam_p = lam
            if uses_target and method != "adabn":
                h_t = model.features(xt[torch.randint(len(xt), (len(idx),), generator=generator)])
                if method == "coral":
                    transfer = lam * coral_loss(h_s, h_t)
                else:
                    lam_p = lam * dann_lambda(step / total)
                    d_logits = domain_classifier(grad_reverse(torch.cat([h_s, h_t]), lam_p))
                    d_labels = torch.cat([torch.ones(len(h_s), 1), torch.zeros(len(h_t), 1)])
                    transfer = nn.functional.binary_cross_entropy_with_logits(d_logits, d_labels)
                    sums["domain_correct"] += float(((d_logits > 0).float() == d_labels).sum())
                    sums["domain_seen"] += len(d_labels)
            optimizer.zero_grad()
            (loss + transfer).backward()
            optimizer.step()
            step += 1
            n = len(idx)
            sums["loss"] += loss.item() * n
            sums["transfer_loss"] += transfer.item() * n
            sums["correct"] += float((logits.argmax(1) == ys[idx]).sum())
            sums["seen"] += n
            if bar is not None:
                bar.update(1)
        check_finite_loss(sums["loss"] / sums["seen"] + sums["transfer_loss"] / sums["seen"], epoch + 1)
        logs = {"loss": sums["loss"] / sums["seen"], "transfer_loss": sums["transfer_loss"] / sums["seen"],
                "accuracy": sums["correct"] / sums["seen"], "lam": lam_p}
        if method == "dann":
            logs["domain_accuracy"] = sums["domain_correct"] / max(1, sums["domain_seen"])
        if val is not None:
            logs["val_accuracy"] = _accuracy(model, val)
        if target_val is not None:
            adapted = uses_target and (target_statistics or method == "adabn")
            logs["target_val_accuracy"] = _accuracy(_with_target_statistics(model, xt) if adapted else model,
                                                    target_val)
        history.append(logs)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "val_accuracy", "domain_accuracy")})
    if bar is not None:
        bar.close()
    if uses_target and (target_statistics or method == "adabn"):
        adabn(model, xt)  # the target was normalised with its own statistics in training: predict it that way
    return history


def _with_target_statistics(model, xt):
    return adabn(copy.deepcopy(model), xt)
