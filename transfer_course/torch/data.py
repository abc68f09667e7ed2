"""PyTorch adapters over the framework-neutral image folders, and the augmentation pipeline."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..training import as_float_inputs, check_batch_size, class_indices
from ..data.folder import ImageFolder, load_image, scan_image_folder, verify_images
from ..models import ModelSpec, get_spec, normalize_pixels, prepare_pixels

__all__ = ["ImageFolderDataset", "image_folder_loader", "augmentation", "array_loader"]


def augmentation(flip: bool = True, rotate: float = 15.0, zoom: float = 0.3, shift: float = 0.1):
    """Random changes a label should survive, applied to each preprocessed ``(3, H, W)`` image:
    horizontal flips, rotations up to ``rotate`` degrees, zooming in by up to ``zoom`` (a random crop)
    and shifts up to ``shift`` of the side. Uncovered corners are 0, the mean after normalisation.
    The TensorFlow side builds the same pipeline from Keras layers."""
    from torchvision.transforms import v2

    steps = [v2.RandomHorizontalFlip()] if flip else []
    steps.append(v2.RandomAffine(degrees=rotate, translate=(shift, shift), scale=(1.0, 1.0 + zoom)))
    return v2.Compose(steps)


class ImageFolderDataset(Dataset):
    """``(image tensor (3, size, size), label)`` pairs from an :class:`ImageFolder`, preprocessed for ``spec``.

    Decoded images are kept in memory after their first use, resized, as uint8 (a quarter of float32), and
    normalised on every access: the same numbers as ``preprocess``. ``transform`` (e.g. :func:`augmentation`)
    runs on every access.
    """

    def __init__(self, folder: ImageFolder, spec: ModelSpec, image_size: int, transform=None, keep_in_memory: bool = True):
        self.folder, self.spec, self.image_size, self.transform = folder, spec, image_size, transform
        self._memory = {} if keep_in_memory else None

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        pixels = self._memory.get(i) if self._memory is not None else None
        if pixels is None:
            pixels = prepare_pixels(load_image(self.folder.paths[i]), self.spec, size=self.image_size)[0]
            if self._memory is not None:
                self._memory[i] = pixels
        x = torch.from_numpy(np.ascontiguousarray(normalize_pixels(pixels, self.spec).transpose(2, 0, 1)))
        return (self.transform(x) if self.transform else x), int(self.folder.labels[i])


def image_folder_loader(root, split: str = "train", model: str | ModelSpec = "efficientnet_lite0",
                        image_size: int | None = None, batch_size: int = 32, shuffle: bool | None = None,
                        class_names=None, num_workers: int = 0, seed: int = 0, augment=False) -> DataLoader:
    """A ``DataLoader`` over ``root/split``, preprocessed the way ``model`` was trained.

    ``shuffle`` defaults to True for the train split; ``augment=True`` applies :func:`augmentation`
    (or pass your own transform). The loader's ``.dataset.folder`` keeps the file list and class names.
    """
    check_batch_size(batch_size)
    spec = model if isinstance(model, ModelSpec) else get_spec(model, "torch")
    folder = verify_images(scan_image_folder(root, split, class_names))
    transform = augmentation() if augment is True else (augment or None)
    dataset = ImageFolderDataset(folder, spec, image_size or spec.input_size, transform)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=split == "train" if shuffle is None else shuffle,
                      num_workers=num_workers, generator=generator, pin_memory=torch.cuda.is_available())


def array_loader(x, y, batch_size: int = 32, shuffle: bool = True, seed: int = 0) -> DataLoader:
    """A ``DataLoader`` over in-memory arrays, e.g. cached features and their labels."""
    check_batch_size(batch_size)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    x = torch.as_tensor(as_float_inputs(x))
    y = torch.as_tensor(class_indices(y))
    if len(x) != len(y):
        raise ValueError(f"Got {len(x)} inputs but {len(y)} labels.")
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))
