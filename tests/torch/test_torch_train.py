import numpy as np
import pytest
import torch

import transfer_course.torch as T
from helpers import blobs, check_training, write_image
from transfer_course.training import CheckpointMismatchError


def test_training_api(tmp_path):
    check_training(T, tmp_path, T.create_model)


def _run(checkpoint=None, epochs=4, stop_after=None, hidden=64):
    T.seed_everything(0)
    model = T.create_model(num_classes=3, hidden_units=hidden, dropout=0.3).head
    x, y = blobs(n_per_class=20, seed=1)
    loader = T.array_loader(x, y, batch_size=8, seed=0)

    def interrupt(epoch, logs):
        if stop_after is not None and epoch + 1 == stop_after:
            raise KeyboardInterrupt

    history = T.fit(model, loader, epochs=epochs, lr=1e-3, schedule="cosine", checkpoint=checkpoint,
                    progress=False, on_epoch_end=interrupt)
    return model, history


def test_interrupted_training_resumes_where_an_uninterrupted_run_ends(tmp_path):
    reference, ref_history = _run()
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        _run(ckpt, stop_after=2)
    resumed, history = _run(ckpt)  # a fresh process would rebuild the model the same way
    assert len(history) == 4 and history["loss"] == pytest.approx(ref_history["loss"], abs=0)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    # a finished run is not repeated
    again, h = _run(ckpt)
    assert len(h) == 4 and all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), resumed.state_dict().values()))
    with pytest.raises(CheckpointMismatchError, match="different model"):
        _run(ckpt, hidden=32)


def test_frozen_weights_do_not_move_and_backbone_lr_is_smaller(lite0, tmp_path):
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    images = np.random.default_rng(0).normal(size=(6, 3, 32, 32)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    T.fit(model, (images, labels), epochs=1, lr=1e-2, progress=False, batch_size=6)
    after = model.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all(k.startswith("head.") for k in moved), "BatchNorm statistics of a frozen backbone must not drift"

    T.unfreeze(model.backbone, top=1)
    groups = T.train._param_groups(model, 1e-3, 1e-5)
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    for backbone_lr in (1e-1, 1e-3):  # one plain SGD step from the same weights with the same batch
        model.load_state_dict(snapshot)
        T.seed_everything(0)
        T.fit(model, (images, labels), epochs=1, lr=1e-1, backbone_lr=backbone_lr, optimizer="sgd", progress=False,
              batch_size=6)
        steps.append((model.backbone.conv_head.weight - snapshot["backbone.conv_head.weight"]).abs().max().item())
    assert steps[1] > 0 and steps[0] / steps[1] == pytest.approx(100, rel=0.03)


class _TopAndHead(torch.nn.Module):
    """Not a TransferModel: any module with `backbone` and `head` parts (lesson 06's TopWithHead is one)."""

    def __init__(self, head=True):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU())
        if head:
            self.head = torch.nn.Linear(8, 3)
        else:
            self.out = torch.nn.Linear(8, 3)

    def forward(self, x):
        return (self.head if hasattr(self, "head") else self.out)(self.backbone(x))


def test_backbone_lr_works_on_any_model_with_a_backbone_and_a_head():
    x, y = blobs(n_per_class=4, dim=16, seed=0)
    model = _TopAndHead()
    groups = T.train._param_groups(model, 1e-3, 1e-5)
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    assert groups[0]["params"] == list(model.backbone.parameters())
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    steps = {}
    for backbone_lr in (1e-1, 1e-3):  # one plain SGD step from the same weights with the same batch
        model.load_state_dict(snapshot)
        T.fit(model, (x, y), epochs=1, lr=1e-1, backbone_lr=backbone_lr, optimizer="sgd", progress=False,
              batch_size=len(y))
        steps[backbone_lr] = (model.backbone[0].weight - snapshot["backbone.0.weight"]).abs().max().item()
        head_step = (model.head.weight - snapshot["head.weight"]).abs().max().item()
        assert head_step > 0
    assert steps[1e-3] > 0 and steps[1e-1] / steps[1e-3] == pytest.approx(100, rel=0.03)
    with pytest.raises(ValueError, match="this _TopAndHead has no `head`. Give it both, or train with lr alone"):
        T.fit(_TopAndHead(head=False), (x, y), epochs=1, backbone_lr=1e-4, progress=False)
    with pytest.raises(ValueError, match="this Sequential has no `backbone` and no `head`"):
        T.fit(torch.nn.Sequential(torch.nn.Linear(16, 3)), (x, y), epochs=1, backbone_lr=1e-4, progress=False)


def test_image_pipeline_feature_cache_and_save_reload(image_tree, tmp_path):
    train = T.image_folder_loader(image_tree, "train", image_size=32, batch_size=4, shuffle=False)
    augmented = T.image_folder_loader(image_tree, "train", image_size=32, batch_size=4, augment=True)
    x0, _ = next(iter(augmented))
    x1, _ = next(iter(T.image_folder_loader(image_tree, "train", image_size=32, batch_size=4, shuffle=True)))
    assert x0.shape == (4, 3, 32, 32) and not torch.equal(x0, x1), "augmentation changes the images"
    model = T.create_model(num_classes=3)
    feats, labels = T.cache_features(model, train, path=tmp_path / "f.npz", progress=False)
    assert feats.shape == (12, 1280) and labels.tolist() == train.dataset.folder.labels.tolist()
    direct = T.extract_features(model, torch.cat([x for x, _ in train]).permute(0, 2, 3, 1).numpy())
    assert np.allclose(feats, direct, atol=1e-5)
    assert np.array_equal(T.cache_features(model, train, path=tmp_path / "f.npz")[0], feats)
    T.fit(model, train, epochs=1, progress=False, channels_last=True, clip_grad_norm=1.0)
    path = T.save_model(model, tmp_path / "m.pt")
    again = T.load_model(path)
    assert np.allclose(T.predict(model, train), T.predict(again, train), atol=1e-6)
    with pytest.raises(ValueError, match="outside 0..1"):
        T.fit(T.create_model(num_classes=2), train, epochs=1, progress=False)
    with pytest.raises(FileNotFoundError, match="save_model"):
        T.load_model(tmp_path / "missing.pt")


def test_empty_training_split_is_refused(tmp_path):
    write_image(tmp_path / "d" / "val" / "a" / "0.png")
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    with pytest.raises(Exception, match="(?i)no images|empty"):
        T.fit(T.create_model(num_classes=2), T.image_folder_loader(tmp_path / "d", "train"), epochs=1, progress=False)


def test_fine_tune_runs_both_phases(image_tree):
    model = T.create_model(num_classes=3)
    train = T.image_folder_loader(image_tree, "train", image_size=32, batch_size=6, augment=True)
    history = T.fine_tune(model, train, frozen_epochs=1, epochs=1, top=2, progress=False)
    assert len(history) == 2 and history["lr"][1] == pytest.approx(1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_gpu(precision):
    x, y = blobs()
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    images = np.random.default_rng(0).normal(size=(8, 3, 64, 64)).astype(np.float32)
    h = T.fit(model, (images, np.arange(8) % 3), epochs=2, precision=precision, channels_last=True, progress=False)
    assert np.isfinite(h["loss"]).all()


def test_a_hand_made_head_of_the_wrong_size_is_named():
    model = T.create_model(num_classes=3)
    model.head = torch.nn.Linear(512, 3)
    with pytest.raises(ValueError, match="does not accept the backbone's 1280 features"):
        T.fit(model, (np.zeros((2, 3, 32, 32), np.float32), np.array([0, 1])), epochs=1, progress=False)


def test_non_finite_inputs_are_caught():
    from helpers import check_non_finite_inputs

    check_non_finite_inputs(T, lambda x, y: T.array_loader(x, y, batch_size=4))


def test_feature_cache_is_keyed_on_content(tmp_path):
    from helpers import check_feature_cache_keyed_on_content

    check_feature_cache_keyed_on_content(T, tmp_path)
