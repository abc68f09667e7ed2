"""Real datasets for the ``full`` profile, described as data: URL, size and sha256 of every file.

Checksums are those published for the original archives. Use :func:`download_dataset` to fetch and
verify all files of one dataset; offline it raises an error that says which files to put where.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import choices_message
from .download import fetch

__all__ = ["RemoteFile", "RemoteDataset", "REMOTE_DATASETS", "download_dataset"]


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
}


def download_dataset(name: str, timeout: float = 60.0) -> list[Path]:
    """Fetch and verify every file of the remote dataset ``name``; return the cached paths."""
    if name not in REMOTE_DATASETS:
        raise ValueError(choices_message("remote dataset", name, REMOTE_DATASETS))
    spec = REMOTE_DATASETS[name]
    return [fetch(f.url, f.sha256, subdir=f"downloads/{name}", timeout=timeout) for f in spec.files]
