"""Images in a ``train/`` / ``val/`` folder tree, one sub-folder per class.

```
root/
  train/cat/001.jpg  train/dog/002.png ...
  val/cat/101.jpg    val/dog/102.png ...
```
Class names are the sub-folder names, sorted; labels are their positions. Grayscale, palette and
RGBA images are converted to RGB (transparent pixels over white) so every model sees 3 channels.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageDecodeError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "scan_image_folder", "verify_images", "load_image", "load_split",
           "to_rgb", "ensure_rgb"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """The files of one split: ``paths[i]`` has label ``labels[i]``, named ``class_names[labels[i]]``."""

    root: Path
    split: str
    paths: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def scan_image_folder(root: str | Path, split: str = "train", class_names=None) -> ImageFolder:
    """List the images of ``root/split``; raise :class:`DatasetError` saying what is missing.

    ``class_names`` forces an order (e.g. the train split's) so that val labels match train labels. Without it, a
    split other than ``train`` must hold exactly the class folders of ``root/train`` when that exists: labels are
    positions in the class list, so a val or test folder with one class more, fewer or renamed would otherwise be
    labelled wrongly without a word.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Dataset folder {root} does not exist. Create it with one sub-folder per split "
                           f"(train/, val/), each holding one sub-folder of images per class.")
    split_dir = root / split
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DatasetError(f"No '{split}' folder in {root} (found: {found or 'nothing'}). "
                           f"Expected {root}/{split}/<class name>/<image files>.")
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    train_dir = root / "train"
    if class_names is None and split != "train" and train_dir.is_dir():
        trained = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if trained != present:
            extra, lacking = sorted(set(present) - set(trained)), sorted(set(trained) - set(present))
            raise DatasetError(f"{split_dir} does not have the same class folders as {train_dir}: "
                               + (f"extra {extra}" if extra else "") + (", " if extra and lacking else "")
                               + (f"missing {lacking}" if lacking else "") + ". Labels are positions in the class "
                               "list, so every split needs the same class folders; rename or add folders to match.")
    if class_names is None:
        class_names = present
    missing = [c for c in class_names if c not in present]
    if missing:
        raise DatasetError(f"{split_dir} lacks class folders {missing}; it has {present}.")
    unknown = sorted(set(present) - set(class_names))
    if unknown:
        raise DatasetError(f"{split_dir} has class folders {unknown} that are not among the model's classes "
                           f"{list(class_names)}; their images would be left out without a word. Remove them, or "
                           "train with them.")
    if len(class_names) < 2:
        raise DatasetError(f"{split_dir} has {len(class_names)} class folder(s) {present}; a classifier needs at "
                           "least 2, one sub-folder per class.")
    paths, labels, empty = [], [], []
    for label, name in enumerate(class_names):
        files = sorted(p for p in (split_dir / name).iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            empty.append(name)
        paths += files
        labels += [label] * len(files)
    if empty:
        raise DatasetError(f"Class folder(s) {empty} in {split_dir} hold no images "
                           f"(accepted extensions: {', '.join(IMAGE_EXTENSIONS)}).")
    return ImageFolder(root, split, tuple(paths), np.asarray(labels, dtype=np.int64), tuple(class_names))


def _is_truncated(path, fmt) -> bool:
    """Whether a JPEG or PNG lacks its end marker (an interrupted download or copy); ``verify`` does not look."""
    if fmt not in ("JPEG", "PNG"):
        return False
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64))
        tail = f.read().rstrip(b"\x00\r\n ")
    if (tail.endswith(b"\xff\xd9") if fmt == "JPEG" else b"IEND" in tail[-12:]):
        return False
    from PIL import Image  # no end marker where expected (or trailing bytes after it): decode to be sure

    try:
        with Image.open(path) as im:
            im.load()
    except OSError:
        return True
    return False


def verify_images(folder: ImageFolder) -> ImageFolder:
    """Read every file's header and end (fast: no pixel decoding) and raise :class:`ImageDecodeError` listing the
    files that are not images or are truncated, before a training loop meets them deep inside a data pipeline."""
    from PIL import Image

    bad = []
    for path in folder.paths:
        try:
            with Image.open(path) as im:
                im.verify()
                fmt = im.format
            if _is_truncated(path, fmt):
                bad.append(f"{path} (truncated: the file ends before its image data does)")
        except Exception as exc:  # noqa: BLE001 - any failure means "not a usable image"
            bad.append(f"{path} ({exc.__class__.__name__})")
    if bad:
        listed = "\n    ".join(bad[:5]) + (f"\n    … and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ImageDecodeError(f"{len(bad)} file(s) in {folder.root}/{folder.split} are not readable images:\n    {listed}\n"
                               "Remove them or replace them with valid JPEG/PNG files.")
    return folder


def ensure_rgb(image: np.ndarray) -> np.ndarray:
    """An image array as ``(H, W, 3)``: grayscale ``(H, W)``/``(H, W, 1)`` repeated, RGBA over white."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"Expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); received {image.shape}.")
    if image.shape[-1] in (2, 4):  # with an alpha channel: composite over white
        alpha = image[..., -1:].astype(np.float32) / 255.0
        colour = image[..., :-1].astype(np.float32)
        image = np.round(colour * alpha + 255.0 * (1 - alpha)).astype(image.dtype)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def to_rgb(image) -> "PIL.Image.Image":  # noqa: F821
    """Return a PIL RGB image: grayscale/palette converted, transparency composited over white."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":  # 16- or 32-bit grayscale: scale, do not clip at 255
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F" or values.max(initial=0) > 65535 or values.min(initial=0) < 0:
            raise ValueError(f"{image.mode} images with values from {values.min():.4g} to {values.max():.4g} have no "
                             "standard range to map to 0..255; convert them to 8-bit yourself")
        scale = 255.0 / 65535.0 if image.mode != "I" or values.max(initial=0) > 255 else 1.0
        gray = np.round(values * scale).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image file to an ``(H, W, 3)`` uint8 array, optionally resized to ``size`` (square if int)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            image = to_rgb(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"No image at {path}" + (" (it is a folder)" if path.is_dir() else "") + ". Check the "
                                "path; list a folder's images with sorted(Path(folder).glob('*.jpg')).") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder, not an image file. Pass the path of one image.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{path} is not a readable image ({exc.__class__.__name__}: {exc}). "
                               "Remove it from the dataset folder or replace it with a valid JPEG/PNG.") from exc
    if size is not None:
        wh = (size, size) if isinstance(size, int) else (size[1], size[0])
        image = image.resize(wh, Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_split(root: str | Path, split: str = "train", size: int | None = None, class_names=None):
    """All images of ``root/split`` in memory: ``(images (N, H, W, 3) uint8, labels (N,), class_names)``.

    Fine for the small datasets of the lessons; use a framework loader for large ones.
    """
    folder = scan_image_folder(root, split, class_names)
    images = [load_image(p, size) for p in folder.paths]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DatasetError(f"Images in {root}/{split} have different sizes {sorted(shapes)[:3]}…; pass size= to resize them.")
    return np.stack(images), folder.labels, folder.class_names
