"""Framework-neutral data: embedded datasets, image folders, verified downloads."""
from .download import extract, fetch, sha256_of
from .embedded import (
    EMBEDDED_DATASETS, PATCH_CLASSES, SAMPLE_PHOTOS, make_dataset, make_photo_patches, photo, split_tiles, sample_photos,
)
from .folder import (
    IMAGE_EXTENSIONS, ImageFolder, ensure_rgb, load_image, load_split, scan_image_folder, to_rgb, verify_images,
)
from .remote import REMOTE_DATASETS, download_dataset, prepare_dataset, read_idx

__all__ = [
    "extract", "fetch", "sha256_of",
    "EMBEDDED_DATASETS", "PATCH_CLASSES", "SAMPLE_PHOTOS", "make_dataset", "make_photo_patches", "photo", "split_tiles",
    "sample_photos",
    "IMAGE_EXTENSIONS", "ImageFolder", "ensure_rgb", "load_image", "load_split", "scan_image_folder", "to_rgb",
    "verify_images",
    "REMOTE_DATASETS", "download_dataset", "prepare_dataset", "read_idx",
]
