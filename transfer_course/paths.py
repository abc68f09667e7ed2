"""Where the course keeps downloads, generated datasets and converted weights."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "CACHE_ENV_VAR", "OFFLINE_ENV_VAR", "is_offline", "manual_download_help", "require_cached_when_offline"]

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


def manual_download_help(what: str, target: Path, sha256: str | None = None, alternative: str | None = None) -> str:
    """How to provide a file by hand: where to get it and the exact path to copy it to."""
    text = f"Download {what} on a machine with internet access and copy it to\n    {target}\n"
    text += f"(expected sha256 {sha256}). The course checks the file and uses it from there." if sha256 else \
        "(or run once with internet access; the file is then cached there)."
    return text + (f" {alternative}" if alternative else "")


def require_cached_when_offline(target: Path, error: type[Exception], help_text: str) -> None:
    """Raise ``error`` with ``help_text`` when ``target`` is missing and downloads are forbidden."""
    if not Path(target).exists() and is_offline():
        raise error(f"{Path(target).name} is not in the cache and ${OFFLINE_ENV_VAR} forbids downloads.\n{help_text}")
