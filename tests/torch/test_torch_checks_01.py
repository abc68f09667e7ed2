"""Lesson 01 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import numpy as np
import pytest
import torch
from torch import nn

from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "01_pretrained_models_pytorch"


def run(exercise, fn):
    return CHECKS[("01_pretrained_models", exercise)](fn, framework="torch")


@pytest.mark.parametrize("exercise", ["to_model_input", "feature_extractor", "intermediate_features"])
def test_reference_passes(exercise):
    run(exercise, reference_solution(NOTEBOOK, exercise, torch=torch, nn=nn))


@pytest.mark.parametrize("wrong,feedback", [
    (lambda im: torch.from_numpy((im / 255.0 - 0.5).astype(np.float32) / 0.5).unsqueeze(0), "channels are last"),
    (lambda im: torch.from_numpy(im.astype(np.float32)).permute(2, 0, 1).unsqueeze(0), "divide by 255"),
    (lambda im: torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0), "subtract 0.5"),
    (lambda im: torch.from_numpy((im / 255.0 - 0.5).astype(np.float32) / 0.5).permute(2, 0, 1), "no batch dimension"),
    (lambda im: (im / 255.0 - 0.5) / 0.5, "return a torch.Tensor"),
])
def test_to_model_input_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("to_model_input", wrong)


def _forgot_return(model):
    model.fc = nn.Identity()


@pytest.mark.parametrize("wrong,feedback", [
    (lambda model: model, "still outputs the 1000 ImageNet class scores"),
    (lambda model: nn.Sequential(*list(model.children())[:-2]), "4-D spatial feature map"),
    (lambda model: nn.Sequential(*list(model.children())[:-1]), "flatten it"),
    (_forgot_return, "returned None"),
    (lambda model: model.fc.weight, "return a model you can call"),
    (lambda model: nn.Sequential(*list(model.children())[:-1], nn.Flatten(), nn.Linear(512, 512)), "values differ"),
])
def test_feature_extractor_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("feature_extractor", wrong)


def _features(reduce=lambda out: out.mean(dim=(2, 3)), eval_mode=True, no_grad=True, offset=0, remove=True):
    """intermediate_features with one thing changed at a time."""
    def fn(backbone, images, stages):
        captured = {}
        handles = [backbone.blocks[s + offset].register_forward_hook(lambda _m, _i, out, s=s: captured.__setitem__(s, out))
                   for s in stages]
        if eval_mode:
            backbone.eval()
        if no_grad:
            with torch.no_grad():
                backbone(images)
        else:
            backbone(images)
        if remove:
            for h in handles:
                h.remove()
        out = {s: reduce(captured[s]) for s in stages}
        return out if not no_grad else {s: v.numpy() for s, v in out.items()}
    return fn


@pytest.mark.parametrize("wrong,feedback", [
    (_features(reduce=lambda out: out), "4-D spatial feature map"),
    (_features(reduce=lambda out: out.mean(dim=(1, 2))), "averaged over the channels"),
    (_features(reduce=lambda out: out.flatten(1)), "flattened"),
    (_features(reduce=lambda out: out.mean()), "averaged over too much"),
    (_features(eval_mode=False), "training mode"),
    (_features(no_grad=False), "gradients"),
    (_features(offset=1), "width of stage 2"),
    (_features(remove=False), "still registered"),
    (lambda backbone, images, stages: [0] * len(stages), "return a dict"),
])
def test_intermediate_features_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("intermediate_features", wrong)
