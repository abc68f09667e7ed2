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
