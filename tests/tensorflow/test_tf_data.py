import numpy as np
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


@pytest.mark.parametrize("model", ["efficientnet_lite0", "resnet50"])  # inception and caffe normalisation
def test_loader_gives_exactly_what_preprocess_gives(image_tree, model):
    """The loader keeps resized uint8 pixels and normalises each batch: the numbers must not change."""
    from transfer_course.data import load_split
    from transfer_course.models import get_spec, preprocess

    ds = image_folder_loader(image_tree, "val", model=model, image_size=24, batch_size=4)
    x = np.concatenate([b.numpy() for b, _ in ds])
    images, _, _ = load_split(image_tree, "val")
    np.testing.assert_array_equal(x, preprocess(images, get_spec(model, "tensorflow"), size=24))


@pytest.mark.parametrize("norm", ["inception", "imagenet", "caffe"])
def test_batch_normaliser_matches_numpy_for_every_normalisation(norm):
    from transfer_course.models import normalize_pixels
    from transfer_course.tensorflow.data import _normalizer

    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 5, 7, 3), dtype=np.uint8)
    x, y = _normalizer(norm)(tf.constant(pixels), tf.constant([0, 1, 2]))
    np.testing.assert_array_equal(x.numpy(), normalize_pixels(pixels, norm))
    assert y.numpy().tolist() == [0, 1, 2]


def test_the_loader_cache_holds_uint8_pixels(image_tree, monkeypatch):
    """What the loader keeps in memory is a quarter of float32: it decodes and resizes to uint8 once."""
    import transfer_course.tensorflow.data as D

    seen = []
    real = D.prepare_pixels

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(D, "prepare_pixels", spy)
    ds = image_folder_loader(image_tree, "train", image_size=16, batch_size=4, shuffle=False)
    for _ in range(2):  # two epochs: the second is served from the cache
        assert [tuple(b.shape) for b, _ in ds] == [(4, 16, 16, 3)] * 3
    assert seen == [np.uint8] * 12  # each of the 12 files decoded once, as uint8
