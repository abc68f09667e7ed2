import socket

import numpy as np
import pytest
import torch

import transfer_course.torch as T
from helpers import check_model_outputs
from transfer_course._torchfile import load_state_dict
from transfer_course.errors import WeightsUnavailableError
from transfer_course.models import efficientnet_lite0_weights_path, lite0_parameter_names
from transfer_course.torch.models import load_state_dict_from_url


def test_our_parameter_names_are_timms():
    import timm

    keys = [k for k in timm.create_model("tf_efficientnet_lite0").state_dict() if not k.endswith("num_batches_tracked")]
    assert keys == lite0_parameter_names()


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_torch_free_reader_matches_torch_load(tmp_path, layout):
    path = efficientnet_lite0_weights_path()
    reference = torch.load(path, map_location="cpu", weights_only=True)
    if layout == "zip":
        path = tmp_path / "resaved.pt"
        torch.save(reference, path)
    ours = load_state_dict(path)
    assert list(ours) == list(reference)
    assert all(np.array_equal(ours[k], reference[k].numpy()) for k in reference)


def test_new_head(lite0):
    model = T.create_model(num_classes=5)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 5)
    # the backbone is the pretrained one; only the head is new
    assert torch.equal(model.backbone.conv_stem.weight, lite0.backbone.conv_stem.weight)


@pytest.mark.parametrize("bad", [1, 0, -3, "3", 2.5])
def test_num_classes_must_be_at_least_two(bad):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        T.create_model(num_classes=bad)


def test_class_names_must_match():
    with pytest.raises(ValueError, match="Got 2 class names for num_classes=3"):
        T.create_model(num_classes=3, class_names=["a", "b"])


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="Valid choices: efficientnet_lite0, mobilenet_v3_large, mobilenet_v3_small, resnet18, resnet50, vgg16"):
        T.create_model("efficientnet_b7")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v3_large", "mobilenet_v3_small", "vgg16"])
def test_online_architectures_split_into_backbone_and_head(name):
    model = T.create_model(name, pretrained=False, num_classes=3).eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 64, 64))
        assert features.shape == (1, model.spec.feature_dim)
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    imagenet = T.create_model(name, pretrained=False)
    assert imagenet.head.out_features == 1000 and len(imagenet.class_names) == 1000


def test_online_weights_offline_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        T.create_model("resnet18")
    message = str(err.value)
    assert "https://download.pytorch.org/models/resnet18" in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "efficientnet_lite0" in message


def test_unreachable_weights_server(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsUnavailableError, match="Could not download"):
        load_state_dict_from_url(f"http://127.0.0.1:{port}/resnet18-f37072fd.pth", timeout=2)


def test_frozen_backbone_does_not_move_in_a_training_step():
    torch.manual_seed(0)
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head[1].weight.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    T.train_mode(model)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = model.backbone.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved == [], f"frozen weights or BatchNorm statistics moved: {moved[:5]}"
    assert not torch.equal(head_before, model.head[1].weight), "the head must train"
    assert T.count_parameters(model)[1] == 1280 * 3 + 3


def test_plain_train_mode_would_move_batchnorm_statistics():
    """Why train_mode exists: model.train() alone updates a frozen backbone's BatchNorm running stats."""
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    before = model.backbone.bn1.running_mean.clone()
    model.train()
    model(torch.randn(4, 3, 64, 64))
    assert not torch.equal(before, model.backbone.bn1.running_mean)


def test_unfreeze_restores_training():
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    T.unfreeze(model.backbone)
    total, trainable = T.count_parameters(model)
    assert total == trainable


def test_features_predictions_maps_and_grayscale(lite0):
    check_model_outputs(T, lite0)


def test_bundled_imagenet_names_are_torchvisions():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from transfer_course.imagenet import imagenet_classes

    assert list(imagenet_classes()) == list(_IMAGENET_CATEGORIES)
