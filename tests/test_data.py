import json
import shutil

import numpy as np
import pytest

from helpers import write_image
from transfer_course.data import (
    load_image, load_split, make_dataset, make_photo_patches, split_tiles, PATCH_CLASSES, photo, scan_image_folder, verify_images,
)
from transfer_course.errors import DatasetError, ImageDecodeError


def test_scan_lists_classes_and_labels(image_tree):
    folder = scan_image_folder(image_tree, "train")
    assert folder.class_names == ("ant", "bee", "cow")
    assert len(folder) == 12 and folder.num_classes == 3
    assert np.bincount(folder.labels).tolist() == [4, 4, 4]


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist.*train/, val/"):
        scan_image_folder(tmp_path / "nope")


def test_missing_split_lists_what_is_there(image_tree):
    with pytest.raises(DatasetError, match=r"No 'test' folder .*found: \['train', 'val'\]"):
        scan_image_folder(image_tree, "test")


def test_single_class_is_refused(tmp_path):
    write_image(tmp_path / "d" / "train" / "only" / "a.png")
    with pytest.raises(DatasetError, match="at least 2"):
        scan_image_folder(tmp_path / "d")


def test_empty_class_folder(tmp_path):
    write_image(tmp_path / "d" / "train" / "a" / "1.png")
    (tmp_path / "d" / "train" / "b").mkdir()
    (tmp_path / "d" / "train" / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match=r"\['b'\].*hold no images"):
        scan_image_folder(tmp_path / "d")


def test_val_uses_train_class_order(image_tree, tmp_path):
    with pytest.raises(DatasetError, match="lacks class folders"):
        scan_image_folder(image_tree, "val", class_names=("ant", "bee", "cow", "dog"))


@pytest.mark.parametrize("change,message", [
    (lambda val: write_image(val / "dog" / "1.png"), r"extra \['dog'\]"),
    (lambda val: shutil.rmtree(val / "bee"), r"missing \['bee'\]"),
    (lambda val: (val / "cow").rename(val / "cows"), r"extra \['cows'\], missing \['cow'\]"),
])
def test_val_classes_must_match_train(image_tree, change, message):
    """Labels are positions in the class list: a val folder with other classes would be labelled wrongly, silently."""
    change(image_tree / "val")
    with pytest.raises(DatasetError, match=message + ".*same class folders"):
        scan_image_folder(image_tree, "val")


def test_classes_outside_the_given_list_are_not_dropped_silently(image_tree):
    with pytest.raises(DatasetError, match=r"\['cow'\] that are not among the model's classes"):
        scan_image_folder(image_tree, "val", class_names=("ant", "bee"))


def test_file_that_is_not_an_image(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is text, not a JPEG")
    with pytest.raises(ImageDecodeError) as err:
        load_image(bad)
    assert str(bad) in str(err.value) and "Remove it" in str(err.value)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "RGB"])
def test_any_mode_becomes_rgb(tmp_path, mode):
    path = write_image(tmp_path / f"x_{mode}.png", mode, size=(20, 10))
    image = load_image(path)
    assert image.shape == (10, 20, 3) and image.dtype == np.uint8
    assert load_image(path, size=16).shape == (16, 16, 3)


def test_transparent_pixels_become_white(tmp_path):
    path = write_image(tmp_path / "clear.png", "RGBA", color=(10, 200, 30, 0))
    assert (load_image(path) == 255).all()


def test_load_split(image_tree):
    x, y, names = load_split(image_tree, "val", size=24)
    assert x.shape == (6, 24, 24, 3) and y.tolist() == [0, 0, 1, 1, 2, 2] and names == ("ant", "bee", "cow")


def test_photo_patches_are_deterministic_and_cached(cache_home):
    a = make_photo_patches(size=32, per_class=2, val_per_class=1, seed=7)
    b = make_photo_patches(size=32, per_class=2, val_per_class=1, seed=7, root=cache_home / "again")
    c = make_photo_patches(size=32, per_class=2, val_per_class=1, seed=8, root=cache_home / "other")
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == len(PATCH_CLASSES) * (2 + 1 + 1)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)
    stamp = (a / files[0]).stat().st_mtime_ns
    assert make_dataset("photo_patches", size=32, per_class=2, val_per_class=1, seed=7) == a
    assert (a / files[0]).stat().st_mtime_ns == stamp, "a cached dataset must be reused, not rewritten"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_photo_patch_splits_share_no_pixel(cache_home, seed):
    """Every patch's square, in its photo's coordinates, lies inside tiles of its own split only: no pixel of a
    photo is seen by two splits."""
    root = make_photo_patches(size=24, per_class=12, val_per_class=6, test_per_class=6, seed=seed)
    boxes = json.loads((root / "boxes.json").read_text())
    assert len(boxes) == len(list(root.rglob("*.png"))) == len(PATCH_CLASSES) * 24
    for name in PATCH_CLASSES:
        shape = photo(name).shape[:2]
        owner = np.full(shape, "", dtype=object)
        for file, (top, left, side) in boxes.items():
            split, cls = file.split("/")[:2]
            if cls != name:
                continue
            assert side >= 8 and 0 <= top and top + side <= shape[0] and 0 <= left and left + side <= shape[1]
            region = owner[top:top + side, left:left + side]
            assert set(region.ravel()) <= {"", split}, f"{file} overlaps pixels of another split"
            region[...] = split
        assert {"train", "val", "test"} <= set(owner.ravel()), name


def test_split_tiles_cover_distinct_squares():
    tiles = split_tiles((300, 451), np.random.default_rng(0))
    allocated = [t for ts in tiles.values() for t in ts]
    assert len(allocated) == len(set(allocated)) == 4 * 6  # 75-px tiles: 4 rows, 6 columns
    assert len(tiles["val"]) == len(tiles["test"]) == 5 and len(tiles["train"]) == 14
    for top, left, side in allocated:
        assert side == 75 and top + side <= 300 and left + side <= 451


def test_photo_patches_bad_arguments(cache_home):
    with pytest.raises(ValueError, match="train patches per class must be a whole number >= 1; received 0"):
        make_photo_patches(per_class=0)
    with pytest.raises(ValueError, match="test patches per class .* received 2.5"):
        make_photo_patches(test_per_class=2.5)
    with pytest.raises(ValueError, match="size must be a whole number of pixels >= 8"):
        make_photo_patches(size=4)
    with pytest.raises(ValueError, match="at least 2 different classes"):
        make_photo_patches(classes=("cat", "cat"))
    with pytest.raises(ValueError, match="Unknown embedded dataset 'mnist'. Valid choices: photo_patches"):
        make_dataset("mnist")
    with pytest.raises(ValueError, match="Unknown sample photo 'dog'"):
        photo("dog")


def test_grayscale_sample_photo_is_rgb():
    assert photo("cameraman").shape[-1] == 3


def test_verify_images_lists_every_broken_file(image_tree):
    (image_tree / "train" / "bee" / "broken.jpg").write_bytes(b"not a jpeg")
    (image_tree / "train" / "cow" / "empty.png").write_bytes(b"")
    with pytest.raises(ImageDecodeError) as err:
        verify_images(scan_image_folder(image_tree, "train"))
    message = str(err.value)
    assert "2 file(s)" in message and "broken.jpg" in message and "empty.png" in message
    assert len(verify_images(scan_image_folder(image_tree, "val"))) == 6


def test_16_bit_images_are_scaled_not_saturated(tmp_path):
    from PIL import Image

    from transfer_course.data.folder import load_image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(image[..., 0], np.round(ramp / 257.0), atol=1)
    assert 100 < image.mean() < 155, "a full-range ramp stays mid-grey on average instead of turning white"
