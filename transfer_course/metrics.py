"""Classification metrics on NumPy label arrays, the same for both frameworks.

For class ``c`` with confusion matrix ``C`` (rows = true class, columns = predicted class):

- precision  ``P_c = C[c, c] / sum_i C[i, c]``  (of the images called ``c``, how many are ``c``)
- recall     ``R_c = C[c, c] / sum_j C[c, j]``  (of the images that are ``c``, how many were found)
- F1         ``F_c = 2 P_c R_c / (P_c + R_c)``  (their harmonic mean)

Macro averages weigh every class equally. A class never predicted has precision 0 (scikit-learn's
``zero_division=0``). ``tests/test_metrics.py`` checks all of this against scikit-learn.
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_labels", "accuracy", "confusion_matrix", "precision_recall_f1", "classification_report",
           "report_from_probabilities"]


def check_labels(labels, num_classes: int, what: str = "labels") -> np.ndarray:
    """``labels`` as an int64 array, or a ``ValueError`` naming the labels outside ``0..num_classes-1``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices; received shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"{what} must be integer class indices; received dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    bad = np.unique(labels[(labels < 0) | (labels >= num_classes)])
    if bad.size:
        raise ValueError(f"{what} contain {bad[:10].tolist()}, outside 0..{num_classes - 1} for a model with "
                         f"{num_classes} classes. Check that the head was built for this dataset's number of classes.")
    return labels


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}.")
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``C[i, j]`` = number of images of true class ``i`` predicted as ``j``."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    check_labels(y_true, num_classes, "y_true")
    check_labels(y_pred, num_classes, "y_pred")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def classification_report(y_true, y_pred, class_names=None, num_classes: int | None = None) -> dict:
    """Accuracy, macro precision/recall/F1, per-class values and the confusion matrix, in one dict."""
    n = num_classes or (len(class_names) if class_names is not None else None)
    cm = confusion_matrix(y_true, y_pred, n)
    p, r, f = precision_recall_f1(cm)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(cm))]
    return {"accuracy": accuracy(y_true, y_pred), "precision": float(p.mean()), "recall": float(r.mean()),
            "f1": float(f.mean()), "confusion_matrix": cm, "class_names": names,
            "per_class": {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                 "support": int(cm[i].sum())} for i, name in enumerate(names)}}


def report_from_probabilities(labels, probabilities, class_names=None) -> dict:
    """:func:`classification_report` of the most probable classes, plus the mean cross-entropy ``loss``."""
    labels, probabilities = np.asarray(labels, dtype=np.int64), np.asarray(probabilities)
    report = classification_report(labels, probabilities.argmax(1), class_names, num_classes=probabilities.shape[1])
    report["loss"] = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))))
    return report
