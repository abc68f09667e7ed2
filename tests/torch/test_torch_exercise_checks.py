"""The PyTorch lesson's reference solutions pass their checks; typical mistakes get specific feedback."""
import numpy as np
import pytest
import torch

from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed
from transfer_course.imagenet import imagenet_classes

NOTEBOOK = "01_pretrained_models_pytorch"


@pytest.mark.parametrize("exercise", ["to_model_input", "top5", "cosine_similarity"])
def test_reference_passes(exercise):
    CHECKS[("01_pretrained_models", exercise)](reference_solution(NOTEBOOK, exercise, torch=torch), framework="torch")


@pytest.mark.parametrize("wrong,feedback", [
    (lambda im: torch.from_numpy((im / 255.0 - 0.5).astype(np.float32) / 0.5).unsqueeze(0), "channels are last"),
    (lambda im: torch.from_numpy(im.astype(np.float32)).permute(2, 0, 1).unsqueeze(0), "divide by 255"),
    (lambda im: torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0), "subtract 0.5"),
    (lambda im: torch.from_numpy((im / 255.0 - 0.5).astype(np.float32) / 0.5).permute(2, 0, 1), "no batch dimension"),
    (lambda im: (im / 255.0 - 0.5) / 0.5, "return a torch.Tensor"),
])
def test_to_model_input_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        CHECKS[("01_pretrained_models", "to_model_input")](wrong, framework="torch")


def test_top5_with_logits_instead_of_probabilities():
    names = imagenet_classes()

    def logits_only(z):
        values, idx = torch.topk(z, 5)
        return [(names[i], float(v)) for v, i in zip(values, idx)]

    with pytest.raises(ExerciseFailed, match="raw logits"):
        CHECKS[("01_pretrained_models", "top5")](logits_only, framework="torch")
