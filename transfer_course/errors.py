"""Errors the course raises for bad input. Each message says what was wrong and how to fix it."""
from __future__ import annotations

__all__ = [
    "TransferCourseError",
    "DatasetError",
    "ImageDecodeError",
    "DownloadError",
    "ChecksumError",
    "WeightsUnavailableError",
    "choices_message",
]


class TransferCourseError(Exception):
    """Base class for the course's own errors."""


class DatasetError(TransferCourseError, ValueError):
    """A dataset folder is missing, empty or badly laid out."""


class ImageDecodeError(TransferCourseError, ValueError):
    """A file in a dataset is not a readable image."""


class DownloadError(TransferCourseError, OSError):
    """A file could not be downloaded (offline, timeout, server error)."""


class ChecksumError(TransferCourseError, ValueError):
    """A downloaded or cached file does not have the expected sha256."""


class WeightsUnavailableError(TransferCourseError, OSError):
    """Pretrained weights are neither cached nor downloadable right now."""


def choices_message(what: str, received: object, choices) -> str:
    """``Unknown model 'x'. Valid choices: a, b, c.`` — the shape of every 'unknown name' error."""
    return f"Unknown {what} {received!r}. Valid choices: {', '.join(sorted(map(str, choices)))}."
