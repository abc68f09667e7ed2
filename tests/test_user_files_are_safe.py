"""The course never deletes or overwrites what it did not create, and never writes outside its cache."""
import io
import tarfile

import pytest

from transfer_course.data import extract, fetch, make_photo_patches, prepare_dataset
from transfer_course.paths import OWNER_MARK, check_can_write_folder, publish_folder, staging_folder


@pytest.fixture
def user_folder(tmp_path):
    folder = tmp_path / "my_project"
    (folder / "notes").mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "notes" / "idea.md").write_text("keep me")
    return folder


def _intact(folder):
    return (folder / "thesis.txt").read_text() == "three years of work" and (folder / "notes" / "idea.md").exists()


@pytest.mark.parametrize("name", ["cifar10", "flowers102"])
def test_prepare_dataset_refuses_a_folder_with_user_files(cache_home, monkeypatch, user_folder, name):
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")  # the refusal comes first, before any download
    with pytest.raises(FileExistsError, match="did not create.*new or empty folder"):
        prepare_dataset(name, root=user_folder)
    assert _intact(user_folder)


def test_embedded_dataset_refuses_a_folder_with_user_files(cache_home, user_folder):
    with pytest.raises(FileExistsError, match="did not create"):
        make_photo_patches(size=16, per_class=1, val_per_class=1, root=user_folder)
    assert _intact(user_folder)
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        make_photo_patches(size=16, per_class=1, val_per_class=1, root=user_folder / "thesis.txt")


def test_embedded_dataset_goes_into_an_empty_folder_and_is_reused(cache_home, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    assert make_photo_patches(size=16, per_class=1, val_per_class=1, root=root) == root
    assert (root / OWNER_MARK).is_file() and (root / "train").is_dir()
    stamp = next(root.rglob("*.png")).stat().st_mtime_ns
    assert make_photo_patches(size=16, per_class=1, val_per_class=1, root=root) == root
    assert next(root.rglob("*.png")).stat().st_mtime_ns == stamp


def test_publish_replaces_only_the_courses_own_incomplete_folder(tmp_path, user_folder):
    ours = tmp_path / "ours"
    first = staging_folder(ours)
    (first / "half-written").touch()
    (first / ".complete").unlink(missing_ok=True)
    first.rename(ours)  # an interrupted earlier run: ours, but not complete
    second = staging_folder(ours)
    (second / "done").touch()
    assert publish_folder(second, ours) == ours and (ours / "done").exists() and not (ours / "half-written").exists()
    third = staging_folder(user_folder)
    with pytest.raises(FileExistsError):
        publish_folder(third, user_folder)
    assert _intact(user_folder)
    assert check_can_write_folder(tmp_path / "new") == tmp_path / "new"


def _tar(path, text):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = text.encode()
        info = tarfile.TarInfo("folder/file.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def test_extract_refuses_user_folders_and_follows_the_archive_content(tmp_path, user_folder):
    archive = _tar(tmp_path / "a.tar.gz", "first")
    with pytest.raises(FileExistsError, match="did not create"):
        extract(archive, user_folder)
    assert _intact(user_folder)
    out = extract(archive)
    assert (out / "folder" / "file.txt").read_text() == "first"
    _tar(archive, "second version")  # the archive changed: the extraction must not be the stale one
    assert (extract(archive) / "folder" / "file.txt").read_text() == "second version"


@pytest.mark.parametrize("filename", ["../escape.bin", "sub/dir.bin", "..", "a\\b.bin"])
def test_download_file_names_cannot_leave_the_cache(cache_home, filename):
    with pytest.raises(ValueError, match="plain file name"):
        fetch("https://example.org/x.bin", "0" * 64, filename=filename)
    assert not (cache_home.parent / "escape.bin").exists()


@pytest.mark.parametrize("subdir", ["../outside", "/etc"])
def test_download_subdir_stays_in_the_cache(cache_home, subdir):
    with pytest.raises(ValueError, match="inside the course cache"):
        fetch("https://example.org/x.bin", "0" * 64, subdir=subdir)


def test_sha256_must_be_hex(cache_home):
    with pytest.raises(ValueError, match="64 hex characters"):
        fetch("https://example.org/x.bin", "z" * 64)


def test_the_package_never_unpickles_freely_and_removes_only_audited_folders():
    """A guard over the source: no ``weights_only=False`` / ``allow_pickle=True`` anywhere, and ``shutil.rmtree`` only
    in the two modules whose every call removes a folder the course marked as its own (tested above)."""
    import re

    from helpers import ROOT

    for path in (ROOT / "transfer_course").rglob("*.py"):
        text = path.read_text()
        assert "weights_only=False" not in text, path
        assert "allow_pickle=True" not in text, path
        if re.search(r"\brmtree\(", text):
            assert path.name in ("paths.py", "download.py"), f"{path} removes folders: route it through paths.py"
