import pytest
import tensorflow as tf

from transfer_course.errors import ImageDecodeError
from transfer_course.tensorflow import image_folder_loader


def test_dataset_batches_mixed_image_modes(image_tree):
    ds = image_folder_loader(image_tree, "train", image_size=32, batch_size=5)
    batches = list(ds)
    x, y = batches[0]
    assert tuple(x.shape) == (5, 32, 32, 3) and x.dtype == tf.float32
    assert sum(len(b[1]) for b in batches) == 12
    assert ds.folder.class_names == ("ant", "bee", "cow")
    assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0


def test_val_is_not_shuffled_and_shuffle_is_seeded(image_tree):
    val = [y.numpy().tolist() for _, y in image_folder_loader(image_tree, "val", image_size=16, batch_size=6)]
    assert val == [[0, 0, 1, 1, 2, 2]]
    first = [y.numpy().tolist() for _, y in image_folder_loader(image_tree, "train", image_size=16, batch_size=12, seed=1)]
    again = [y.numpy().tolist() for _, y in image_folder_loader(image_tree, "train", image_size=16, batch_size=12, seed=1)]
    assert first == again


def test_a_broken_file_is_reported_before_training(image_tree):
    (image_tree / "train" / "bee" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        image_folder_loader(image_tree, "train", image_size=16)
