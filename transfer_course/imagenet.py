"""The 1,000 ImageNet-1k class names, available offline, in the order model outputs use."""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np

__all__ = ["imagenet_classes", "top_k"]


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line for line in text.splitlines() if line)
    assert len(names) == 1000, "imagenet_classes.txt must hold 1000 lines"
    return names


def top_k(probabilities, k: int = 5, class_names=None) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one prediction as ``(name, probability)``, best first."""
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    names = class_names or imagenet_classes()
    if len(names) != probs.size:
        raise ValueError(f"Got {probs.size} probabilities but {len(names)} class names; pass the class names of this model.")
    order = np.argsort(-probs, kind="stable")[:k]
    return [(names[i], float(probs[i])) for i in order]
