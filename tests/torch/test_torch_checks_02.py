"""Lesson 02 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import numpy as np
import pytest
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "02_feature_extraction_pytorch"
TOPIC = "02_feature_extraction"


def run(exercise, fn):
    return CHECKS[(TOPIC, exercise)](fn, framework="torch")


@pytest.mark.parametrize("exercise", ["build_head", "freeze_backbone", "extract_features"])
def test_reference_passes(exercise):
    run(exercise, reference_solution(NOTEBOOK, exercise, torch=torch, nn=nn, tqdm=tqdm))


@pytest.mark.parametrize("wrong,feedback", [
    (lambda d, c, hidden_units=256, dropout=0.3: nn.Sequential(nn.Linear(d, c)), "hidden dense layer"),
    (lambda d, c, hidden_units=256, dropout=0.3: nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, c)), "Dropout"),
    (lambda d, c, hidden_units=256, dropout=0.3: nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Dropout(0.3),
                                                               nn.Linear(64, c), nn.Softmax(dim=1)), "softmax"),
])
def test_build_head_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("build_head", wrong)


def _freeze_all(model):
    for p in model.parameters():
        p.requires_grad = False
    return model


def _freeze_nothing(model):
    return model


def _freeze_no_return(model):
    for p in model.backbone.parameters():
        p.requires_grad = False


@pytest.mark.parametrize("wrong,feedback", [
    (_freeze_all, "freeze only the backbone"), (_freeze_nothing, "not frozen"), (_freeze_no_return, "return the model"),
])
def test_freeze_backbone_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("freeze_backbone", wrong)


def _training_mode(backbone, loader):  # forgot backbone.eval()
    with torch.no_grad():
        pairs = [(backbone(x).numpy(), y.numpy()) for x, y in loader]
    return np.concatenate([f for f, _ in pairs]), np.concatenate([y for _, y in pairs])


def _with_grad(backbone, loader):  # no torch.no_grad(), tensors returned
    backbone.eval()
    pairs = [(backbone(x), y) for x, y in loader]
    return torch.cat([f for f, _ in pairs]), torch.cat([y for _, y in pairs])


def _tensors(backbone, loader):
    backbone.eval()
    with torch.no_grad():
        pairs = [(backbone(x), y) for x, y in loader]
    return torch.cat([f for f, _ in pairs]), torch.cat([y for _, y in pairs])


def _second_pass_labels(backbone, loader):  # labels from another pass over a shuffled loader
    backbone.eval()
    with torch.no_grad():
        features = np.concatenate([backbone(x).numpy() for x, _ in loader])
    return features, np.concatenate([y.numpy() for _, y in loader])


def _last_batch_only(backbone, loader):
    backbone.eval()
    with torch.no_grad():
        for x, y in loader:
            features, labels = backbone(x).numpy(), y.numpy()
    return features, labels


def _list_of_batches(backbone, loader):
    backbone.eval()
    with torch.no_grad():
        pairs = [(backbone(x).numpy(), y.numpy()) for x, y in loader]
    return [f for f, _ in pairs], np.concatenate([y for _, y in pairs])


def _not_pooled(backbone, loader):  # the feature maps before pooling
    backbone.eval()
    with torch.no_grad():
        pairs = [(backbone[:3](x).numpy(), y.numpy()) for x, y in loader]
    return np.concatenate([f for f, _ in pairs]), np.concatenate([y for _, y in pairs])


@pytest.mark.parametrize("wrong,feedback", [
    (_training_mode, "training mode"), (_with_grad, "require grad"), (_tensors, "return NumPy arrays"),
    (_second_pass_labels, "do not line up"), (_last_batch_only, "keep every batch"), (_list_of_batches, "np.concatenate"),
    (_not_pooled, "2-D"),
])
def test_extract_features_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("extract_features", wrong)
