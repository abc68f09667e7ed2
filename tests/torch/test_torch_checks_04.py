"""Lesson 04 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import pytest
import torch
from helpers import reference_solution
from torch import nn

from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "04_domain_adaptation_pytorch"
NAMES = {"torch": torch, "nn": nn}


def run(exercise, fn):
    return CHECKS[("04_domain_adaptation", exercise)](fn, framework="torch")


@pytest.mark.parametrize("exercise", ["adabn_by_hand", "coral", "reverse_gradient"])
def test_reference_solutions_pass(exercise):
    assert run(exercise, reference_solution(NOTEBOOK, exercise, **NAMES))


def _adabn(reset=True, momentum=None, train=True, step=False, end_eval=True):
    def answer(model, target_x, batch_size=64):
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        for bn in bns:
            if reset:
                bn.reset_running_stats()
            bn.momentum = momentum
        model.train(train)
        if step:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model(target_x).sum().backward()
            optimizer.step()
        with torch.no_grad():
            for i in range(0, len(target_x), batch_size):
                model(target_x[i:i + batch_size])
        if end_eval:
            model.eval()
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (_adabn(train=False), "did not change .*only update when the model runs in training mode"),
    (_adabn(reset=False, momentum=0.1), "neither the target's mean nor the source's"),
    (_adabn(momentum=1.0), "last batch only"),
    (_adabn(step=True), "weights moved"),
    (_adabn(end_eval=False), "still in training mode"),
])
def test_adabn_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("adabn_by_hand", wrong)


def _cov(h, ddof=1, center=True):
    if center:
        h = h - h.mean(0, keepdim=True)
    return h.T @ h / (len(h) - ddof)


@pytest.mark.parametrize("wrong,feedback", [
    (lambda s, t: ((_cov(s) - _cov(t)) ** 2).sum(), "4·d² times too large"),
    (lambda s, t: ((_cov(s) - _cov(t)) ** 2).sum() / (4 * s.shape[1]), "not 4·d"),
    (lambda s, t: ((_cov(s, 0) - _cov(t, 0)) ** 2).sum() / (4 * s.shape[1] ** 2), "divided by n − 1"),
    (lambda s, t: ((_cov(s, 1, False) - _cov(t, 1, False)) ** 2).sum() / (4 * s.shape[1] ** 2), "not centred"),
    (lambda s, t: torch.linalg.norm(_cov(s) - _cov(t)) / (4 * s.shape[1] ** 2), "not its square"),
    (lambda s, t: (((_cov(s) - _cov(t)) ** 2).sum() / (4 * s.shape[1] ** 2)).detach().numpy(), "return a torch tensor"),
    (lambda s, t: (((_cov(s) - _cov(t)) ** 2).sum() / (4 * s.shape[1] ** 2)).detach(), "no gradient"),
])
def test_coral_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("coral", wrong)


def _reverse(forward_sign=1.0, backward=lambda lam, g: -lam * g):
    def answer(x, lam):
        class F(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return forward_sign * x.view_as(x)

            @staticmethod
            def backward(ctx, grad):
                return backward(lam, grad)

        return F.apply(x)
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (lambda x, lam: x * 1.0, "passes through unchanged"),
    (_reverse(forward_sign=-1.0), "negates its input"),
    (_reverse(backward=lambda lam, g: -g), "λ is ignored"),
    (_reverse(backward=lambda lam, g: lam * g), "multiplied by \\+λ"),
])
def test_reverse_gradient_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("reverse_gradient", wrong)
