import numpy as np
import pytest

from helpers import write_image
from transfer_course.data import (
    load_image, load_split, make_dataset, make_photo_crops, photo, scan_image_folder, verify_images,
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


def test_photo_crops_are_deterministic_and_cached(cache_home):
    a = make_photo_crops(size=32, per_class=2, seed=7)
    b = make_photo_crops(size=32, per_class=2, seed=7, root=cache_home / "again")
    c = make_photo_crops(size=32, per_class=2, seed=8, root=cache_home / "other")
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 6 * (2 + 2)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)
    stamp = (a / files[0]).stat().st_mtime_ns
    assert make_dataset("photo_crops", size=32, per_class=2, seed=7) == a
    assert (a / files[0]).stat().st_mtime_ns == stamp, "a cached dataset must be reused, not rewritten"


def test_photo_crops_bad_arguments(cache_home):
    with pytest.raises(ValueError, match="per_class must be at least 2"):
        make_photo_crops(per_class=1)
    with pytest.raises(ValueError, match="Unknown embedded dataset 'mnist'. Valid choices: photo_crops"):
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
