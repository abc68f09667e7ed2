"""What every exercise check shares; the checks themselves live in one module per lesson.

A check raises :class:`ExerciseFailed` with feedback that says
what is wrong and how to fix it, or returns a short note on success. Checks compare against
closed forms (softmax, the normalisation formula, cosine similarity), never against a copy of the
solution, and they import a framework only when the notebook being checked uses it.
"""
from __future__ import annotations

import importlib

import numpy as np

__all__ = ["CHECKS", "ExerciseFailed", "check", "expect", "from_numpy", "side", "tensor_type", "to_numpy", "trainable_count"]

CHECKS: dict = {}


class ExerciseFailed(AssertionError):
    """An exercise's answer is not right yet; the message says why."""


def check(topic: str, exercise: str):
    def register(fn):
        CHECKS[(topic, exercise)] = fn
        return fn
    return register


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ExerciseFailed(message)


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        return x.detach().cpu().float().numpy()
    if hasattr(x, "numpy"):  # tf.Tensor
        return np.asarray(x.numpy())
    return np.asarray(x)


def tensor_type(framework: str):
    if framework == "torch":
        return importlib.import_module("torch").Tensor
    return importlib.import_module("tensorflow").Tensor


def from_numpy(a: np.ndarray, framework: str):
    if framework == "torch":
        return importlib.import_module("torch").from_numpy(a)
    return importlib.import_module("tensorflow").constant(a)


def side(framework: str):
    return importlib.import_module(f"transfer_course.{'torch' if framework == 'torch' else 'tensorflow'}")


def trainable_count(model, framework: str) -> int:
    return side(framework).count_parameters(model)[1]


