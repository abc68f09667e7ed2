"""Checks for lesson 02, feature extraction."""
from __future__ import annotations

import importlib

import numpy as np

from ._base import (  # noqa: F401
    ExerciseFailed,
    check,
    expect,
    from_numpy,
    side,
    tensor_type,
    to_numpy,
    trainable_count,
)


# --- 02 feature extraction -----------------------------------------------------------------------------
@check("02_feature_extraction", "freeze_backbone")
def _freeze_backbone(fn, framework: str) -> str:
    T = side(framework)
    model = T.create_model(num_classes=3)
    result = fn(model)
    model = result if result is not None else model
    head = sum(int(np.prod(tuple(p.shape))) for p in (model.head.parameters() if framework == "torch" else model.head.weights))
    trainable = trainable_count(model, framework)
    expect(trainable != T.count_parameters(model)[0], "every parameter is still trainable: the backbone is not frozen. "
            + ("Set requires_grad to False on each parameter of model.backbone." if framework == "torch"
               else "Set model.backbone.trainable = False."))
    expect(trainable != 0, "nothing is trainable any more: freeze only the backbone, not the new head.")
    expect(trainable == head, f"{trainable:,d} parameters are trainable; only the head's {head:,d} should be.")
    return "Only the head will learn; the ImageNet features stay exactly as they are."


@check("02_feature_extraction", "build_head")
def _build_head(fn, framework: str) -> str:
    head = fn(1280, 5)
    x = np.random.default_rng(0).normal(size=(4, 1280)).astype(np.float32)
    if framework == "torch":
        torch = importlib.import_module("torch")
        expect(isinstance(head, torch.nn.Module), f"return an nn.Module (e.g. nn.Sequential), not {type(head).__name__}.")
        kinds = [type(m).__name__ for m in head.modules()]
        head.eval()
        out = to_numpy(head(torch.from_numpy(x)))
    else:
        keras = importlib.import_module("keras")
        expect(isinstance(head, keras.Model), f"return a keras model (e.g. keras.Sequential), not {type(head).__name__}.")
        kinds = [type(layer).__name__ for layer in head.layers]
        out = to_numpy(head(x, training=False))
    expect(out.shape == (4, 5), f"for 4 feature vectors and 5 classes the head must output (4, 5); got {out.shape}.")
    dense = sum(k in ("Linear", "Dense") for k in kinds)
    expect(dense >= 2, "use a hidden dense layer before the output layer: dense -> dropout -> output.")
    expect("Dropout" in kinds, "add a Dropout layer between the hidden layer and the output.")
    expect(not np.allclose(out.sum(1), 1, atol=1e-3), "the head ends in a softmax; return raw scores (logits): the loss "
            "applies the softmax itself, more accurately.")
    return "dense -> dropout -> output: a small classifier on top of 1280 ImageNet features."


@check("02_feature_extraction", "precision_recall_f1")
def _precision_recall_f1(fn, framework: str) -> str:
    from ...metrics import precision_recall_f1

    cm = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 0]])  # class 2 never appears nor is predicted
    cm2 = np.array([[8, 2, 0], [1, 4, 0], [3, 0, 2]])
    for matrix in (cm2, cm):
        got = fn(matrix.copy())
        expect(isinstance(got, (tuple, list)) and len(got) == 3, "return three arrays: (precision, recall, f1).")
        p, r, f = (np.asarray(v, dtype=np.float64) for v in got)
        ep, er, ef = precision_recall_f1(matrix)
        if np.allclose(p, er, atol=1e-6) and not np.allclose(p, ep, atol=1e-6):
            raise ExerciseFailed("precision and recall are swapped: precision divides by the column sum (all "
                                 "images *predicted* as the class), recall by the row sum (all images that *are* the class).")
        expect(np.all(np.isfinite(p)) and np.all(np.isfinite(f)), "a class that is never predicted gives 0/0; "
                "return 0 there (np.where or np.divide with where=) instead of nan.")
        expect(np.allclose(p, ep, atol=1e-6), f"precision should be {np.round(ep, 3).tolist()}; got {np.round(p, 3).tolist()}.")
        expect(np.allclose(r, er, atol=1e-6), f"recall should be {np.round(er, 3).tolist()}; got {np.round(r, 3).tolist()}.")
        expect(np.allclose(f, ef, atol=1e-6), f"F1 should be {np.round(ef, 3).tolist()}; got {np.round(f, 3).tolist()}.")
    return "Precision: how many of the predicted are right. Recall: how many of the real ones were found."


