"""Lesson 06 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import pytest
import torch
from helpers import reference_solution

from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "06_scaling_up_pytorch"


def run(exercise, fn):
    return CHECKS[("06_scaling_up", exercise)](fn, framework="torch")


@pytest.mark.parametrize("exercise", ["shard_for_rank", "average_gradients", "scaled_learning_rate"])
def test_reference_solutions_pass(exercise):
    assert run(exercise, reference_solution(NOTEBOOK, exercise, torch=torch))


@pytest.mark.parametrize("fn, match", [
    (lambda n, r, w: list(range(r * (n // w), (r + 1) * (n // w))), "contiguous block"),
    (lambda n, r, w: list(range(r, n, w)), "every rank must get ceil"),
    (lambda n, r, w: list(range(n))[r::w][: -(-n // w)] + [0] * (-(-n // w) - len(list(range(n))[r::w])), "expected"),
])
def test_shard_mistakes(fn, match):
    with pytest.raises(ExerciseFailed, match=match):
        run("shard_for_rank", fn)


@pytest.mark.parametrize("fn, match", [
    (lambda per_rank: [torch.stack(g).sum(0) for g in zip(*per_rank)], "SUM over the 3 ranks"),
    (lambda per_rank: list(per_rank[0]), "rank 0's own gradient"),
    (lambda per_rank: torch.stack([torch.cat([g.ravel() for g in r]) for r in per_rank]).mean(0), "one averaged gradient per parameter"),
])
def test_average_mistakes(fn, match):
    with pytest.raises(ExerciseFailed, match=match):
        run("average_gradients", fn)


@pytest.mark.parametrize("fn, match", [
    (lambda lr, b0, b, w: lr * b / b0, "ignores the number of processes"),
    (lambda lr, b0, b, w: lr * (b * w / b0) ** 0.5, "square-root rule"),
    (lambda lr, b0, b, w: lr * w, "multiplies by the number of processes only"),
])
def test_learning_rate_mistakes(fn, match):
    with pytest.raises(ExerciseFailed, match=match):
        run("scaled_learning_rate", fn)
