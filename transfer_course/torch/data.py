"""PyTorch adapters over the framework-neutral image folders."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.folder import ImageFolder, load_image, scan_image_folder, verify_images
from ..models import ModelSpec, get_spec, preprocess

__all__ = ["ImageFolderDataset", "image_folder_loader"]


class ImageFolderDataset(Dataset):
    """``(image tensor (3, size, size), label)`` pairs from an :class:`ImageFolder`, preprocessed for ``spec``."""

    def __init__(self, folder: ImageFolder, spec: ModelSpec, image_size: int):
        self.folder, self.spec, self.image_size = folder, spec, image_size

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        image = load_image(self.folder.paths[i])
        x = preprocess(image, self.spec, size=self.image_size)[0]
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), int(self.folder.labels[i])


def image_folder_loader(root, split: str = "train", model: str | ModelSpec = "efficientnet_lite0",
                        image_size: int | None = None, batch_size: int = 32, shuffle: bool | None = None,
                        class_names=None, num_workers: int = 0, seed: int = 0) -> DataLoader:
    """A ``DataLoader`` over ``root/split``, preprocessed the way ``model`` was trained.

    ``shuffle`` defaults to True for the train split. The loader's ``.dataset.folder`` keeps the
    file list and class names.
    """
    spec = model if isinstance(model, ModelSpec) else get_spec(model, "torch")
    folder = verify_images(scan_image_folder(root, split, class_names))
    dataset = ImageFolderDataset(folder, spec, image_size or spec.input_size)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=split == "train" if shuffle is None else shuffle,
                      num_workers=num_workers, generator=generator)
