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
