"""Datasets generated offline from real photos that install with scikit-image and scikit-learn.

Everything is deterministic given a seed and written once to the course cache as a
``train/``/``val/`` folder tree, the same layout a user's own data has.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import choices_message
from ..paths import cache_dir
from .folder import ensure_rgb

__all__ = ["SAMPLE_PHOTOS", "sample_photos", "photo", "make_photo_crops", "make_photo_patches", "PATCH_CLASSES",
           "EMBEDDED_DATASETS", "make_dataset"]

#: name -> (loader, what ImageNet calls it). All are real photographs shipped inside pip packages.
SAMPLE_PHOTOS = {
    "cat": ("skimage:chelsea", "Egyptian cat"),
    "coffee": ("skimage:coffee", "espresso"),
    "astronaut": ("skimage:astronaut", None),
    "rocket": ("skimage:rocket", "missile"),
    "temple": ("sklearn:china.jpg", "palace"),
    "flower": ("sklearn:flower.jpg", "daisy"),
    "cameraman": ("skimage:camera", None),  # grayscale: shows the RGB conversion
    "motorcycle": ("skimage:stereo_motorcycle", "moped"),
    "microscopy": ("skimage:immunohistochemistry", None),
    "galaxies": ("skimage:hubble_deep_field", None),
    "retina": ("skimage:retina", None),
}


def photo(name: str) -> np.ndarray:
    """One of :data:`SAMPLE_PHOTOS` as an ``(H, W, 3)`` uint8 array (grayscale photos converted to RGB)."""
    if name not in SAMPLE_PHOTOS:
        raise ValueError(choices_message("sample photo", name, SAMPLE_PHOTOS))
    source, key = SAMPLE_PHOTOS[name][0].split(":")
    if source == "skimage":
        from skimage import data

        image = getattr(data, key)()
        image = image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(key)
    return np.ascontiguousarray(ensure_rgb(np.asarray(image, dtype=np.uint8)))


def sample_photos(names=None) -> dict[str, np.ndarray]:
    """Several sample photos by name (all of them by default)."""
    return {n: photo(n) for n in (names or SAMPLE_PHOTOS)}


def _random_crop(image: np.ndarray, rng: np.random.Generator, size: int, scale=(0.35, 0.9),
                 gray: float = 0.2) -> np.ndarray:
    """A random square crop (side a ``scale`` fraction of the shorter side), rotated up to 30 degrees,
    flipped half the time, with brightness and contrast changed by up to 40% and a ``gray`` fraction
    turned gray: the nuisance changes that good features ignore and raw pixels do not."""
    from PIL import Image

    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(*scale))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(image[top:top + side, left:left + side])
    crop = crop.rotate(rng.uniform(-30, 30), resample=Image.BILINEAR, expand=False)
    out = np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < gray:
        out = np.repeat(out.mean(-1, keepdims=True), 3, axis=-1)
    out = (out - out.mean()) * rng.uniform(0.6, 1.4) + out.mean() * rng.uniform(0.6, 1.4)
    return np.clip(out, 0, 255).astype(np.uint8)


def _staging(root: Path) -> Path:
    """A private folder to write a dataset into, so that two processes never see each other's half-written files."""
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, root: Path) -> Path:
    """Move a finished dataset into place; if another process finished first, keep its copy."""
    (staging / ".complete").touch()
    if (root / ".complete").exists():
        shutil.rmtree(staging, ignore_errors=True)
        return root
    shutil.rmtree(root, ignore_errors=True)  # an incomplete tree from an interrupted run
    try:
        os.replace(staging, root)
    except OSError:  # another process published between our check and the move
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_crops(root: Path, classes, counts: dict, seed: int, crop) -> Path:
    """``counts[split]`` images per class, each ``crop(photo, rng)``, as ``root/split/class/*.png``; written to a
    staging folder and published at once."""
    from PIL import Image

    final, root = root, _staging(root)
    rng = np.random.default_rng(seed)
    for name in classes:
        image = photo(name)
        for split, count in counts.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(crop(image, rng)).save(folder / f"{name}_{i:03d}.png")
    return _publish(root, final)


def make_photo_crops(size: int = 96, per_class: int = 12, seed: int = 0, root: str | Path | None = None,
                     classes=("cat", "coffee", "astronaut", "rocket", "temple", "flower")) -> Path:
    """Random crops of six real photos, one class per photo: a tiny dataset to look at features with.

    ``train/`` gets ``per_class`` crops per class and ``val/`` half as many, from disjoint random draws.
    Returns the dataset root; a second call with the same arguments reuses the cached files.
    """
    if per_class < 2:
        raise ValueError(f"per_class must be at least 2; received {per_class}.")
    root = Path(root) if root else cache_dir("datasets") / f"photo_crops-{size}px-{per_class}-seed{seed}"
    if (root / ".complete").exists():
        return root
    return _write_crops(root, classes, {"train": per_class, "val": max(2, per_class // 2)}, seed,
                        lambda image, rng: _random_crop(image, rng, size))


#: the ten scenes of :func:`make_photo_patches`
PATCH_CLASSES = ("cat", "coffee", "astronaut", "rocket", "temple", "flower", "motorcycle", "microscopy", "galaxies",
                 "retina")


def make_photo_patches(size: int = 128, per_class: int = 20, val_per_class: int = 20, seed: int = 0,
                       root: str | Path | None = None, classes=PATCH_CLASSES) -> Path:
    """The lessons' target task: small patches of ten real photos, one class per photo.

    Each patch shows 12-35% of its photo's shorter side, rotated, flipped, re-lit and, one time in
    three, in grayscale, so a class is recognised from its content (fur, foam, brickwork, petals,
    stars, vessels) rather than from its colours. ``train/`` holds ``per_class`` patches per class,
    ``val/`` ``val_per_class``, from disjoint random draws. A second call with the same arguments
    reuses the cached files.
    """
    if per_class < 1 or val_per_class < 1:
        raise ValueError(f"per_class and val_per_class must be at least 1; received {per_class}, {val_per_class}.")
    unknown = [c for c in classes if c not in SAMPLE_PHOTOS]
    if unknown:
        raise ValueError(choices_message("photo class", unknown[0], SAMPLE_PHOTOS))
    root = Path(root) if root else cache_dir("datasets") / f"photo_patches-{size}px-{per_class}-{val_per_class}-seed{seed}"
    if (root / ".complete").exists():
        return root
    return _write_crops(root, classes, {"train": per_class, "val": val_per_class}, seed,
                        lambda image, rng: _random_crop(image, rng, size, scale=(0.12, 0.35), gray=1 / 3))


EMBEDDED_DATASETS = {"photo_crops": make_photo_crops, "photo_patches": make_photo_patches}


def make_dataset(name: str, **kwargs) -> Path:
    """Generate (or reuse from the cache) the embedded dataset ``name``; return its root folder."""
    if name not in EMBEDDED_DATASETS:
        raise ValueError(choices_message("embedded dataset", name, EMBEDDED_DATASETS))
    return EMBEDDED_DATASETS[name](**kwargs)
