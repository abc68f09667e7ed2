"""Lesson 03 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import pytest
import torch
from torch import nn

import transfer_course.torch as T
from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed
from transfer_course.models import preprocess

NOTEBOOK = "03_fine_tuning_pytorch"
NAMES = dict(torch=torch, nn=nn, backbone_blocks=T.backbone_blocks, preprocess=preprocess)


def run(exercise, fn, **context):
    return CHECKS[("03_fine_tuning", exercise)](fn, framework="torch", **context)


@pytest.fixture(scope="module")
def small_model():
    return T.create_model(num_classes=3, hidden_units=16, dropout=0.5, class_names=["a", "b", "c"]).eval()


def test_unfreeze_top_blocks_reference_passes():
    assert "last blocks" in run("unfreeze_top_blocks", reference_solution(NOTEBOOK, "unfreeze_top_blocks", **NAMES))


def _unfreeze(select, skip_bn=True):
    def answer(model, n):
        for _, modules in select(T.backbone_blocks(model.backbone), n):
            for module in modules:
                if not (skip_bn and isinstance(module, nn.BatchNorm2d)):
                    for p in module.parameters():
                        p.requires_grad = True
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (lambda model, n: T.unfreeze(model.backbone), "everything is trainable"),
    (lambda model, n: None, "no backbone parameter became trainable"),
    (_unfreeze(lambda blocks, n: blocks[:n]), r"unfroze the \*first\* n blocks"),
    (_unfreeze(lambda blocks, n: blocks[-n:], skip_bn=False), "BatchNorm layers of those blocks were unfrozen too"),
    (_unfreeze(lambda blocks, n: blocks[-n - 1:]), "parameters are trainable; unfreezing the last 3 blocks"),
])
def test_unfreeze_top_blocks_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("unfreeze_top_blocks", wrong)


def test_learning_rate_groups_reference_passes():
    assert "100×" in run("learning_rate_groups", reference_solution(NOTEBOOK, "learning_rate_groups", **NAMES))


def _trainable(module):
    return [p for p in module.parameters() if p.requires_grad]


@pytest.mark.parametrize("wrong,feedback", [
    (lambda m, head_lr, bb_lr: [(_trainable(m.backbone), head_lr), (list(m.head.parameters()), bb_lr)], "swapped"),
    (lambda m, head_lr, bb_lr: [(list(m.backbone.parameters()), bb_lr), (list(m.head.parameters()), head_lr)],
     "frozen ones included"),
    (lambda m, head_lr, bb_lr: [((p for p in m.backbone.parameters() if p.requires_grad), bb_lr),
                                (m.head.parameters(), head_lr)], "generator"),
    (lambda m, head_lr, bb_lr: [(_trainable(m.backbone), bb_lr), (_trainable(m), head_lr)], "appears in both groups"),
    (lambda m, head_lr, bb_lr: [(_trainable(m), head_lr)], "two .parameters, learning rate. pairs"),
])
def test_learning_rate_groups_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("learning_rate_groups", wrong)


def test_predict_image_reference_passes(small_model):
    answer = reference_solution(NOTEBOOK, "predict_image", **NAMES, profile=type("P", (), {"image_size": 96}))
    assert "inference mode" in run("predict_image", answer, model=small_model, image_size=96)


def _predict(softmax=True, eval_mode=True, size=96, name=True):
    def answer(model, image):
        x = T.to_tensor(preprocess(image, model.spec, size=size))
        if eval_mode:
            model.eval()
        with torch.no_grad():
            scores = model(x)[0]
        values = scores.softmax(-1) if softmax else scores
        best = int(values.argmax())
        return (model.class_names[best] if name else best), float(values[best])
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (_predict(softmax=False), "raw score"),
    (_predict(eval_mode=False), r"model.eval\(\)"),
    (_predict(name=False), "return a .class name, probability. pair"),
])
def test_predict_image_mistakes(small_model, wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("predict_image", wrong, model=small_model, image_size=96)
