import hashlib
import socket
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest

from transfer_course.data import REMOTE_DATASETS, download_dataset, extract, fetch, sha256_of
from helpers import write_image
from transfer_course.errors import ChecksumError, DownloadError

PAYLOAD = b"transfer learning " * 5000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_caches(cache_home, http_server):
    base, www, requests = http_server
    (www / "data.bin").write_bytes(PAYLOAD)
    path = fetch(f"{base}/data.bin", SHA, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert path.is_relative_to(cache_home)
    assert fetch(f"{base}/data.bin", SHA, progress=False) == path
    assert requests == ["/data.bin"], "a verified cache hit must not download again"


def test_corrupted_cached_file_is_detected_and_replaced(cache_home, http_server, capsys):
    base, www, requests = http_server
    (www / "data.bin").write_bytes(PAYLOAD)
    path = fetch(f"{base}/data.bin", SHA, progress=False)
    path.write_bytes(PAYLOAD[:-10] + b"corrupted!")
    again = fetch(f"{base}/data.bin", SHA, progress=False)
    assert again.read_bytes() == PAYLOAD and sha256_of(again) == SHA
    assert len(requests) == 2
    assert "corrupted" in capsys.readouterr().out


def test_checksum_mismatch_after_download(cache_home, http_server):
    base, www, _ = http_server
    (www / "data.bin").write_bytes(PAYLOAD + b"tampered")
    with pytest.raises(ChecksumError) as err:
        fetch(f"{base}/data.bin", SHA, progress=False)
    assert SHA in str(err.value)
    assert not list(cache_home.rglob("data.bin*")), "a file that failed its check must not stay in the cache"


def test_file_url(cache_home, tmp_path):
    source = tmp_path / "local.bin"
    source.write_bytes(PAYLOAD)
    assert fetch(source.as_uri(), SHA, progress=False).read_bytes() == PAYLOAD


def test_offline_mode_names_file_and_destination(cache_home, monkeypatch):
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        fetch("https://example.org/weights/big.bin", SHA, subdir="manual")
    message = str(err.value)
    assert "https://example.org/weights/big.bin" in message
    assert str(cache_home / "manual" / "big.bin") in message and SHA in message


def test_offline_mode_uses_verified_cache(cache_home, monkeypatch):
    target = cache_home / "downloads" / "big.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    assert fetch("https://example.org/big.bin", SHA) == target


def test_unreachable_server_gives_manual_fix(cache_home):
    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        fetch(f"http://127.0.0.1:{port}/data.bin", SHA, progress=False, timeout=2)
    assert "copy it to" in str(err.value) and "data.bin" in str(err.value)


def test_silent_server_times_out(cache_home):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="timed out"):
            fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/x.bin", SHA, progress=False, timeout=1)
    finally:
        listener.close()
    assert time.monotonic() - start < 10


def test_bad_sha_argument():
    with pytest.raises(ValueError, match="64 hex"):
        fetch("https://example.org/x", "abc")


def test_remote_registry_is_well_formed():
    assert {"flowers102", "oxford_pets", "cifar10", "cats_vs_dogs"} <= set(REMOTE_DATASETS)
    for spec in REMOTE_DATASETS.values():
        for f in spec.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0
            assert f.url.startswith("http") and f.size > 0


def test_remote_dataset_offline_and_unknown(cache_home, monkeypatch):
    with pytest.raises(ValueError, match="Valid choices: cats_vs_dogs, cifar10, flowers102, oxford_pets"):
        download_dataset("imagenet")
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    with pytest.raises(DownloadError, match="102flowers.tgz"):
        download_dataset("flowers102")


def test_extract_zip_and_tar(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.write(tmp_path / "a.txt", "inner/a.txt")
    with tarfile.open(tmp_path / "t.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "a.txt", "inner/a.txt")
    for archive in ("z.zip", "t.tar.gz"):
        out = extract(tmp_path / archive)
        assert (out / "inner" / "a.txt").read_text() == "hello"
        assert extract(tmp_path / archive) == out
    (tmp_path / "plain.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract(tmp_path / "plain.bin")


def _serve(www, base, name, paths):
    """Register local copies of a remote dataset's files (same names, real sha256) under ``base``."""
    import transfer_course.data.remote as remote

    files = tuple(remote.RemoteFile(f"{base}/{p.name}", sha256_of(p), p.stat().st_size) for p in paths)
    return remote.RemoteDataset(name, "test copy", base, files)


def test_prepare_flowers102_and_cifar10_into_folder_trees(cache_home, http_server, monkeypatch):
    import io
    import tarfile

    from scipy.io import savemat

    import transfer_course.data.remote as remote
    from transfer_course.data import prepare_dataset, scan_image_folder

    base, www, _ = http_server
    staging = www / "staging"
    for i in range(1, 7):
        write_image(staging / "jpg" / f"image_{i:05d}.jpg")
    with tarfile.open(www / "102flowers.tgz", "w:gz") as tf:
        tf.add(staging / "jpg", arcname="jpg")
    savemat(www / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 2, 1, 2]])})
    savemat(www / "setid.mat", {"trnid": np.array([[1, 3]]), "valid": np.array([[5, 6]]), "tstid": np.array([[2, 4]])})
    monkeypatch.setitem(remote.REMOTE_DATASETS, "flowers102", _serve(
        www, base, "flowers102", [www / "102flowers.tgz", www / "imagelabels.mat", www / "setid.mat"]))
    root = prepare_dataset("flowers102")
    train, val, test = (scan_image_folder(root, s) for s in ("train", "val", "test"))
    assert train.class_names == ("class_001", "class_002") and len(train) == 2 and len(val) == 2
    assert [p.name for p in test.paths] == ["image_00002.jpg", "image_00004.jpg"] and test.labels.tolist() == [0, 1]
    names = [{p.name for p in split.paths} for split in (train, val, test)]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2]), "official splits are disjoint"
    assert prepare_dataset("flowers102") == root

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        def add(name, data):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add("batches.meta.txt", b"airplane\nautomobile\n\n")
        batches = {}
        for batch in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            records = rng.integers(0, 256, size=(4, 1 + 3072), dtype=np.uint8)
            records[:, 0] = [0, 1, 0, 1]
            batches[batch] = records
            add(batch, records.tobytes())
    (www / "cifar-10-binary.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setitem(remote.REMOTE_DATASETS, "cifar10", _serve(www, base, "cifar10", [www / "cifar-10-binary.tar.gz"]))
    root = prepare_dataset("cifar10", max_per_class=3)
    train = scan_image_folder(root, "train")
    val, test = scan_image_folder(root, "val"), scan_image_folder(root, "test")
    assert train.class_names == ("airplane", "automobile") and len(train) == 6
    assert len(val) == 4 and len(test) == 4
    # val is the held-out fifth training batch, test the test batch: pixel for pixel
    from PIL import Image

    first = lambda folder: np.asarray(Image.open(folder.paths[0]))  # noqa: E731
    assert np.array_equal(first(val), batches["data_batch_5.bin"][0, 1:].reshape(3, 32, 32).transpose(1, 2, 0))
    assert np.array_equal(first(test), batches["test_batch.bin"][0, 1:].reshape(3, 32, 32).transpose(1, 2, 0))
    with pytest.raises(ValueError, match="flowers102"):
        prepare_dataset("imagenet")
