import numpy as np
import pytest
import torch

from transfer_course.errors import ImageDecodeError
from transfer_course.torch import image_folder_loader


def test_loader_batches_mixed_image_modes(image_tree):
    loader = image_folder_loader(image_tree, "train", image_size=32, batch_size=5)
    batches = list(loader)
    x, y = batches[0]
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert sum(len(b[1]) for b in batches) == 12
    assert loader.dataset.folder.class_names == ("ant", "bee", "cow")
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_val_is_not_shuffled_and_shuffle_is_seeded(image_tree):
    val = [y.tolist() for _, y in image_folder_loader(image_tree, "val", image_size=16, batch_size=6)]
    assert val == [[0, 0, 1, 1, 2, 2]]
    first = [y.tolist() for _, y in image_folder_loader(image_tree, "train", image_size=16, batch_size=12, seed=1)]
    again = [y.tolist() for _, y in image_folder_loader(image_tree, "train", image_size=16, batch_size=12, seed=1)]
    assert first == again


def test_a_broken_file_is_reported_before_training(image_tree):
    (image_tree / "train" / "bee" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        image_folder_loader(image_tree, "train", image_size=16)


@pytest.mark.parametrize("model", ["efficientnet_lite0", "resnet50"])
def test_loader_gives_exactly_what_preprocess_gives(image_tree, model):
    """The dataset keeps resized uint8 pixels and normalises each image on access: the numbers must not change."""
    from transfer_course.data import load_split
    from transfer_course.models import get_spec, preprocess

    loader = image_folder_loader(image_tree, "val", model=model, image_size=24, batch_size=4)
    for _ in range(2):  # the second pass is served from memory
        x = torch.cat([b for b, _ in loader]).numpy().transpose(0, 2, 3, 1)
        images, _, _ = load_split(image_tree, "val")
        np.testing.assert_array_equal(x, preprocess(images, get_spec(model, "torch"), size=24))
    kept = list(loader.dataset._memory.values())
    assert len(kept) == 6 and all(p.dtype == np.uint8 and p.shape == (24, 24, 3) for p in kept)  # a quarter of float32
