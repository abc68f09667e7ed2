"""Checks for lesson 01, pretrained models."""
from __future__ import annotations

import numpy as np

from ...imagenet import imagenet_classes
from ._base import (  # noqa: F401
    ExerciseFailed,
    check,
    expect,
    from_numpy,
    side,
    tensor_type,
    to_numpy,
    trainable_count,
)


# --- 01 pretrained models ------------------------------------------------------------------------
@check("01_pretrained_models", "to_model_input")
def _to_model_input(fn, framework: str) -> str:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    image[0, 0] = (0, 128, 255)
    original = image.copy()
    out = fn(image)
    expect(np.array_equal(image, original), "your function changed the input image in place; work on a copy.")
    kind = "torch.Tensor" if framework == "torch" else "tf.Tensor"
    expect(isinstance(out, tensor_type(framework)), f"return a {kind}, not {type(out).__name__}.")
    shape = tuple(out.shape)
    want = (1, 3, 224, 224) if framework == "torch" else (1, 224, 224, 3)
    if framework == "torch" and shape == (1, 224, 224, 3):
        raise ExerciseFailed("the channels are last (1, 224, 224, 3); PyTorch wants (1, 3, 224, 224). Use .permute(2, 0, 1) before adding the batch dimension.")
    if shape in ((3, 224, 224), (224, 224, 3)):
        raise ExerciseFailed(f"shape {shape} has no batch dimension; the model wants a batch, here of one: {want}.")
    expect(shape == want, f"expected shape {want}, got {shape}.")
    dtype = getattr(out.dtype, "name", None) or str(out.dtype)  # tf: 'float32'; torch: 'torch.float32'
    expect(dtype.endswith("float32"), f"expected float32 values, got {dtype}; convert before normalising.")
    x = to_numpy(out)
    if framework == "torch":
        x = x[0].transpose(1, 2, 0)
    else:
        x = x[0]
    expected = (original.astype(np.float32) / 255.0 - 0.5) / 0.5
    if np.allclose(x, expected, atol=1e-4):
        return "Values run from -1 (black) to +1 (white), as EfficientNet-Lite0 was trained."
    imagenet = (original / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    if np.allclose(x, imagenet, atol=1e-3):
        raise ExerciseFailed("that is the ImageNet mean/std normalisation of torchvision models; EfficientNet-Lite0 "
                             "was trained with (x / 255 - 0.5) / 0.5.")
    if x.max() > 2:
        raise ExerciseFailed(f"values reach {x.max():.0f}: scale the pixels to [0, 1] first (divide by 255).")
    if x.min() >= 0:
        raise ExerciseFailed("values are in [0, 1]; the model expects [-1, 1]: subtract 0.5 and divide by 0.5.")
    raise ExerciseFailed(f"values are off, e.g. pixel (0, 0) is {np.round(x[0, 0], 3)}, expected {np.round(expected[0, 0], 3)}.")


@check("01_pretrained_models", "top5")
def _top5(fn, framework: str) -> str:
    names = imagenet_classes()
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=1000) * 3).astype(np.float32)
    result = fn(from_numpy(logits.copy(), framework))
    expect(isinstance(result, (list, tuple)), f"return a list of (class name, probability) pairs, not {type(result).__name__}.")
    expect(len(result) == 5, f"return exactly 5 pairs; got {len(result)}.")
    for pair in result:
        expect(isinstance(pair, (list, tuple)) and len(pair) == 2, f"each item must be a (name, probability) pair; got {pair!r}.")
        expect(isinstance(pair[0], str), f"the first item of each pair is the class *name* (a str); got {pair[0]!r}. "
                "Look it up with IMAGENET_CLASSES[index].")
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)[:5]
    got = [float(p) for _, p in result]
    if np.allclose(got, logits[order], atol=1e-4):
        raise ExerciseFailed("those numbers are the raw logits; turn them into probabilities with softmax first.")
    expect([n for n, _ in result] == [names[i] for i in order],
            f"expected the classes {[names[i] for i in order]}, best first; got {[n for n, _ in result]}.")
    expect(np.allclose(got, probs[order], atol=1e-4), f"probabilities should be {np.round(probs[order], 4).tolist()}; got {np.round(got, 4).tolist()}.")
    return "Softmax turns the 1000 logits into probabilities that sum to 1."


@check("01_pretrained_models", "cosine_similarity")
def _cosine_similarity(fn, framework: str) -> str:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 16)).astype(np.float32)
    b = rng.normal(size=(3, 16)).astype(np.float32) * 5
    out = to_numpy(fn(a.copy(), b.copy()))
    expect(out.shape == (4, 3), f"expected a (4, 3) matrix for 4 and 3 vectors; got shape {out.shape}.")
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    expected = an @ bn.T
    if np.allclose(out, a @ b.T, atol=1e-3):
        raise ExerciseFailed("that is the plain dot product; divide each vector by its length (np.linalg.norm) first.")
    expect(np.allclose(out, expected, atol=1e-4), f"entry [0, 0] should be {expected[0, 0]:.4f}; got {out[0, 0]:.4f}.")
    same = to_numpy(fn(a, a))
    expect(np.allclose(np.diag(same), 1, atol=1e-4), "a vector's similarity with itself must be 1.")
    return "1 means same direction, 0 unrelated, -1 opposite; the length of the vectors no longer matters."


