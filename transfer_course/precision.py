"""Mixed-precision choice shared by both frameworks: one validated value."""
from __future__ import annotations

from .errors import choices_message

__all__ = ["PRECISIONS", "validate_precision"]

PRECISIONS = ("fp32", "bf16", "fp16")
_ALIASES = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16", "16": "fp16", "half": "fp16"}


def validate_precision(value: str) -> str:
    """Return the canonical precision name (``fp32``, ``bf16`` or ``fp16``) or raise ``ValueError``."""
    key = str(value).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in PRECISIONS:
        raise ValueError(choices_message("precision", value, PRECISIONS))
    return key
