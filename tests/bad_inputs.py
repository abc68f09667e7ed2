"""The bad-input suite: what a user touches, fed what users really get wrong. Each case names the call, the error
type, a pattern for the problem the message must name and one for the fix it must suggest. The same cases run in
both frameworks (``T`` is ``transfer_course.torch`` or ``transfer_course.tensorflow``); neutral cases get ``T=None``.

A case is ``(touchpoint, name, call(T, tmp_path), exception type, problem pattern, fix pattern)``.
"""
from __future__ import annotations

import json
import zipfile

import numpy as np

from helpers import write_image

IMAGES, ARRAYS, MODELS, TRAINING, CHECKPOINTS, CACHES, EXERCISES, CLI = (
    "images and folders", "arrays and labels", "models and heads", "training arguments", "checkpoints",
    "caches and downloads", "exercises", "command line")


def _tree(tmp, n=2, classes=("ant", "bee"), splits=("train",), size=(40, 30)):
    root = tmp / "data"
    for split in splits:
        for c in classes:
            for i in range(n):
                write_image(root / split / c / f"{i}.png", size=size)
    return root


def _chw(T):
    return T.FRAMEWORK == "torch"


def _images(T, n=4, values=None, size=32):
    """A batch in the model's layout: preprocessed-looking values unless ``values`` says otherwise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, size, size, 3)).astype(np.float32) if values is None else values(rng, (n, size, size, 3))
    return x.transpose(0, 3, 1, 2) if _chw(T) else x


def _fit(T, x, y, **kw):
    model = T.create_model(num_classes=kw.pop("num_classes", 3))
    return T.fit(model, (x, y), epochs=kw.pop("epochs", 1), progress=False, **kw)


def _features(n=6, dim=1280):
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32), np.arange(n) % 3


def _head_model(T):
    """A small classifier on features (no backbone), for argument checks that need no images."""
    return T.create_model(num_classes=3, hidden_units=8).head


def _fit_features(T, **kw):
    x, y = _features()
    return T.fit(_head_model(T), (x, y), progress=False, **{"epochs": 1, **kw})


# --- images and folders ---------------------------------------------------------------------------------------------

def missing_root(T, tmp):
    T.image_folder_loader(tmp / "nowhere")


def missing_split(T, tmp):
    T.image_folder_loader(_tree(tmp), "val")


def empty_class_folder(T, tmp):
    root = _tree(tmp)
    (root / "train" / "cow").mkdir()
    T.image_folder_loader(root)


def text_file_named_png(T, tmp):
    root = _tree(tmp)
    (root / "train" / "ant" / "notes.png").write_text("not an image")
    T.image_folder_loader(root)


def truncated_jpeg(T, tmp):
    root = _tree(tmp)
    good = tmp / "x.jpg"
    write_image(good, size=(64, 64))
    data = good.read_bytes()
    (root / "train" / "ant" / "cut.jpg").write_bytes(data[: len(data) // 2])
    T.image_folder_loader(root)


def truncated_png(T, tmp):
    root = _tree(tmp)
    data = (root / "train" / "ant" / "0.png").read_bytes()
    (root / "train" / "bee" / "cut.png").write_bytes(data[: len(data) - 20])
    T.image_folder_loader(root)


def val_classes_differ(T, tmp):
    root = _tree(tmp, splits=("train",))
    _tree(tmp, classes=("ant", "cow"), splits=("val",))
    T.image_folder_loader(root, "val")


def batch_size_zero_loader(T, tmp):
    T.image_folder_loader(_tree(tmp), batch_size=0)


def image_path_missing(T, tmp):
    from transfer_course.data.folder import load_image

    load_image(tmp / "photo.jpg")


def preprocess_floats(T, tmp):
    from transfer_course.models import preprocess

    preprocess(np.zeros((8, 8, 3), np.float32), "imagenet")


def preprocess_five_dims(T, tmp):
    from transfer_course.models import preprocess

    preprocess(np.zeros((1, 2, 8, 8, 3), np.uint8), "imagenet")


# --- arrays and labels ----------------------------------------------------------------------------------------------

def fractional_labels(T, tmp):
    x, _ = _features()
    T.fit(_head_model(T), (x, np.array([0, 1.7, 2, 0, 1, 2])), epochs=1, progress=False)


def one_hot_labels(T, tmp):
    x, y = _features()
    T.fit(_head_model(T), (x, np.eye(3)[y]), epochs=1, progress=False)


def string_labels(T, tmp):
    x, _ = _features()
    T.fit(_head_model(T), (x, np.array(["ant", "bee", "cow"] * 2)), epochs=1, progress=False)


def negative_labels(T, tmp):
    x, _ = _features()
    T.fit(_head_model(T), (x, np.array([0, -1, 2, 0, 1, 2])), epochs=1, progress=False)


def labels_beyond_the_head(T, tmp):
    x, _ = _features()
    T.fit(_head_model(T), (x, np.array([0, 1, 2, 3, 4, 5])), epochs=1, progress=False)


def inputs_and_labels_differ_in_length(T, tmp):
    x, y = _features()
    T.fit(_head_model(T), (x, y[:4]), epochs=1, progress=False)


def nan_inputs(T, tmp):
    x, y = _features()
    x[2, 5] = np.nan
    T.fit(_head_model(T), (x, y), epochs=1, progress=False)


def object_inputs(T, tmp):
    T.fit(_head_model(T), (np.array([{"a": 1}] * 6, dtype=object), np.arange(6) % 3), epochs=1, progress=False)


def raw_uint8_images(T, tmp):
    _fit(T, _images(T, values=lambda r, s: r.integers(0, 256, s).astype(np.uint8)), np.arange(4) % 3)


def raw_float_pixels(T, tmp):
    _fit(T, _images(T, values=lambda r, s: r.uniform(0, 255, s).astype(np.float32)), np.arange(4) % 3)


def unit_range_pixels(T, tmp):
    _fit(T, _images(T, n=16, values=lambda r, s: r.uniform(0, 1, s).astype(np.float32)), np.arange(16) % 3)


def channels_in_the_wrong_place(T, tmp):
    x = _images(T)
    x = x.transpose(0, 2, 3, 1) if _chw(T) else x.transpose(0, 3, 1, 2)
    _fit(T, x, np.arange(4) % 3)


def empty_training_arrays(T, tmp):
    T.fit(_head_model(T), (np.zeros((0, 1280), np.float32), np.zeros(0, np.int64)), epochs=1, progress=False)


def predict_raw_images(T, tmp):
    T.predict_proba(T.create_model(num_classes=3), np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32))


# --- models and heads -----------------------------------------------------------------------------------------------

def unknown_model_name(T, tmp):
    T.create_model("resnet9")


def one_class(T, tmp):
    T.create_model(num_classes=1)


def unfreeze_more_blocks_than_exist(T, tmp):
    T.unfreeze(T.create_model(num_classes=2).backbone, top=99)


def unfreeze_negative(T, tmp):
    T.unfreeze(T.create_model(num_classes=2).backbone, top=-2)


def load_a_missing_model(T, tmp):
    T.load_model(tmp / "model.pt")


def precision_unknown(T, tmp):
    T.resolve_precision("fp8")


# --- training arguments ---------------------------------------------------------------------------------------------

def zero_epochs(T, tmp):
    _fit_features(T, epochs=0)


def negative_lr(T, tmp):
    _fit_features(T, lr=-1e-3)


def text_lr(T, tmp):
    _fit_features(T, lr="1e-3")


def unknown_optimizer(T, tmp):
    _fit_features(T, optimizer="lion")


def optimizer_object(T, tmp):
    _fit_features(T, optimizer=object())


def zero_batch_size(T, tmp):
    _fit_features(T, batch_size=0)


def fractional_batch_size(T, tmp):
    _fit_features(T, batch_size=2.5)


def unknown_schedule(T, tmp):
    _fit_features(T, schedule="step")


def negative_clip(T, tmp):
    _fit_features(T, clip_grad_norm=-1.0)


def negative_weight_decay(T, tmp):
    _fit_features(T, weight_decay=-0.1)


def warmup_longer_than_training(T, tmp):
    _fit_features(T, epochs=2, warmup_epochs=5)


def other_frameworks_device_name(T, tmp):
    _fit_features(T, device="/GPU:0" if _chw(T) else "cuda:0")


def made_up_device(T, tmp):
    _fit_features(T, device="tpu-7")


def missing_gpu(T, tmp):
    _fit_features(T, device="cuda:7" if _chw(T) else "/GPU:7")


def predict_batch_size_zero(T, tmp):
    x, y = _features()
    T.predict(_head_model(T), (x, y), batch_size=0)


# --- checkpoints ----------------------------------------------------------------------------------------------------

def checkpoint_of_the_wrong_kind(T, tmp):
    path = tmp / "ckpt"
    if _chw(T):
        path.mkdir()  # PyTorch wants a file
    else:
        path.write_text("a file")  # TensorFlow wants a folder
    _fit_features(T, checkpoint=path)


def resume_with_another_optimizer(T, tmp):
    _fit_features(T, checkpoint=tmp / "run", optimizer="adam")
    _fit_features(T, checkpoint=tmp / "run", optimizer="sgd", epochs=2)


def resume_with_another_lr(T, tmp):
    _fit_features(T, checkpoint=tmp / "run", lr=1e-3)
    _fit_features(T, checkpoint=tmp / "run", lr=1e-2, epochs=2)


def resume_another_model(T, tmp):
    _fit_features(T, checkpoint=tmp / "run")
    x, y = _features()
    T.fit(T.create_model(num_classes=3, hidden_units=16).head, (x, y), epochs=2, progress=False, checkpoint=tmp / "run")


def truncated_checkpoint(T, tmp):
    _fit_features(T, checkpoint=tmp / "run")
    target = tmp / "run" if _chw(T) else tmp / "run" / "model.weights.h5"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    _fit_features(T, checkpoint=tmp / "run", epochs=2)


def empty_checkpoint(T, tmp):
    _fit_features(T, checkpoint=tmp / "run")
    target = tmp / "run" if _chw(T) else tmp / "run" / "model.weights.h5"
    target.write_bytes(b"")
    _fit_features(T, checkpoint=tmp / "run", epochs=2)


def damaged_state(T, tmp):
    if _chw(T):
        (tmp / "run").write_bytes(b"PK\x03\x04 not really a zip")
    else:
        (tmp / "run").mkdir()
        (tmp / "run" / "state.json").write_text('{"epoch": 1')
    _fit_features(T, checkpoint=tmp / "run")


def saved_model_with_code(T, tmp):
    if _chw(T):
        import pickle

        class Evil:
            def __reduce__(self):
                return (print, ("this would run code",))

        (tmp / "model.pt").write_bytes(pickle.dumps({"state": Evil()}))
        T.load_model(tmp / "model.pt")
    else:
        with zipfile.ZipFile(tmp / "model.keras", "w") as zf:
            zf.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}))
            zf.writestr("metadata.json", "{}")
        T.load_model(tmp / "model.keras")


# --- caches and downloads -------------------------------------------------------------------------------------------

def feature_cache_over_a_users_file(T, tmp):
    mine = tmp / "mine.npz"
    mine.write_text("my notes")
    try:
        T.cache_features(T.create_model(num_classes=3), (_images(T, n=2), np.array([0, 1])), path=mine, progress=False)
    finally:
        assert mine.read_text() == "my notes", "the user's file must be left untouched"


def feature_cache_path_is_a_folder(T, tmp):
    (tmp / "cache").mkdir()
    (tmp / "cache" / "features.npz").write_bytes(b"")  # not empty folder
    np.savez(tmp / "ok.npz", a=np.zeros(1))
    T.cache_features(T.create_model(num_classes=3), (_images(T, n=2), np.array([0, 1])), path=tmp / "cache", progress=False)


def unknown_embedded_dataset(T, tmp):
    from transfer_course.data.embedded import make_dataset

    make_dataset("flowerz")


def unknown_remote_dataset(T, tmp):
    from transfer_course.data.remote import prepare_dataset

    prepare_dataset("imagenet22k")


def dataset_into_a_users_folder(T, tmp):
    from transfer_course.data.remote import prepare_dataset

    (tmp / "project").mkdir()
    (tmp / "project" / "thesis.tex").write_text("months of work")
    try:
        prepare_dataset("cifar10", root=tmp / "project")
    finally:
        assert (tmp / "project" / "thesis.tex").read_text() == "months of work"


def download_name_with_folders(T, tmp):
    from transfer_course.data.download import fetch

    fetch("http://127.0.0.1:9/x.zip", filename="../../x.zip", sha256="0" * 64)


def checksum_not_hex(T, tmp):
    from transfer_course.data.download import fetch

    fetch("http://127.0.0.1:9/x.zip", sha256="not-a-checksum")


def unusable_cache_home(T, tmp):
    import os

    from transfer_course.paths import CACHE_ENV_VAR, cache_dir

    (tmp / "afile").write_text("x")
    old = os.environ.get(CACHE_ENV_VAR)
    os.environ[CACHE_ENV_VAR] = str(tmp / "afile" / "cache")
    try:
        cache_dir("downloads")
    finally:
        os.environ.pop(CACHE_ENV_VAR) if old is None else os.environ.__setitem__(CACHE_ENV_VAR, old)


def unknown_profile(T, tmp):
    from transfer_course import get_profile

    get_profile("fast")


# --- exercises ------------------------------------------------------------------------------------------------------

def unknown_exercise(T, tmp):
    from transfer_course.exercises import Lesson

    Lesson("02_feature_extraction_pytorch").check("build_heads", lambda: None)


def notebook_name_without_framework(T, tmp):
    from transfer_course.exercises import Lesson

    Lesson("02_feature_extraction")


# --- command line ---------------------------------------------------------------------------------------------------

def _cli(*args):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "transfer_course.cli", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode)


def cli_unknown_command(T, tmp):
    _cli("grad")


def cli_build_lessons_without_solutions(T, tmp):
    _cli("build-lessons", "--root", str(tmp))


FRAMEWORK_CASES = [
    (IMAGES, missing_root, "DatasetError", r"does not exist", r"one sub-folder per split"),
    (IMAGES, missing_split, "DatasetError", r"No 'val' folder", r"Expected .*val/<class name>"),
    (IMAGES, empty_class_folder, "DatasetError", r"\['cow'\].*hold no images", r"accepted extensions"),
    (IMAGES, text_file_named_png, "ImageDecodeError", r"notes\.png", r"Remove them or replace them"),
    (IMAGES, truncated_jpeg, "ImageDecodeError", r"cut\.jpg \(truncated", r"Remove them or replace them"),
    (IMAGES, truncated_png, "ImageDecodeError", r"cut\.png", r"Remove them or replace them"),
    (IMAGES, val_classes_differ, "DatasetError", r"(?s)cow.*bee|bee.*cow", r"(?i)same class folders|rename|move"),
    (IMAGES, batch_size_zero_loader, ValueError, r"batch_size must be a positive integer", r"typical"),
    (ARRAYS, fractional_labels, ValueError, r"whole numbers", r"truncate 1\.7"),
    (ARRAYS, one_hot_labels, ValueError, r"one-hot", r"argmax"),
    (ARRAYS, string_labels, TypeError, r"integer class indices.*dtype <U3", r"Map class names to indices"),
    (ARRAYS, negative_labels, ValueError, r">= 0", r"class indices"),
    (ARRAYS, labels_beyond_the_head, ValueError, r"\[3, 4, 5\], outside 0\.\.2", r"head was built"),
    (ARRAYS, inputs_and_labels_differ_in_length, ValueError, r"6 inputs but 4 labels", r"inputs but"),
    (ARRAYS, nan_inputs, ValueError, r"NaN or infinite values in 1 of 6", r"np\.isfinite"),
    (ARRAYS, object_inputs, TypeError, r"numeric array", r"images or features"),
    (ARRAYS, raw_uint8_images, TypeError, r"raw uint8 pixels", r"preprocess\(images, model\.spec\)"),
    (ARRAYS, raw_float_pixels, ValueError, r"raw pixels, not preprocessed", r"preprocess\(images, model\.spec\)"),
    (ARRAYS, unit_range_pixels, ValueError, r"lie in \[0, 1\]", r"preprocess\(\(x \* 255\)"),
    (ARRAYS, channels_in_the_wrong_place, ValueError, r"have shape \(4, ", r"transpose"),
    (ARRAYS, empty_training_arrays, ValueError, r"training data is empty", r"Check the train/ folder"),
    (ARRAYS, predict_raw_images, ValueError, r"raw pixels", r"preprocess"),
    (MODELS, unknown_model_name, ValueError, r"Unknown .*model 'resnet9'", r"Valid choices: .*efficientnet_lite0"),
    (MODELS, one_class, ValueError, r"num_classes must be an integer >= 2", r"None to keep the 1000"),
    (MODELS, unfreeze_more_blocks_than_exist, ValueError, r"top 99 blocks", r"Use top <="),
    (MODELS, unfreeze_negative, ValueError, r"top must be a number of blocks >= 0", r"received -2"),
    (MODELS, load_a_missing_model, FileNotFoundError, r"No saved model at", r"save_model\("),
    (MODELS, precision_unknown, ValueError, r"Unknown precision 'fp8'", r"Valid choices: bf16, fp16, fp32"),
    (TRAINING, zero_epochs, ValueError, r"epochs must be a positive integer", r"received 0"),
    (TRAINING, negative_lr, ValueError, r"lr must be a positive number", r"typical: 1e-3"),
    (TRAINING, text_lr, ValueError, r"lr must be a positive number", r"received '1e-3'"),
    (TRAINING, unknown_optimizer, ValueError, r"Unknown optimizer 'lion'", r"Valid choices: adam, adamw, sgd"),
    (TRAINING, optimizer_object, ValueError, r"Unknown optimizer <object", r"Pass its name as a string"),
    (TRAINING, zero_batch_size, ValueError, r"batch_size must be a positive integer", r"typical: 16 to 128"),
    (TRAINING, fractional_batch_size, ValueError, r"batch_size must be a positive integer", r"received 2\.5"),
    (TRAINING, unknown_schedule, ValueError, r"Unknown learning-rate schedule 'step'", r"Valid choices"),
    (TRAINING, negative_clip, ValueError, r"clip_grad_norm must be a positive number", r"or None"),
    (TRAINING, negative_weight_decay, ValueError, r"weight_decay must be a number >= 0", r"typical"),
    (TRAINING, warmup_longer_than_training, ValueError, r"warmup_epochs must be an integer from 0 to epochs \(2\)", r"received 5"),
    (TRAINING, other_frameworks_device_name, ValueError, r"device=.*(is not a PyTorch device|PyTorch's name)", r"(cuda:0|'/GPU:0')"),
    (TRAINING, made_up_device, ValueError, r"'tpu-7' is not a (PyTorch|TensorFlow) device name", r"Use '"),
    (TRAINING, missing_gpu, ValueError, r"(no CUDA GPU|sees 0 GPU)", r"(Use 'cpu'|'/CPU:0')"),
    (TRAINING, predict_batch_size_zero, ValueError, r"batch_size must be a positive integer", r"typical"),
    (CHECKPOINTS, checkpoint_of_the_wrong_kind, OSError, r"checkpoint='.*ckpt' is a (folder|file)", r"Pass a (file|folder) path"),
    (CHECKPOINTS, resume_with_another_optimizer, "CheckpointMismatchError", r"another optimizer set-up", r"use a new checkpoint"),
    (CHECKPOINTS, resume_with_another_lr, "CheckpointMismatchError", r"another optimizer set-up", r"saved run's optimizer, lr"),
    (CHECKPOINTS, resume_another_model, "CheckpointMismatchError", r"different model", r"(new checkpoint|delete)"),
    (CHECKPOINTS, truncated_checkpoint, (ValueError,), r"(truncated|cannot be read)", r"(Delete|delete)"),
    (CHECKPOINTS, empty_checkpoint, (ValueError,), r"(empty|missing or empty)", r"(Delete|delete)"),
    (CHECKPOINTS, damaged_state, (ValueError,), r"(truncated or not a PyTorch file|damaged)", r"(Delete|delete|new checkpoint)"),
    (CHECKPOINTS, saved_model_with_code, (ValueError,), r"(code could run|cannot be loaded as a model written by save_model)", r"(Only load files|save_model|safe_mode|re-save)"),
    (CACHES, feature_cache_over_a_users_file, FileExistsError, r"not a feature cache written by cache_features", r"Pass another path"),
    (CACHES, feature_cache_path_is_a_folder, IsADirectoryError, r"is a folder", r"pass a file path"),
]

NEUTRAL_CASES = [
    (IMAGES, image_path_missing, FileNotFoundError, r"No image at .*photo\.jpg", r"Check the path"),
    (IMAGES, preprocess_floats, TypeError, r"Expected uint8 pixels", r"Pass the raw image"),
    (IMAGES, preprocess_five_dims, ValueError, r"received \(1, 2, 8, 8, 3\)", r"Expected an image of shape"),
    (CACHES, unknown_embedded_dataset, ValueError, r"Unknown embedded dataset 'flowerz'", r"Valid choices: .*photo_patches"),
    (CACHES, unknown_remote_dataset, ValueError, r"'imagenet22k'", r"Valid choices: ag_news, cifar10, flowers102"),
    (CACHES, dataset_into_a_users_folder, FileExistsError, r"did not create", r"Pass root= a new or empty folder"),
    (CACHES, download_name_with_folders, ValueError, r"plain file name, without folders", r"inside the course cache"),
    (CACHES, checksum_not_hex, ValueError, r"sha256 must be 64 hex characters", r"'not-a-checksum'"),
    (CACHES, unusable_cache_home, OSError, r"cannot be created", r"Point \$TRANSFER_COURSE_HOME at a folder"),
    (CACHES, unknown_profile, ValueError, r"Unknown profile 'fast'", r"Valid choices: default, full, quick"),
    (EXERCISES, unknown_exercise, KeyError, r"build_heads", r"Valid choices: .*build_head"),
    (EXERCISES, notebook_name_without_framework, ValueError, r"'02_feature_extraction'", r"_pytorch or _tensorflow"),
    (CLI, cli_unknown_command, SystemExit, r"invalid choice: 'grad'", r"choose from"),
    (CLI, cli_build_lessons_without_solutions, SystemExit, r"solutions", r"(--root|folder)"),
]


def run_case(case, T, tmp_path):
    """Run one case; return the exception, after checking its type and message."""
    import re

    import pytest

    touch, call, kind, problem, fix = case
    if isinstance(kind, str):  # a course exception class, by name (framework modules import it lazily)
        from transfer_course import errors, training

        kind = getattr(errors, kind, None) or getattr(training, kind)
    with pytest.raises(kind) as info:
        call(T, tmp_path)
    message = str(info.value)
    assert re.search(problem, message), f"{call.__name__}: the message does not name the problem:\n{message}"
    assert re.search(fix, message), f"{call.__name__}: the message does not say how to fix it:\n{message}"
    return info.value
