"""transfer-course: the helper package behind the transfer-learning lessons.

Importing this package is cheap: it imports neither PyTorch nor TensorFlow. Pick a framework
explicitly with ``import transfer_course.torch`` or ``import transfer_course.tensorflow``.
"""
__version__ = "0.1.0"

from .errors import TransferCourseError  # noqa: F401
from .profiles import Profile, get_profile  # noqa: F401

__all__ = ["__version__", "Profile", "get_profile", "TransferCourseError"]
