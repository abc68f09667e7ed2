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
    with pytest.raises(ValueError, match="Valid choices: ag_news, bsds500, cats_vs_dogs, cifar10, flowers102, mnist, oxford_pets"):
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


def _write_idx(path, array):
    """An IDX file as MNIST ships it: gzip of a 0000 08 <ndim> header, big-endian sizes, then the bytes."""
    import gzip

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_mnist_to_mnist_m_pair_from_real_format_files(cache_home, http_server, monkeypatch):
    """The full profile's real pair, built offline from small files in MNIST's and BSDS500's own formats, served
    over HTTP with their sha256: splits, disjoint digits, the blend on the right photos, the cache."""
    import tarfile

    import transfer_course.data.remote as remote
    from transfer_course.adapt import blend_mnist_m, mnist_m_pair
    from transfer_course.data import read_idx
    from transfer_course.errors import DatasetError

    base, www, requests = http_server
    rng = np.random.default_rng(0)
    # 12 training digits per class (the last sixth is the validation pool, as in MNIST), labelled 0 0 1 1 ... so that
    # even and odd positions hold every class; 3 test digits per class. Each digit is unique, so that any image can be
    # traced back to the file it came from.
    y_fit, y_test = (np.arange(120) // 2) % 10, np.tile(np.arange(10), 3)
    x_fit = rng.integers(0, 256, size=(len(y_fit), 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(len(y_test), 28, 28), dtype=np.uint8)
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    for name, array in zip(files, (x_fit, y_fit, x_test, y_test)):
        _write_idx(www / name, array)
    assert np.array_equal(read_idx(www / files[0]), x_fit) and np.array_equal(read_idx(www / files[1]), y_fit)
    # BSDS500's layout; black training photos and white test photos make the blend |patch - digit| traceable
    photos = www / "photos" / "BSR" / "BSDS500" / "data" / "images"
    for split, value in (("train", 0), ("test", 255), ("val", 128)):
        for i in range(2):
            write_image(photos / split / f"{i}.jpg", size=(48, 32), color=(value, value, value))
    with tarfile.open(www / "BSR_bsds500.tgz", "w:gz") as tf:
        tf.add(www / "photos" / "BSR", arcname="BSR")
    monkeypatch.setitem(remote.REMOTE_DATASETS, "mnist", _serve(www, base, "mnist", [www / f for f in files]))
    monkeypatch.setitem(remote.REMOTE_DATASETS, "bsds500", _serve(www, base, "bsds500", [www / "BSR_bsds500.tgz"]))

    pair = mnist_m_pair(size=28, per_class=3, val_per_class=1, test_per_class=2, seed=0)
    sizes = {k: len(v[1]) for k, v in pair.splits().items()}
    assert sizes == {"source_train": 30, "source_val": 10, "target_train": 30, "target_val": 10, "target_test": 20}
    for name, (x, y) in pair.splits().items():
        assert x.shape[1:] == (28, 28, 3) and x.dtype == np.uint8
        assert np.bincount(y, minlength=10).tolist() == [sizes[name] // 10] * 10, f"{name} is balanced"

    def origin(image, pool):  # index of the MNIST digit an image shows
        hits = [i for i, d in enumerate(pool) if np.abs(image.astype(int) - d.astype(int)).max() <= 3]
        assert len(hits) == 1, "every image shows exactly one MNIST digit"
        return hits[0]

    xs, ys = pair.source_train
    assert np.array_equal(xs[..., 0], xs[..., 1]) and np.array_equal(xs[..., 0], xs[..., 2]), "the source is gray"
    fit_pool = len(y_fit) - len(y_fit) // 6
    src = [origin(im[..., 0], x_fit) for im in xs] + [origin(im[..., 0], x_fit) for im in pair.source_val[0]]
    tgt = [origin(im[..., 0], x_fit) for im in pair.target_train[0]] + [origin(im[..., 0], x_fit) for im in pair.target_val[0]]
    assert not set(src) & set(tgt), "no digit is in both domains"
    assert all(i % 2 == 0 for i in src) and all(i % 2 == 1 for i in tgt)
    assert all(i < fit_pool for i in src[:30] + tgt[:30]) and all(i >= fit_pool for i in src[30:] + tgt[30:]), \
        "training digits come from the fitting pool, validation digits from the held-out pool"
    assert all(y_fit[i] == label for i, label in zip(src[:30], ys)), "labels follow their digits"
    # target test: MNIST's test digits over the (white) test photos: |255 - digit|
    for image, label in zip(*pair.target_test):
        i = origin(255 - image[..., 0].astype(int), x_test)
        assert y_test[i] == label
    assert len(requests) == 5
    again = mnist_m_pair(size=28, per_class=3, val_per_class=1, test_per_class=2, seed=0)
    assert len(requests) == 5 and np.array_equal(again.target_test[0], pair.target_test[0]), "read from the cache"
    assert mnist_m_pair(size=32, per_class=1, val_per_class=1, test_per_class=1).source_train[0].shape[1:] == (32, 32, 3)

    blended = blend_mnist_m(np.full((1, 2, 2), 50, np.uint8), [np.full((4, 4, 3), 200, np.uint8)], rng)
    assert np.all(blended == 150), "out = |patch - digit|"
    with pytest.raises(ValueError, match="smaller than a digit"):
        blend_mnist_m(np.zeros((1, 28, 28), np.uint8), [np.zeros((10, 10, 3), np.uint8)], rng)
    with pytest.raises(ValueError, match="positive whole number"):
        mnist_m_pair(per_class=0)
    (www / "bad.gz").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00" * 10)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(www / "bad.gz")
    (www / "html.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(www / "html.gz")


def test_mnist_m_offline_names_the_files(cache_home, monkeypatch):
    from transfer_course.adapt import mnist_m_pair

    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    with pytest.raises(Exception, match="train-images-idx3-ubyte.gz") as info:
        mnist_m_pair()
    assert "ossci-datasets.s3.amazonaws.com/mnist" in str(info.value)
