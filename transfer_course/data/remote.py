"""Real datasets for the ``full`` profile, described as data: URL, size and sha256 of every file.

Checksums are those published for the original archives. Use :func:`download_dataset` to fetch and
verify all files of one dataset; offline it raises an error that says which files to put where.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import shutil

import numpy as np

from ..errors import DatasetError, choices_message
from ..paths import cache_dir, check_can_write_folder, publish_folder, staging_folder
from .download import extract, fetch

__all__ = ["RemoteFile", "RemoteDataset", "REMOTE_DATASETS", "download_dataset", "prepare_dataset", "read_idx"]


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str
    size: int  # bytes, for the user's information

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class RemoteDataset:
    name: str
    description: str
    homepage: str
    files: tuple[RemoteFile, ...]

    @property
    def size_mb(self) -> float:
        return sum(f.size for f in self.files) / 1e6


REMOTE_DATASETS = {
    "flowers102": RemoteDataset(
        "flowers102",
        "Oxford Flowers102: 8,189 photos of 102 flower species",
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
        (
            RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
                       "2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246", 344_862_509),
            RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",
                       "4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d", 502),
            RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat",
                       "46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd", 14_989),
        ),
    ),
    "oxford_pets": RemoteDataset(
        "oxford_pets",
        "Oxford-IIIT Pets: 7,349 photos of 37 cat and dog breeds",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/",
        (
            RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                       "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d", 791_918_971),
            RemoteFile("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                       "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91", 19_173_078),
        ),
    ),
    "cifar10": RemoteDataset(
        "cifar10",
        "CIFAR-10: 60,000 32x32 colour images in 10 classes (binary version)",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        (
            RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                       "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170_052_171),
        ),
    ),
    "cats_vs_dogs": RemoteDataset(
        "cats_vs_dogs",
        "Microsoft Cats vs Dogs: 25,000 photos of cats and dogs",
        "https://www.microsoft.com/en-us/download/details.aspx?id=54765",
        (
            RemoteFile("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_3367a.zip",
                       "f9553e426bd725354ed3a27e3c6920caadb55c835d1ebd880d2e56d3f1fbb22b", 824_894_548),
        ),
    ),
    # MNIST from the mirror that torchvision uses; the same files (same sha256) as the original site.
    "mnist": RemoteDataset(
        "mnist",
        "MNIST: 70,000 28x28 grayscale handwritten digits (IDX files)",
        "https://yann.lecun.com/exdb/mnist/",
        (
            RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                       "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
            RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
                       "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28_881),
            RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
                       "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
            RemoteFile("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
                       "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4_542),
        ),
    ),
    # The Berkeley Segmentation Dataset: MNIST-M blends MNIST digits over patches of its colour photos.
    "bsds500": RemoteDataset(
        "bsds500",
        "BSDS500: 500 colour photos of natural scenes (train 200 / val 100 / test 200)",
        "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html",
        (
            RemoteFile("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
                       "97e49d31764f3912f0c4122707d53062ac9e783ba0f095e447a4d53c1a41af8e", 70_763_455),
        ),
    ),
    # Text (lesson 07): Zhang, Zhao & LeCun's CSVs ("class 1-4","title","description"); checksums as published by
    # Hugging Face datasets for these URLs.
    "ag_news": RemoteDataset(
        "ag_news",
        "AG News: 127,600 news titles and descriptions in 4 topics (World, Sports, Business, Sci/Tech)",
        "http://groups.di.unipi.it/~gulli/AG_corpus_of_news_articles.html",
        (
            RemoteFile("https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv",
                       "76a0a2d2f92b286371fe4d4044640910a04a803fdd2538e0f3f29a5c6f6b672e", 29_470_338),
            RemoteFile("https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv",
                       "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699", 1_857_427),
        ),
    ),
}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format, gzipped or not) as a NumPy array: ``(N, 28, 28)`` uint8 images or ``(N,)`` labels.

    The header is a magic number ``0x0000 0x08 k`` (unsigned bytes, ``k`` dimensions) and ``k`` big-endian sizes;
    a file whose header or length does not match is refused with the reason."""
    import gzip

    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path} is a damaged gzip file ({exc}); delete it and download it again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 3:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4].hex() or 'empty'}, expected "
                           "0000 08 01..03); delete it and download it again.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    if len(raw) != start + int(np.prod(shape)):
        raise DatasetError(f"{path} holds {len(raw) - start} bytes of data, but its header announces {shape} "
                           f"({int(np.prod(shape))} bytes): the file is truncated. Delete it and download it again.")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(shape)


def download_dataset(name: str, timeout: float = 60.0) -> list[Path]:
    """Fetch and verify every file of the remote dataset ``name``; return the cached paths."""
    if name not in REMOTE_DATASETS:
        raise ValueError(choices_message("remote dataset", name, REMOTE_DATASETS))
    spec = REMOTE_DATASETS[name]
    return [fetch(f.url, f.sha256, subdir=f"downloads/{name}", timeout=timeout) for f in spec.files]


def prepare_dataset(name: str, root: str | Path | None = None, max_per_class: int | None = None,
                    timeout: float = 60.0) -> Path:
    """Download ``name`` (verified), then arrange it as ``train/<class>/…``, ``val/<class>/…`` and
    ``test/<class>/…``: the same folder tree as the embedded datasets, so every loader and lesson works on it
    unchanged.

    ``flowers102`` uses the official train / validation / test split. ``cifar10`` keeps its test batch as
    ``test/`` and holds out its fifth training batch as ``val/`` (the 10,000 images you choose settings on),
    so the test images are never looked at while choosing. ``max_per_class`` keeps the first images of each
    class in each split (a smaller, faster subset).
    A second call reuses the prepared tree.
    """
    if name not in _PREPARERS:
        raise ValueError(choices_message("dataset that can be prepared", name, _PREPARERS))
    suffix = f"-max{max_per_class}" if max_per_class else ""
    root = Path(root) if root else cache_dir("datasets") / f"{name}-v2{suffix}"  # v2: with a test split
    check_can_write_folder(root)  # before downloading: never replace a folder holding a user's files
    if (root / ".complete").exists():
        return root
    files = download_dataset(name, timeout=timeout)
    staging = staging_folder(root)
    _PREPARERS[name](files, staging, max_per_class)
    return publish_folder(staging, root)


def _flowers102(files, root: Path, max_per_class) -> None:
    from scipy.io import loadmat

    images = extract(files[0]) / "jpg"
    labels = loadmat(files[1])["labels"].ravel()
    split_ids = loadmat(files[2])
    counts: dict = {}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        for image_id in split_ids[key].ravel():
            label = int(labels[image_id - 1])
            if max_per_class and counts.get((split, label), 0) >= max_per_class:
                continue
            counts[(split, label)] = counts.get((split, label), 0) + 1
            src = images / f"image_{image_id:05d}.jpg"
            if not src.is_file():
                raise DatasetError(f"{src} is missing from the Flowers102 archive; delete {files[0]} and try again.")
            _link(src, root / split / f"class_{label:03d}" / src.name)


def _cifar10(files, root: Path, max_per_class) -> None:
    from PIL import Image

    folder = extract(files[0]) / "cifar-10-batches-bin"
    names = [n for n in (folder / "batches.meta.txt").read_text().split() if n]
    splits = (("train", [f"data_batch_{i}.bin" for i in range(1, 5)]), ("val", ["data_batch_5.bin"]),
              ("test", ["test_batch.bin"]))
    for split, batches in splits:
        counts = np.zeros(len(names), dtype=int)
        for batch in batches:
            records = np.fromfile(folder / batch, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
            for i, record in enumerate(records):
                label = int(record[0])
                if max_per_class and counts[label] >= max_per_class:
                    continue
                counts[label] += 1
                image = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)
                path = root / split / names[label] / f"{batch.split('.')[0]}_{i:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)  # no second copy on disk where the file system allows it
    except OSError:
        shutil.copy2(src, dest)


def _ag_news(files, root: Path, max_per_class) -> None:
    """AG News as ``<split>/<topic>/<row>.txt`` (title + description); ``val/`` is every 20th row of train.csv."""
    import csv

    names = ["World", "Sports", "Business", "Sci_Tech"]
    for path, splits in ((files[0], ("train", "val")), (files[1], ("test",))):
        counts: dict = {}
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.reader(f)):
                if len(row) != 3 or not row[0].strip().isdigit() or not 1 <= int(row[0]) <= 4:
                    raise DatasetError(f"{path}, row {i + 1}, is not 'class 1-4, title, description': {row[:3]!r}. "
                                       f"Delete {path} and download it again.")
                split = splits[-1] if len(splits) > 1 and i % 20 == 0 else splits[0]
                label = names[int(row[0]) - 1]
                if max_per_class and counts.get((split, label), 0) >= max_per_class:
                    continue
                counts[(split, label)] = counts.get((split, label), 0) + 1
                text = " ".join(part.replace("\\", " ").strip() for part in row[1:] if part.strip())
                dest = root / split / label / f"{i:06d}.txt"
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text, encoding="utf-8")


_PREPARERS = {"flowers102": _flowers102, "cifar10": _cifar10, "ag_news": _ag_news}
