import json

import numpy as np
import pytest

import transfer_course.tensorflow as T
from helpers import blobs, check_training, write_image
from transfer_course.training import CheckpointMismatchError


def test_training_api(tmp_path):
    check_training(T, tmp_path, T.create_model)


def _head(hidden=64):
    T.seed_everything(0)
    return T.create_model(num_classes=3, hidden_units=hidden, dropout=0.3).head


def test_interrupted_training_resumes_without_losing_a_completed_step(tmp_path):
    x, y = blobs(n_per_class=20, seed=1)
    ckpt = tmp_path / "run"
    seen = {}

    def interrupt(epoch, logs):
        seen[epoch] = [w.copy() for w in model.get_weights()]
        if epoch + 1 == 2:
            raise KeyboardInterrupt

    model = _head()
    with pytest.raises(KeyboardInterrupt):
        T.fit(model, (x, y), epochs=4, lr=1e-3, batch_size=8, checkpoint=ckpt, progress=False, on_epoch_end=interrupt)
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2
    steps_done = int(model.optimizer.iterations.numpy())

    resumed = _head()
    first_weights = {}

    def record(epoch, logs):
        first_weights.setdefault("epoch", epoch)

    history = T.fit(resumed, (x, y), epochs=4, lr=1e-3, batch_size=8, checkpoint=ckpt, progress=False, on_epoch_end=record)
    assert first_weights["epoch"] == 2, "resumes at the third epoch"
    assert len(history) == 4 and int(resumed.optimizer.iterations.numpy()) == steps_done * 2
    # The restored state is exactly the state after the last completed epoch.
    restored = _head()
    T.fit(restored, (x, y), epochs=2, lr=1e-3, batch_size=8, checkpoint=ckpt, progress=False)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["epoch"] == 4
    with pytest.raises(CheckpointMismatchError, match="different model"):
        T.fit(_head(hidden=32), (x, y), epochs=4, checkpoint=ckpt, progress=False)


def test_resume_restores_weights_and_optimizer_exactly(tmp_path):
    x, y = blobs(n_per_class=20, seed=1)
    model = _head()
    T.fit(model, (x, y), epochs=2, lr=1e-3, batch_size=8, checkpoint=tmp_path / "c", progress=False)
    fresh = _head()
    history = T.fit(fresh, (x, y), epochs=2, lr=1e-3, batch_size=8, checkpoint=tmp_path / "c", progress=False)
    assert len(history) == 2, "a finished run is restored, not repeated"
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_frozen_weights_do_not_move_and_backbone_lr_is_smaller():
    model = T.create_model(num_classes=3, dropout=0.0)  # no random masks: both steps see the same gradient
    T.freeze(model.backbone)
    images = np.random.default_rng(0).normal(size=(6, 32, 32, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    before = [w.copy() for w in model.backbone.get_weights()]
    T.fit(model, (images, labels), epochs=1, lr=1e-2, progress=False, batch_size=6)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.backbone.get_weights())), \
        "a frozen backbone (BatchNorm statistics included) must not change"

    T.unfreeze(model.backbone, top=1)
    snapshot = model.get_weights()
    kernel = model.backbone.get_layer("conv_head").kernel
    start = np.asarray(kernel).copy()
    steps = []
    for backbone_lr in (1e-1, 1e-3):  # one plain SGD step from the same weights with the same batch
        model.set_weights(snapshot)
        T.fit(model, (images, labels), epochs=1, lr=1e-1, backbone_lr=backbone_lr, optimizer="sgd", progress=False,
              batch_size=6, seed=0)
        steps.append(np.abs(np.asarray(kernel) - start).max())
    assert steps[1] > 0 and steps[0] / steps[1] == pytest.approx(100, rel=0.03)


def _top_and_head(head=True):
    """Not a TransferModel: any model with `backbone` and `head` parts (lesson 06's top_with_head is one)."""
    import keras
    backbone = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu")])
    last = keras.layers.Dense(3)
    inputs = keras.Input((16,))
    model = keras.Model(inputs, last(backbone(inputs)))
    model.backbone = backbone
    if head:
        model.head = last
    return model


def test_backbone_lr_works_on_any_model_with_a_backbone_and_a_head():
    import keras
    x, y = blobs(n_per_class=4, dim=16, seed=0)
    model = _top_and_head()
    snapshot = model.get_weights()
    kernel, head_kernel = model.backbone.layers[0].kernel, model.head.kernel
    start, head_start = np.asarray(kernel).copy(), np.asarray(head_kernel).copy()
    steps = {}
    for backbone_lr in (1e-1, 1e-3):  # one plain SGD step from the same weights with the same batch
        model.set_weights(snapshot)
        T.fit(model, (x, y), epochs=1, lr=1e-1, backbone_lr=backbone_lr, optimizer="sgd", progress=False,
              batch_size=len(y), seed=0)
        steps[backbone_lr] = np.abs(np.asarray(kernel) - start).max()
        assert np.abs(np.asarray(head_kernel) - head_start).max() > 0
    assert steps[1e-3] > 0 and steps[1e-1] / steps[1e-3] == pytest.approx(100, rel=0.03)
    with pytest.raises(ValueError, match="this Functional has no `head`. Give it both, or train with lr alone"):
        T.fit(_top_and_head(head=False), (x, y), epochs=1, backbone_lr=1e-4, progress=False)
    with pytest.raises(ValueError, match="this Sequential has no `backbone` and no `head`"):
        T.fit(keras.Sequential([keras.Input((16,)), keras.layers.Dense(3)]), (x, y), epochs=1, backbone_lr=1e-4,
              progress=False)


def test_image_pipeline_feature_cache_and_save_reload(image_tree, tmp_path):
    train = T.image_folder_loader(image_tree, "train", image_size=32, batch_size=4, shuffle=False)
    augmented = T.image_folder_loader(image_tree, "train", image_size=32, batch_size=4, shuffle=False, augment=True)
    x0, _ = next(iter(augmented))
    x1, _ = next(iter(train))
    assert x0.shape == (4, 32, 32, 3) and not np.allclose(x0, x1), "augmentation changes the images"
    model = T.create_model(num_classes=3)
    feats, labels = T.cache_features(model, train, path=tmp_path / "f.npz", progress=False)
    assert feats.shape == (12, 1280) and labels.tolist() == train.folder.labels.tolist()
    direct = T.extract_features(model, np.concatenate([np.asarray(x) for x, _ in train]))
    assert np.allclose(feats, direct, atol=1e-5)
    assert np.array_equal(T.cache_features(model, train, path=tmp_path / "f.npz")[0], feats)
    T.fit(model, train, epochs=1, progress=False, clip_grad_norm=1.0)
    path = T.save_model(model, tmp_path / "m.keras")
    again = T.load_model(path)
    assert np.allclose(T.predict(model, train), T.predict(again, train), atol=1e-6)
    with pytest.raises(ValueError, match="outside 0..1"):
        T.fit(T.create_model(num_classes=2), train, epochs=1, progress=False)
    with pytest.raises(FileNotFoundError, match="save_model"):
        T.load_model(tmp_path / "missing.keras")


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


def test_non_finite_inputs_are_caught():
    from helpers import check_non_finite_inputs

    check_non_finite_inputs(T, lambda x, y: T.array_loader(x, y, batch_size=4))


def test_feature_cache_is_keyed_on_content(tmp_path):
    from helpers import check_feature_cache_keyed_on_content

    check_feature_cache_keyed_on_content(T, tmp_path)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    """Same data order after resuming (the shuffled stream skips the batches already used): the same weights."""
    x, y = blobs(n_per_class=20, seed=1)
    whole = _head()
    T.fit(whole, (x, y), epochs=4, lr=1e-3, batch_size=8, progress=False, seed=3)

    def interrupt(epoch, logs):
        if epoch + 1 == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.fit(_head(), (x, y), epochs=4, lr=1e-3, batch_size=8, checkpoint=tmp_path / "c", progress=False, seed=3,
              on_epoch_end=interrupt)
    resumed = _head()
    T.fit(resumed, (x, y), epochs=4, lr=1e-3, batch_size=8, checkpoint=tmp_path / "c", progress=False, seed=3)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_assigning_a_new_head_is_refused():
    import keras

    model = T.create_model(num_classes=3)
    with pytest.raises(AttributeError, match=r"does not change a Keras model.*replace_head\(model, head=new_head\)"):
        model.head = keras.Sequential([keras.Input((1280,)), keras.layers.Dense(5)])


def test_fit_leaves_no_compiled_graphs_behind():
    """fit builds the optimizer's moments eagerly and lets go of its compiled steps when it returns.

    Moments created inside the first traced step are each guarded by graph branches that TensorFlow keeps for the
    life of the process (about 600 for Lite0); the compiled steps hold their graphs as long as the model lives.
    """
    import gc

    import keras
    from tensorflow.python.eager import context

    x, y = blobs(n_per_class=10, seed=0)
    model = keras.Sequential([keras.Input((x.shape[1],)), *[keras.layers.Dense(8, activation="relu") for _ in range(10)],
                              keras.layers.Dense(3)])
    before = set(context.context().list_function_names())
    first = T.fit(model, (x, y), (x, y), epochs=2, lr=1e-2, batch_size=8, progress=False)
    gc.collect()
    assert model.train_function is None and model.test_function is None
    # eager ops register one wrapper each on first use, once per process; graphs are what a fit adds
    added = {n for n in set(context.context().list_function_names()) - before if not n.startswith("__wrapped__")}
    assert len(added) < len(model.trainable_weights) / 2, sorted(added)[:10]  # 22 variables, 88 branches before
    again = T.fit(model, (x, y), (x, y), epochs=1, lr=1e-2, batch_size=8, progress=False)  # compiles afresh
    assert len(again) == 1 and np.isfinite(again["val_loss"][0]) and len(first) == 2
