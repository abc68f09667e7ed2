"""Downloads that verify a sha256 on every cache hit and after every download.

``fetch(url, sha256)`` returns a path in the course cache. A cached file whose hash is wrong
(a broken earlier download, a disk error) is detected, removed and fetched again. When the
network is unavailable, or ``$TRANSFER_COURSE_OFFLINE=1``, the error names the file, where to get
it and exactly where to put it, so a user can copy it in by hand.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..errors import ChecksumError, DownloadError
from ..paths import (
    cache_dir, check_can_write_folder, manual_download_help, publish_folder, require_cached_when_offline, staging_folder,
)

__all__ = ["fetch", "sha256_of", "extract", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    url: str,
    sha256: str,
    filename: str | None = None,
    subdir: str = "downloads",
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> Path:
    """Return the cached, verified file for ``url``, downloading it when needed.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        sha256: expected hex digest; checked on a cache hit and after a download.
        filename: name in the cache (default: last part of the URL).
        subdir: folder under the cache home (``$TRANSFER_COURSE_HOME``).
        timeout: seconds to wait for the server before giving up.
        progress: show a tqdm progress bar.
    """
    if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise ValueError(f"sha256 must be 64 hex characters; received {sha256!r}.")
    sha256 = sha256.lower()
    name = filename or url.rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"filename must be a plain file name, without folders; received {name!r}. The file is always "
                         f"written inside the course cache ({cache_dir(subdir, create=False)}).")
    if Path(subdir).is_absolute() or ".." in Path(subdir).parts:
        raise ValueError(f"subdir must be a folder inside the course cache, without '..'; received {subdir!r}.")
    target = cache_dir(subdir) / name
    if target.exists():
        actual = sha256_of(target)
        if actual == sha256:
            return target
        print(f"Cached file {target} is corrupted (sha256 {actual[:12]}…, expected {sha256[:12]}…); downloading it again.")
        target.unlink()
    help_text = manual_download_help(url, target, sha256)
    require_cached_when_offline(target, DownloadError, help_text)
    partial = target.with_name(target.name + ".part")
    try:
        _stream(url, partial, timeout, progress)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"Could not download {url} ({reason}).\n{help_text}") from exc
    actual = sha256_of(partial)
    if actual != sha256:
        partial.unlink(missing_ok=True)
        raise ChecksumError(
            f"Downloaded {url} but its sha256 is {actual}, expected {sha256}. The file was deleted; "
            "try again, and if it persists the server's file has changed."
        )
    os.replace(partial, target)
    return target


def _stream(url: str, dest: Path, timeout: float, progress: bool) -> None:
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "transfer-course"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name[:-5], disable=not progress, leave=False) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                bar.update(len(block))


def extract(archive: str | Path, dest: str | Path | None = None) -> Path:
    """Unpack a ``.zip``/``.tar(.gz)``/``.tgz`` next to itself (or into ``dest``) once; return the folder."""
    archive = Path(archive)
    dest = check_can_write_folder(Path(dest) if dest else archive.with_name(archive.name.split(".")[0]), "extracted archive")
    stamp = sha256_of(archive)  # keyed on content: a changed archive is extracted again
    done = dest / ".extracted"
    if done.is_file() and done.read_text().strip() == stamp:
        return dest
    if dest.is_dir() and any(dest.iterdir()):
        shutil.rmtree(dest)  # an older extraction of ours (check_can_write_folder refused anything else)
    if not (zipfile.is_zipfile(archive) or tarfile.is_tarfile(archive)):
        raise ValueError(f"{archive} is neither a zip nor a tar archive (a download that was interrupted, or an HTML "
                         "error page?). Delete it and download it again.")
    tmp = staging_folder(dest)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)  # zipfile drops '..' and leading '/' from member names
        else:
            with tarfile.open(archive) as tf:
                _safe_extract_tar(tf, tmp)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, ValueError, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # our own staging folder: nothing half-extracted stays behind
        raise ValueError(f"Could not extract {archive}: {type(exc).__name__}: {exc}. If it came from a download, delete "
                         "it and download it again; an archive whose members point outside their folder is refused.") from None
    (tmp / ".extracted").write_text(stamp + "\n")
    return publish_folder(tmp, dest)


def _safe_extract_tar(tf: tarfile.TarFile, dest: Path) -> None:
    """Extract refusing absolute paths, ``..`` and links (``filter='data'`` where Python has it)."""
    try:
        tf.extractall(dest, filter="data")
        return
    except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filters
        pass
    root = dest.resolve()
    for member in tf.getmembers():
        target = (dest / member.name).resolve()
        if not target.is_relative_to(root) or member.issym() or member.islnk():
            raise ValueError(f"Refusing to extract {member.name!r} from {tf.name}: it points outside the folder.")
    tf.extractall(dest)
