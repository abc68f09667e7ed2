"""``tf.data`` adapters over the framework-neutral image folders."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..data.folder import load_image, scan_image_folder, verify_images
from ..models import ModelSpec, get_spec, preprocess

__all__ = ["image_folder_loader"]


def image_folder_loader(root, split: str = "train", model: str | ModelSpec = "efficientnet_lite0",
                        image_size: int | None = None, batch_size: int = 32, shuffle: bool | None = None,
                        class_names=None, num_workers: int = 0, seed: int = 0) -> tf.data.Dataset:
    """A batched, prefetching ``tf.data.Dataset`` of ``(images (N, size, size, 3), labels)`` over ``root/split``.

    Images are preprocessed the way ``model`` was trained (the same function as the PyTorch side);
    ``shuffle`` defaults to True for the train split. The dataset's ``.folder`` keeps the file list
    and class names. ``num_workers`` > 0 decodes in parallel.
    """
    spec = model if isinstance(model, ModelSpec) else get_spec(model, "tensorflow")
    folder = verify_images(scan_image_folder(root, split, class_names))
    size = image_size or spec.input_size
    paths = np.asarray([str(p) for p in folder.paths])

    def load(path):
        return preprocess(load_image(path.decode()), spec, size=size)[0]

    def tf_load(path, label):
        x = tf.numpy_function(load, [path], tf.float32, stateful=False)
        x.set_shape((size, size, 3))
        return x, label

    ds = tf.data.Dataset.from_tensor_slices((paths, folder.labels))
    if split == "train" if shuffle is None else shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(tf_load, num_parallel_calls=num_workers or None, deterministic=True)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    ds.folder = folder
    return ds
