import math

import pytest

from transfer_course.data import PATCH_CLASSES, make_photo_patches, scan_image_folder
from transfer_course.training import EarlyStopper, History, check_fit_args, fingerprint, lr_factor


def test_history_records_and_combines_phases():
    first, second = History(), History()
    for i in range(3):
        first.append({"loss": 1.0 / (i + 1), "val_accuracy": 0.5 + 0.1 * i})
    second.append({"loss": 0.2, "val_accuracy": 0.9})
    both = first + second
    assert len(both) == 4 and both["val_accuracy"][-1] == 0.9 and both.best("loss") == 0.2
    assert History.from_dict(both.to_dict())["loss"] == both["loss"]
    with pytest.raises(KeyError, match="val_loss"):
        both["val_loss"]


def test_early_stopper_waits_patience_epochs():
    stopper = EarlyStopper("val_loss", patience=2)
    decisions = [stopper.update(e, {"val_loss": v}) for e, v in enumerate([1.0, 0.8, 0.9, 0.85, 0.7])]
    assert decisions == [(True, False), (True, False), (False, False), (False, True), (True, False)]
    assert EarlyStopper("val_accuracy", 1).update(0, {"val_accuracy": 0.5}) == (True, False)
    with pytest.raises(ValueError, match="Pass validation data"):
        EarlyStopper("val_loss").update(0, {"loss": 1.0})


def test_schedules():
    assert [lr_factor(s, 10, "constant") for s in (0, 9)] == [1.0, 1.0]
    assert lr_factor(0, 10, "cosine") == 1.0 and lr_factor(10, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    warm = [lr_factor(s, 12, "warmup_cosine", warmup_steps=2) for s in range(12)]
    assert warm[:2] == [0.5, 1.0] and warm[2] == 1.0 and warm[-1] < 0.05


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0, "lr": 1e-3}, "epochs"), ({"epochs": 1, "lr": 0}, "lr must be a positive"),
    ({"epochs": 1, "lr": math.nan}, "lr must be"), ({"epochs": 1, "lr": 1e-3, "backbone_lr": 0}, "backbone_lr"),
    ({"epochs": 1, "lr": 1e-3, "clip_grad_norm": -1}, "clip_grad_norm"),
    ({"epochs": 1, "lr": 1e-3, "num_train": 0}, "training data is empty")])
def test_fit_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_fit_args(**kwargs)


def test_fingerprint_tells_models_apart():
    a = fingerprint([("w", (3, 4)), ("b", (4,))], ["x", "y"])
    assert a == fingerprint([("w", (3, 4)), ("b", (4,))], ["x", "y"])
    assert a != fingerprint([("w", (3, 5)), ("b", (4,))], ["x", "y"]) != fingerprint([("w", (3, 4)), ("b", (4,))], ["x", "z"])


def test_photo_patches_tree(cache_home):
    root = make_photo_patches(size=48, per_class=3, val_per_class=2, seed=1)
    train, val, test = (scan_image_folder(root, s) for s in ("train", "val", "test"))
    assert train.class_names == tuple(sorted(PATCH_CLASSES)) and len(train) == 30 and len(val) == len(test) == 20
    assert make_photo_patches(size=48, per_class=3, val_per_class=2, seed=1) == root, "cached"
    with pytest.raises(ValueError, match="photo class"):
        make_photo_patches(classes=("cat", "dragon"), root=cache_home / "x")
