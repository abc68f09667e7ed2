"""Where the course keeps downloads, generated datasets and converted weights."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["cache_dir", "cache_dir_problem", "CacheDirError", "CACHE_ENV_VAR", "OFFLINE_ENV_VAR", "is_offline", "manual_download_help", "require_cached_when_offline",
           "OWNER_MARK", "staging_folder", "publish_folder", "check_can_write_folder"]

#: a file the course writes into every folder it creates, so that it only ever removes or replaces its own folders
OWNER_MARK = ".transfer-course"

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
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheDirError(f"The course's cache folder {path} cannot be created ({type(exc).__name__}: "
                                f"{exc.strerror or exc}). Point ${CACHE_ENV_VAR} at a folder you can write, e.g. "
                                f"export {CACHE_ENV_VAR}=$HOME/transfer-course-cache (or, in a notebook, "
                                f"os.environ[{CACHE_ENV_VAR!r}] = '...').") from None
    return path


def cache_dir_problem() -> str | None:
    """Why the cache folder cannot be used (not creatable, not a folder, not writable), or ``None`` when it can."""
    import tempfile

    try:
        root = cache_dir()
        with tempfile.NamedTemporaryFile(dir=root):
            pass
    except CacheDirError as exc:
        return str(exc)
    except OSError as exc:
        return (f"The course's cache folder {cache_dir(create=False)} is not writable ({exc.strerror or exc}). Point "
                f"${CACHE_ENV_VAR} at a folder you can write.")
    return None


class CacheDirError(OSError):
    """The cache folder cannot be created or written."""


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


def _ours(folder: Path) -> bool:
    """The course wrote this folder: it carries the mark (or the completion stamp of an older version)."""
    return any((folder / mark).is_file() for mark in (OWNER_MARK, ".complete", ".extracted"))


def check_can_write_folder(root: str | Path, what: str = "dataset") -> Path:
    """Refuse a folder the course would have to replace but did not create: it may hold a user's files.

    A missing folder, an empty one, or one the course wrote before (it holds :data:`OWNER_MARK`) is fine.
    """
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} is a file, not a folder; the course would write a {what} folder there. "
                              "Pass root= a new or empty folder.")
    if root.is_dir() and not _ours(root) and any(root.iterdir()):
        raise FileExistsError(f"{root} already holds files that the course did not create, so it will not write a {what} "
                              "there (that could overwrite or delete them). Pass root= a new or empty folder, or leave "
                              "root unset to use the course cache.")
    return root


def staging_folder(root: Path) -> Path:
    """A private folder next to ``root`` to build into, so that no process ever sees a half-written tree."""
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    if staging.exists() and _ours(staging):
        shutil.rmtree(staging)  # left over from an interrupted run of this process id
    staging.mkdir(parents=True, exist_ok=False)
    (staging / OWNER_MARK).write_text("written by transfer-course; safe to delete\n")
    return staging


def publish_folder(staging: Path, root: Path) -> Path:
    """Move a finished ``staging`` folder to ``root``. A complete copy already there (another process finished
    first) is kept. ``root`` is only ever replaced if it is empty or the course's own (see
    :func:`check_can_write_folder`), never when it holds a user's files."""
    (staging / ".complete").touch()
    if (root / ".complete").exists() and _ours(root):
        shutil.rmtree(staging)
        return root
    check_can_write_folder(root)
    if root.is_dir():
        if _ours(root):
            shutil.rmtree(root)  # an incomplete tree of ours from an interrupted run
        else:
            root.rmdir()  # empty (checked above)
    try:
        os.replace(staging, root)
    except OSError:  # another process published between our check and the move
        shutil.rmtree(staging)
    return root
