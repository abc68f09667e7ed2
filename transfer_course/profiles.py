"""Run profiles: how much work a lesson does.

| profile | for | budget |
|---|---|---|
| ``quick`` | tests, nbval, CI | a notebook in about 90 s on 2 CPU cores |
| ``default`` | students on a CPU, Binder | a lesson in about 5 min on 2 CPU cores |
| ``full`` | a GPU, Colab | real datasets and online weights, tens of minutes |

Chosen, in order, by the argument of :func:`get_profile` (a notebook passes the value of its
``parameters`` cell), then the ``TRANSFER_COURSE_PROFILE`` environment variable, then ``default``.
A quick run does less work but still shows each lesson's point.
"""
from __future__ import annotations

import dataclasses
import os

from .errors import choices_message

__all__ = ["Profile", "PROFILES", "get_profile", "ENV_VAR"]

ENV_VAR = "TRANSFER_COURSE_PROFILE"


@dataclasses.dataclass(frozen=True)
class Profile:
    """Settings shared by every lesson; each field is a knob a lesson may read."""

    name: str
    #: side of the square images fed to models when a lesson trains or extracts features
    image_size: int
    #: training images per class in the embedded datasets (the lessons give val and test as many, at least 10)
    samples_per_class: int
    #: training epochs for a head or a fine-tune phase
    epochs: int
    #: mini-batch size
    batch_size: int
    #: environment steps for reinforcement-learning lessons
    rl_steps: int
    #: random seeds a lesson averages over when it reports a comparison
    seeds: int
    #: whether lessons may use real online datasets and weights
    online: bool = False


PROFILES = {
    "quick": Profile("quick", image_size=96, samples_per_class=12, epochs=3, batch_size=32, rl_steps=20_000, seeds=1),
    "default": Profile("default", image_size=128, samples_per_class=20, epochs=8, batch_size=32, rl_steps=60_000, seeds=3),
    "full": Profile("full", image_size=224, samples_per_class=100, epochs=20, batch_size=64, rl_steps=200_000, seeds=5, online=True),
}


def get_profile(name: str | Profile | None = None) -> Profile:
    """Return the profile called ``name``; ``None`` reads ``$TRANSFER_COURSE_PROFILE`` (default ``default``)."""
    if isinstance(name, Profile):
        return name
    source = "argument"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or "default", f"${ENV_VAR}"
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(f"{choices_message('profile', name, PROFILES)} (read from {source})")
    return PROFILES[key]
