"""Lesson 07 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import pytest
import torch
from helpers import reference_solution
from torch import nn

from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "07_nlp_transfer_pytorch"
NAMES = {"torch": torch, "nn": nn}


def run(exercise, fn):
    return CHECKS[("07_nlp_transfer", exercise)](fn, framework="torch")


@pytest.mark.parametrize("exercise", ["mean_pooling", "encoder_param_groups", "cosine_similarities"])
def test_reference_solutions_pass(exercise):
    assert run(exercise, reference_solution(NOTEBOOK, exercise, **NAMES))


@pytest.mark.parametrize("answer, message", [
    (lambda x, m: x.mean(1), "padding included"),
    (lambda x, m: (x * m.unsqueeze(-1)).sum(1), "masked SUM"),
    (lambda x, m: (x * m.unsqueeze(-1)).sum(1) / x.shape[1], "padded length T"),
    (lambda x, m: (x * m.unsqueeze(-1)).mean(2), "one vector per text"),
    (lambda x, m: None, "returned None"),
])
def test_mean_pooling_mistakes(answer, message):
    with pytest.raises(ExerciseFailed, match=message):
        run("mean_pooling", answer)


def _groups(swap=False, bottom=False, freeze=True, head_in_top=False):
    def answer(model, head_lr, encoder_lr, top_layers):
        layers = model.encoder.encoder.layer
        if freeze:
            for p in model.encoder.parameters():
                p.requires_grad = False
        chosen = layers[:top_layers] if bottom else layers[len(layers) - top_layers:]
        top = [p for layer in chosen for p in layer.parameters()]
        for p in top:
            p.requires_grad = True
        if head_in_top:
            top += list(model.head.parameters())
        lrs = (encoder_lr, head_lr) if swap else (head_lr, encoder_lr)
        return [{"params": list(model.head.parameters()), "lr": lrs[0]}, {"params": top, "lr": lrs[1]}]
    return answer


@pytest.mark.parametrize("kwargs, message", [
    ({"swap": True}, "swapped"),
    ({"bottom": True}, "BOTTOM"),
    ({"freeze": False}, "still trainable"),
    ({"head_in_top": True}, "both groups"),
])
def test_param_group_mistakes(kwargs, message):
    with pytest.raises(ExerciseFailed, match=message):
        run("encoder_param_groups", _groups(**kwargs))


def test_a_frozen_head_is_caught():
    def answer(model, head_lr, encoder_lr, top_layers):
        for p in model.parameters():  # everything frozen, head included ...
            p.requires_grad = False
        top = [p for layer in model.encoder.encoder.layer[-top_layers:] for p in layer.parameters()]
        for p in top:  # ... then only the top layers unfrozen
            p.requires_grad = True
        return [{"params": list(model.head.parameters()), "lr": head_lr}, {"params": top, "lr": encoder_lr}]

    with pytest.raises(ExerciseFailed, match="head is in its group but frozen"):
        run("encoder_param_groups", answer)


def test_param_groups_must_be_a_list_of_two():
    with pytest.raises(ExerciseFailed, match="list of two groups"):
        run("encoder_param_groups", lambda model, h, e, k: list(model.parameters()))


@pytest.mark.parametrize("answer, message", [
    (lambda a, b: a @ b.T, "plain dot product"),
    (lambda a, b: 1 - nn.functional.normalize(a, dim=1) @ nn.functional.normalize(b, dim=1).T, "DISTANCE"),
    (lambda a, b: nn.functional.normalize(a, dim=0) @ nn.functional.normalize(b, dim=0).T, "wrong axis"),
    (lambda a, b: nn.functional.normalize(b, dim=1) @ nn.functional.normalize(a, dim=1).T, "shape"),
])
def test_cosine_mistakes(answer, message):
    with pytest.raises(ExerciseFailed, match=message):
        run("cosine_similarities", answer)
