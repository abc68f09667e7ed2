"""Helpers shared by the tests (no framework imports)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_image(path: Path, mode: str = "RGB", size=(40, 30), color=None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    data = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    if color is not None:
        data[...] = color
    Image.fromarray(data.squeeze(-1) if channels == 1 else data, mode).save(path)
    return path


def check_model_outputs(T, model) -> None:
    """Shared by both framework suites: features, probabilities, feature maps and the grayscale path,
    through the public names that ``transfer_course.torch`` and ``transfer_course.tensorflow`` share."""
    import pytest

    images = np.random.default_rng(0).integers(0, 256, size=(3, 50, 70, 3), dtype=np.uint8)
    assert T.extract_features(model, images).shape == (3, 1280)
    probs = T.predict_proba(model, images)
    assert probs.shape == (3, 1000) and np.allclose(probs.sum(1), 1, atol=1e-4)
    maps = T.feature_maps(model, images[0], stages=(0, 6))
    assert maps[0].shape == (112, 112, 16) and maps[6].shape == (7, 7, 320)
    with pytest.raises(ValueError, match="stages 0..6"):
        T.feature_maps(model, images[0], stages=(7,))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        T.to_tensor(np.zeros((3, 32, 32)))
    gray = np.random.default_rng(1).integers(0, 256, size=(60, 60), dtype=np.uint8)
    [from_gray] = T.classify_images(model, gray)
    [from_rgb] = T.classify_images(model, np.repeat(gray[..., None], 3, axis=-1))
    assert from_gray == from_rgb, "a grayscale image is converted to RGB, not rejected"


def reference_solution(notebook: str, exercise: str, **namespace):
    """The reference solution of ``exercise``, executed with the notebook's usual names."""
    from transfer_course.exercises import reference_source
    from transfer_course.imagenet import imagenet_classes

    namespace = {"np": np, "IMAGENET_CLASSES": imagenet_classes(), **namespace}
    exec(reference_source(notebook, exercise), namespace)
    return namespace[exercise]


def blobs(n_per_class: int = 30, classes: int = 3, dim: int = 1280, seed: int = 0):
    """Separable feature vectors: one Gaussian blob per class (a stand-in for cached features)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, size=(classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    x = (centers[y] + rng.normal(0, 0.5, size=(len(y), dim))).astype(np.float32)
    return x, y.astype(np.int64)


def check_training(T, tmp_path, lite0_factory) -> None:
    """Shared by both framework suites: the training API's behaviour and its errors, through the
    public names both sides share. ``lite0_factory()`` returns a fresh pretrained Lite0."""
    import pytest

    x, y = blobs()
    xv, yv = blobs(seed=0)[0][::3], blobs(seed=0)[1][::3]
    model = T.create_model(num_classes=3, hidden_units=None)
    head = model.head
    history = T.fit(head, (x, y), (xv, yv), epochs=6, lr=1e-2, progress=False)
    assert len(history) == 6 and {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(history.metrics)
    assert history["loss"][-1] < history["loss"][0]
    assert history.last("val_accuracy") >= 0.9
    report = T.evaluate(head, (xv, yv), class_names=["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(history.last("val_accuracy"), abs=1e-6)
    assert report["confusion_matrix"].sum() == len(yv) and set(report["per_class"]) == {"a", "b", "c"}
    assert T.predict(head, (xv, yv)).shape == (len(yv), 3)

    # cosine schedule: the logged learning rate falls to ~0 by the end
    h = T.fit(head, (x, y), epochs=3, lr=1e-3, schedule="cosine", progress=False, batch_size=30)
    assert h["lr"][0] < 1e-3 and h["lr"][-1] < 1e-6

    # early stopping stops once the monitored value stalls
    h = T.fit(head, (x, y), (xv, yv), epochs=50, lr=1e-2, early_stopping=2, monitor="val_loss", progress=False)
    assert len(h) < 50

    # bad input: clear errors before any work
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        T.fit(head, (x, y + 1), epochs=1, progress=False)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        T.fit(head, (x, y), epochs=1, lr=0, progress=False)
    with pytest.raises(ValueError, match="backbone_lr must be a positive number"):
        T.fit(model, (x, y), epochs=1, lr=1e-3, backbone_lr=-1e-4, progress=False)
    with pytest.raises(ValueError, match="training data is empty"):
        T.fit(head, (x[:0], y[:0]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        T.fit(head, (x, y), epochs=0, progress=False)
    with pytest.raises(ValueError, match="learning-rate schedule"):
        T.fit(head, (x, y), epochs=1, schedule="cyclic", progress=False)

    # the recipe on the real backbone
    lite0 = lite0_factory()
    blocks = T.backbone_blocks(lite0.backbone)
    assert len(blocks) == 18 and blocks[0][0] == "conv_stem" and blocks[-1][0] == "conv_head"
    with pytest.raises(ValueError, match="only 18"):
        T.unfreeze(lite0.backbone, top=19)
    with pytest.raises(ValueError, match="does not accept the backbone's features"):
        T.replace_head(lite0, head=T.make_head(512, 3, hidden_units=None))
    with pytest.raises(ValueError, match="outputs 4 scores but num_classes=3"):
        T.replace_head(lite0, num_classes=3, head=T.make_head(1280, 4))
    new = T.replace_head(lite0, class_names=["a", "b", "c"])
    assert new.class_names == ("a", "b", "c") and new.spec.name == "efficientnet_lite0"
    T.freeze(new.backbone)
    assert T.count_parameters(new)[1] == 1280 * 256 + 256 + 256 * 3 + 3, "frozen backbone: only the head trains"
    T.unfreeze(new.backbone, top=2)
    trainable = T.count_parameters(new)[1]
    T.unfreeze(new.backbone, top=2, train_bn=True)
    assert T.count_parameters(new)[1] > trainable, "BatchNorm stays frozen unless train_bn"
    T.unfreeze(new.backbone)
    assert T.count_parameters(new)[1] == T.count_parameters(new)[0]


def check_non_finite_inputs(T, loader_with_nan) -> None:
    """NaN inputs are refused before training (arrays) or stop training at the first epoch (a loader or dataset),
    with a message naming the cause, instead of training every weight into NaN."""
    import pytest

    x, y = blobs(n_per_class=4, classes=2, dim=8)
    x[3, 2] = np.nan
    head = T.make_head(8, 2, hidden_units=None, dropout=0.0)
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 of 8 samples \(the first is sample 3\)"):
        T.fit(head, (x, y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="validation inputs hold NaN"):
        T.fit(head, (np.nan_to_num(x), y), (x, y), epochs=1, progress=False)
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1.*NaN or infinite values in the inputs"):
        T.fit(head, loader_with_nan(x, y), epochs=2, progress=False)


def run_solutions(notebooks, out: Path, seed: int | None = None, timeout: int = 900, together: int = 2) -> dict:
    """Execute ``solutions/<name>.ipynb`` for each name in the quick profile, ``together`` kernels at a time (one
    thread each), and return ``{name: results}``: the ``results`` dict each notebook reports (see execute_lesson.py)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRANSFER_COURSE_PROFILE": "quick", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs, names = {}, list(notebooks)
    for i in range(0, len(names), together):  # by default two kernels at a time, one per core
        procs = {}
        for name in names[i:i + together]:
            cmd = [sys.executable, str(ROOT / "tests" / "execute_lesson.py"), str(ROOT / "solutions" / f"{name}.ipynb"),
                   str(out / f"{name}.json")] + ([] if seed is None else [str(seed)])
            procs[name] = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"{name} failed:\n{err.decode()[-3000:]}"
            report = json.loads((out / f"{name}.json").read_text())
            assert not report["native_log_lines"], f"{name} shows C++ log lines in its outputs: {report['native_log_lines']}"
            runs[name] = report["results"]
    return runs


def check_feature_cache_keyed_on_content(T, tmp_path) -> None:
    """cache_features returns saved features only for the same backbone weights and the same data content."""
    root = tmp_path / "imgs"
    for c, cls in enumerate(("ant", "bee")):
        for i in range(3):
            write_image(root / "train" / cls / f"{i}.png", color=(40 * i + 10, 90 * c + 20, 120))
    model = T.create_model(num_classes=2)
    loader = lambda: T.image_folder_loader(root, "train", image_size=32, batch_size=4, shuffle=False)  # noqa: E731
    path = tmp_path / "features"  # no .npz suffix: written and read at exactly this path
    feats, labels = T.cache_features(model, loader(), path=path, progress=False)
    assert path.is_file() and not (tmp_path / "features.npz").exists()
    # read back (not recomputed): a cache whose arrays we mark is returned as it is
    with np.load(path) as saved:
        key = str(saved["key"])
    from transfer_course.training import write_feature_cache

    write_feature_cache(path, key, feats + 1.0, labels)
    assert np.allclose(T.cache_features(model, loader(), path=path, progress=False)[0], feats + 1.0)
    # an image overwritten in place (same path, same count) is recomputed
    write_image(root / "train" / "ant" / "0.png", color=(250, 250, 0))
    again, _ = T.cache_features(model, loader(), path=path, progress=False)
    assert not np.allclose(again[0], feats[0]) and np.allclose(again[1:], feats[1:], atol=1e-5)
    # a file moved to another class (new labels, same files) is recomputed with the new labels
    (root / "train" / "ant" / "2.png").rename(root / "train" / "bee" / "9.png")
    _, relabelled = T.cache_features(model, loader(), path=path, progress=False)
    assert relabelled.tolist() == [0, 0, 1, 1, 1, 1]
    # in-memory arrays: new arrays of the same length are recomputed
    rng = np.random.default_rng(0)
    layout = (2, 3, 32, 32) if T.FRAMEWORK == "torch" else (2, 32, 32, 3)
    a, b = rng.normal(size=layout).astype(np.float32), rng.normal(size=layout).astype(np.float32)
    fa, _ = T.cache_features(model, (a, np.array([0, 1])), path=tmp_path / "arr.npz", progress=False)
    fb, _ = T.cache_features(model, (b, np.array([0, 1])), path=tmp_path / "arr.npz", progress=False)
    assert not np.allclose(fa, fb)
    # other backbone statistics (e.g. BatchNorm re-estimated) are recomputed too
    before, _ = T.cache_features(model, (b, np.array([0, 1])), path=tmp_path / "arr.npz", progress=False)
    if T.FRAMEWORK == "torch":
        bn = next(m for m in model.backbone.modules() if m.__class__.__name__.startswith("BatchNorm"))
        bn.running_mean += 0.5
    else:
        bn = next(layer for layer in model.backbone._flatten_layers() if layer.__class__.__name__ == "BatchNormalization")
        bn.moving_mean.assign(bn.moving_mean + 0.5)
    after, _ = T.cache_features(model, (b, np.array([0, 1])), path=tmp_path / "arr.npz", progress=False)
    assert not np.allclose(before, after)


def notebook_cell(notebook: str, *needles: str) -> str:
    """The source of the one code cell of ``solutions/<notebook>.ipynb`` that contains every string in ``needles``."""
    import nbformat

    nb = nbformat.read(ROOT / "solutions" / f"{notebook}.ipynb", as_version=4)
    found = [c.source for c in nb.cells if c.cell_type == "code" and all(n in c.source for n in needles)]
    assert len(found) == 1, f"{notebook}: {len(found)} code cells contain {needles}, expected exactly one"
    return found[0]


def check_written_out_dann_equals_fit_adapted(framework: str, T, namespace: dict, weights) -> None:
    """Run lesson 04's written-out DANN cell (the notebook's own source) on small features, then ``fit_adapted`` with
    ``method="dann"`` on the same data and seed: the two trained models must be the same. ``namespace`` holds the
    framework's names the cell uses; ``weights(model)`` lists a model's weights as arrays."""
    import copy
    import dataclasses

    from tqdm.auto import tqdm

    from transfer_course import get_profile
    from transfer_course.adapt import adapt_settings

    notebook = f"04_domain_adaptation_{framework}"
    settings = dataclasses.replace(adapt_settings(get_profile("quick")), epochs=3, batch_size=16)
    rng = np.random.default_rng(0)
    feature_dim, classes = 24, 4
    centers = rng.normal(size=(classes, feature_dim))

    def split(n, shift):
        y = rng.integers(0, classes, size=n)
        return (centers[y] + shift + rng.normal(0, 0.7, size=(n, feature_dim))).astype(np.float32), y.astype(np.int64)

    data = {"source_train": split(50, 0.0), "target_train": split(40, 1.5), "target_val": split(20, 1.5)}
    ns = {**namespace, "np": np, "copy": copy, "tqdm": tqdm, "settings": settings, "data": data, "SEED": 3,
          "feature_dim": feature_dim, "class_names": [str(c) for c in range(classes)], "floor_val": 0.0}
    ns["reverse_gradient"] = reference_solution(notebook, "reverse_gradient", **ns)
    exec(notebook_cell(notebook, "domain_classifier", "reverse_gradient(", "dann_weight"), ns)
    written_out = ns["dann_model"]
    shortcut = T.make_adaptation_net(feature_dim, classes, settings.hidden_units, seed=3)
    T.fit_adapted(shortcut, data["source_train"], data["target_train"], method="dann", lam=settings.dann_weight,
                  epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size, seed=3, progress=False)
    mine, theirs = weights(written_out), weights(shortcut)
    assert len(mine) == len(theirs)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(mine, weights(T.make_adaptation_net(
        feature_dim, classes, settings.hidden_units, seed=3))))
    assert moved > 1e-3, "training changed the weights"
    for i, (a, b) in enumerate(zip(mine, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")
