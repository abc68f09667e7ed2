"""The tests behind each exercise, one module per lesson. A check raises :class:`ExerciseFailed` with feedback
that says what is wrong and how to fix it, or returns a short note on success."""
from . import lesson01, lesson02, lesson03  # noqa: F401  (each registers its checks)
from . import lesson04  # noqa: F401  (domain adaptation)
from . import lesson05  # noqa: F401  (transfer in reinforcement learning)
from . import lesson06  # noqa: F401  (scaling up: data parallelism)
from . import lesson07  # noqa: F401  (transfer for text)
from ._base import CHECKS, ExerciseFailed, check

__all__ = ["CHECKS", "ExerciseFailed", "check"]
