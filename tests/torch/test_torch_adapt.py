"""transfer_course.torch.adapt: the reversal layer's gradient, CORAL against NumPy, AdaBN touching only BatchNorm
statistics, the errors for bad input, and DANN beating source-only on rotated two moons over seeds."""
import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from torch import nn

import transfer_course.torch as T
from transfer_course.adapt import coral_numpy


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_minus_lambda_backward(lam):
    x = torch.randn(5, 4, requires_grad=True)
    upstream = torch.randn(5, 4)
    y = T.GradientReversal(lam)(x)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.equal(x.grad, -lam * upstream)


def test_grad_reverse_refuses_a_negative_lambda():
    with pytest.raises(ValueError, match="lam must be a finite number >= 0; received -1"):
        T.grad_reverse(torch.ones(2), -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        T.GradientReversal(-0.5)


def test_coral_loss_equals_numpy_and_is_differentiable():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(32, 6)).astype(np.float32), (rng.normal(size=(20, 6)) * 3 + 1).astype(np.float32)
    xa = torch.tensor(a, requires_grad=True)
    loss = T.coral_loss(xa, torch.from_numpy(b))
    assert np.isclose(loss.item(), coral_numpy(a, b), rtol=1e-4)
    loss.backward()
    assert xa.grad is not None and xa.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same d"):
        T.coral_loss(xa, torch.zeros(3, 5))


def _pretrained_net():
    net = T.make_adaptation_net(6, 3, hidden_units=8, seed=0)
    T.adabn(net, np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32))
    return net


def test_adabn_changes_batchnorm_statistics_and_nothing_else():
    net = _pretrained_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    target = (np.random.default_rng(2).normal(size=(128, 6)) * 2 + 3).astype(np.float32)
    T.adabn(net, target, batch_size=32)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"}
    h = net.features[0](torch.from_numpy(target)).detach()
    assert torch.allclose(after["features.1.running_mean"], h.mean(0), atol=1e-5)  # equal batches: the target mean
    assert not net.training and net.features[1].momentum == 0.1


def test_adabn_errors():
    with pytest.raises(ValueError, match="no BatchNorm layer.*nothing to adapt"):
        T.adabn(nn.Sequential(nn.Linear(3, 2)), np.zeros((4, 3), np.float32))
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
    with pytest.raises(ValueError, match="features have different sizes: \\(6,\\) vs \\(5,\\)"):
        T.fit_adapted(net, (x, y), np.zeros((12, 5), np.float32), method="dann")
    with pytest.raises(ValueError, match="target-only ceiling"):
        T.fit_adapted(net, (x, y), x, method="target-only")
    with pytest.raises(ValueError, match="needs target data"):
        T.fit_adapted(net, (x, y), None, method="coral")


def test_fit_adapted_history_and_reproducibility():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), np.arange(40) % 3
    runs = []
    for _ in range(2):
        net = T.make_adaptation_net(6, 3, hidden_units=8, seed=1)
        history = T.fit_adapted(net, (x, y), x + 1, val=(x, y), target_val=(x + 1, y), method="dann", epochs=3,
                                seed=1, progress=False)
        runs.append([p.detach().clone() for p in net.parameters()])
    assert len(history) == 3 and {"loss", "transfer_loss", "domain_accuracy", "val_accuracy", "target_val_accuracy",
                                  "lam"} <= set(history.metrics)
    assert 0 < history["lam"][0] < history["lam"][-1] < 1  # the λ_p schedule
    assert all(torch.equal(a, b) for a, b in zip(*runs))


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
            with torch.no_grad():
                values.append(float((net(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean()))
    assert np.mean(scores["dann"]) >= np.mean(scores["source-only"]) + 0.02, scores


def test_lessons_written_out_dann_loop_equals_fit_adapted():
    from helpers import check_written_out_dann_equals_fit_adapted

    names = {"torch": torch, "nn": nn, "adabn": T.adabn, "make_adaptation_net": T.make_adaptation_net,
             "seed_everything": T.seed_everything}
    names["accuracy"] = lambda model, split: 0.0  # the cell's per-epoch curve; not what is compared

    def weights(model):
        return [v.detach().numpy().copy() for v in model.state_dict().values() if v.dtype.is_floating_point]

    check_written_out_dann_equals_fit_adapted("pytorch", T, names, weights)


def test_adabn_keeps_dropout_off():
    """Dropout before BatchNorm: the re-estimated statistics are those of the deterministic features."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.BatchNorm1d(8))
    target = (np.random.default_rng(3).normal(size=(128, 6)) * 2 + 3).astype(np.float32)
    T.adabn(model, target, batch_size=128)
    with torch.no_grad():
        features = model[0](torch.from_numpy(target)).numpy()
    assert np.allclose(model[2].running_mean.numpy(), features.mean(0), atol=1e-4)
    assert np.allclose(model[2].running_var.numpy(), features.var(0, ddof=1), rtol=1e-3, atol=1e-4)
    assert not model.training
