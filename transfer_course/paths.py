"""Where the course keeps downloads, generated datasets and converted weights."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "CACHE_ENV_VAR", "OFFLINE_ENV_VAR", "is_offline"]

CACHE_ENV_VAR = "TRANSFER_COURSE_HOME"
OFFLINE_ENV_VAR = "TRANSFER_COURSE_OFFLINE"


def cache_dir(*parts: str, create: bool = True) -> Path:
    """``$TRANSFER_COURSE_HOME`` or ``$XDG_CACHE_HOME/transfer-course`` or ``~/.cache/transfer-course``."""
    root = os.environ.get(CACHE_ENV_VAR)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "transfer-course"
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def is_offline() -> bool:
    """True when ``$TRANSFER_COURSE_OFFLINE`` asks the course never to touch the network."""
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}
