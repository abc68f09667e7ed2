"""Datasets generated offline from real photos that install with scikit-image and scikit-learn.

Everything is deterministic given a seed and written once to the course cache as a
``train/``/``val/``/``test/`` folder tree, the same layout a user's own data has.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import choices_message
from ..paths import cache_dir, check_can_write_folder, publish_folder, staging_folder
from .folder import ensure_rgb

__all__ = ["SAMPLE_PHOTOS", "sample_photos", "photo", "make_photo_patches", "split_tiles", "PATCH_CLASSES",
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


def _patch(image: np.ndarray, rng: np.random.Generator, box, size: int, gray: float = 1 / 3) -> np.ndarray:
    """The square ``box = (top, left, side)`` of ``image``, rotated up to 30 degrees (inside the box), flipped half
    the time, with brightness and contrast changed by up to 40% and a ``gray`` fraction turned gray: the nuisance
    changes that good features ignore and raw pixels do not. Nothing outside the box is used."""
    from PIL import Image

    top, left, side = box
    crop = Image.fromarray(image[top:top + side, left:left + side])
    crop = crop.rotate(rng.uniform(-30, 30), resample=Image.BILINEAR, expand=False)
    out = np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < gray:
        out = np.repeat(out.mean(-1, keepdims=True), 3, axis=-1)
    out = (out - out.mean()) * rng.uniform(0.6, 1.4) + out.mean() * rng.uniform(0.6, 1.4)
    return np.clip(out, 0, 255).astype(np.uint8)


#: share of each photo's tiles given to each split (at least one tile each)
SPLIT_SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}


def split_tiles(shape, rng: np.random.Generator, tiles_per_side: int = 4) -> dict[str, list[tuple[int, int, int]]]:
    """Cut a photo of ``shape`` into square tiles (``tiles_per_side`` along its shorter side) and deal them out to
    train / val / test at random. Returns ``{split: [(top, left, side), ...]}``; tiles of different splits share no
    pixel, so neither can the patches drawn inside them."""
    h, w = shape[:2]
    side = min(h, w) // tiles_per_side
    tiles = [(r * side, c * side, side) for r in range(h // side) for c in range(w // side)]
    order = rng.permutation(len(tiles))
    n_val = max(1, round(len(tiles) * SPLIT_SHARES["val"]))
    n_test = max(1, round(len(tiles) * SPLIT_SHARES["test"]))
    picks = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {split: sorted(tiles[i] for i in picks[split]) for split in SPLIT_SHARES}


def _patch_box(tiles, rng: np.random.Generator, shorter: int, scale) -> tuple[int, int, int]:
    """A random square inside one of ``tiles``, its side a ``scale`` fraction of the photo's shorter side."""
    top, left, tile = tiles[rng.integers(len(tiles))]
    side = min(tile, max(8, int(shorter * rng.uniform(*scale))))
    return (int(top + rng.integers(0, tile - side + 1)), int(left + rng.integers(0, tile - side + 1)), int(side))


#: the ten scenes of :func:`make_photo_patches`
PATCH_CLASSES = ("cat", "coffee", "astronaut", "rocket", "temple", "flower", "motorcycle", "microscopy", "galaxies",
                 "retina")
#: bump when the construction changes, so that cached copies of an older construction are never reused
PATCHES_VERSION = 2


def make_photo_patches(size: int = 128, per_class: int = 20, val_per_class: int = 20, test_per_class: int | None = None,
                       seed: int = 0, root: str | Path | None = None, classes=PATCH_CLASSES) -> Path:
    """The lessons' target task: small patches of ten real photos, one class per photo.

    Each photo is cut into a grid of square tiles (four along its shorter side) and the tiles are dealt out to
    ``train/``, ``val/`` and ``test/`` (about 60 / 20 / 20 %). A patch is drawn inside one tile of its split, so
    **no pixel of a photo appears in two splits**: a validation or test patch shows a part of the scene that no
    training patch shows. Each patch covers 12-25 % of the photo's shorter side and is rotated, flipped, re-lit
    and, one time in three, gray, so a class is recognised from its content (fur, foam, brickwork, petals, stars,
    vessels) rather than from its colours. ``boxes.json`` records each file's square in photo coordinates.

    ``train/`` holds ``per_class`` patches per class, ``val/`` ``val_per_class``, ``test/`` ``test_per_class``
    (default: as many as val). A second call with the same arguments reuses the cached files.
    """
    test_per_class = val_per_class if test_per_class is None else test_per_class
    counts = {"train": per_class, "val": val_per_class, "test": test_per_class}
    for split, n in counts.items():
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{split} patches per class must be a whole number >= 1; received {n!r}.")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be a whole number of pixels >= 8; received {size!r}.")
    unknown = [c for c in classes if c not in SAMPLE_PHOTOS]
    if unknown:
        raise ValueError(choices_message("photo class", unknown[0], SAMPLE_PHOTOS))
    if len(set(classes)) < 2:
        raise ValueError(f"a classification task needs at least 2 different classes; received {tuple(classes)}.")
    name = f"photo_patches-v{PATCHES_VERSION}-{size}px-{per_class}-{val_per_class}-{test_per_class}-seed{seed}"
    if len(classes) != len(PATCH_CLASSES) or tuple(classes) != PATCH_CLASSES:
        name += "-" + "-".join(classes)
    root = check_can_write_folder(Path(root) if root else cache_dir("datasets") / name)
    if (root / ".complete").exists():
        return root
    return _write_patches(root, classes, counts, size, seed)


def _write_patches(root: Path, classes, counts: dict, size: int, seed: int, scale=(0.12, 0.25)) -> Path:
    """Write the patches to a staging folder, then publish it at once (see :func:`make_photo_patches`)."""
    from PIL import Image

    final, root = root, staging_folder(root)
    rng = np.random.default_rng(seed)
    boxes = {}
    for name in classes:
        image = photo(name)
        tiles = split_tiles(image.shape, rng)
        for split, count in counts.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                for _ in range(20):  # skip near-empty squares (the black border around the retina)
                    box = _patch_box(tiles[split], rng, min(image.shape[:2]), scale)
                    t, l, s = box
                    if image[t:t + s, l:l + s].std() > 12:
                        break
                file = f"{split}/{name}/{name}_{i:03d}.png"
                Image.fromarray(_patch(image, rng, box, size)).save(root / file)
                boxes[file] = list(box)
    (root / "boxes.json").write_text(json.dumps(boxes, indent=0))
    return publish_folder(root, final)


EMBEDDED_DATASETS = {"photo_patches": make_photo_patches}


def make_dataset(name: str, **kwargs) -> Path:
    """Generate (or reuse from the cache) the embedded dataset ``name``; return its root folder."""
    if name not in EMBEDDED_DATASETS:
        raise ValueError(choices_message("embedded dataset", name, EMBEDDED_DATASETS))
    return EMBEDDED_DATASETS[name](**kwargs)
