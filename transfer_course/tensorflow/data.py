"""``tf.data`` adapters over the framework-neutral image folders, and the augmentation pipeline."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ..training import as_float_inputs, check_batch_size, class_indices
from ..data.folder import load_image, scan_image_folder, verify_images
from ..models import CAFFE_MEAN_BGR, ModelSpec, get_spec, normalization_constants, prepare_pixels

__all__ = ["image_folder_loader", "augmentation", "array_loader"]


def augmentation(flip: bool = True, rotate: float = 15.0, zoom: float = 0.3, shift: float = 0.1, seed: int = 0):
    """Random changes a label should survive, as Keras layers applied per image of a batch: horizontal
    flips, rotations up to ``rotate`` degrees, zooming in by up to ``zoom`` (a random crop) and shifts
    up to ``shift`` of the side. Uncovered corners are 0, the mean after normalisation. The PyTorch
    side builds the same pipeline from torchvision transforms."""
    steps = [layers.RandomFlip("horizontal", seed=seed)] if flip else []
    steps += [layers.RandomRotation(rotate / 360.0, fill_mode="constant", seed=seed + 1),
              layers.RandomZoom((-zoom, 0.0), fill_mode="constant", seed=seed + 2),
              layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed + 3)]
    return keras.Sequential(steps, name="augmentation")


def image_folder_loader(root, split: str = "train", model: str | ModelSpec = "efficientnet_lite0",
                        image_size: int | None = None, batch_size: int = 32, shuffle: bool | None = None,
                        class_names=None, num_workers: int = 0, seed: int = 0, augment=False) -> tf.data.Dataset:
    """A batched, prefetching ``tf.data.Dataset`` of ``(images (N, size, size, 3), labels)`` over ``root/split``.

    Images are preprocessed the way ``model`` was trained (the same numbers as ``preprocess``, shared with the
    PyTorch side); after the first epoch they are kept in memory resized, as uint8, and normalised one batch at a
    time. ``shuffle`` defaults to True for the train split;
    ``augment=True`` applies :func:`augmentation` (or pass your own layer). The dataset's ``.folder``
    keeps the file list and class names. ``num_workers`` > 0 decodes in parallel.
    """
    check_batch_size(batch_size)
    spec = model if isinstance(model, ModelSpec) else get_spec(model, "tensorflow")
    folder = verify_images(scan_image_folder(root, split, class_names))
    size = image_size or spec.input_size
    paths = np.asarray([str(p) for p in folder.paths])

    def load(path):
        return prepare_pixels(load_image(path.decode()), spec, size=size)[0]  # uint8: a quarter of float32 in the cache

    def tf_load(path, label):
        x = tf.numpy_function(load, [path], tf.uint8, stateful=False)
        x.set_shape((size, size, 3))
        return x, label

    ds = tf.data.Dataset.from_tensor_slices((paths, folder.labels.astype(np.int64)))
    ds = (ds.map(tf_load, num_parallel_calls=num_workers, deterministic=True) if num_workers else ds.map(tf_load)).cache()
    if split == "train" if shuffle is None else shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(_normalizer(spec))  # the same numbers as preprocess(), one batch at a time
    if augment:
        layer = augmentation(seed=seed) if augment is True else augment
        ds = ds.map(lambda x, y: (layer(x, training=True), y))  # one batch at a time: the layer is vectorised
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.folder = folder
    ds.image_size = size
    return ds


def _normalizer(spec: ModelSpec):
    """``(uint8 images, labels) -> (float32 model input, labels)``, the TensorFlow twin of ``normalize_pixels``."""
    constants = normalization_constants(spec)

    def normalize(x, y):
        x = tf.cast(x, tf.float32)
        if constants is None:  # caffe: BGR, minus the mean
            return tf.reverse(x, axis=[-1]) - CAFFE_MEAN_BGR, y
        mean, std = constants
        return (x / 255.0 - mean) / std, y

    return normalize


def array_loader(x, y, batch_size: int = 32, shuffle: bool = True, seed: int = 0) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` over in-memory arrays, e.g. cached features and their labels."""
    check_batch_size(batch_size)
    x, y = as_float_inputs(np.asarray(x)), class_indices(np.asarray(y))
    if len(x) != len(y):
        raise ValueError(f"Got {len(x)} inputs but {len(y)} labels.")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    ds.arrays = (x, y)
    return ds
