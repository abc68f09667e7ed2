"""The tests behind each exercise. A check raises :class:`ExerciseFailed` with feedback that says
what is wrong and how to fix it, or returns a short note on success. Checks compare against
closed forms (softmax, the normalisation formula, cosine similarity), never against a copy of the
solution, and they import a framework only when the notebook being checked uses it.
"""
from __future__ import annotations

import importlib

import numpy as np

from ..imagenet import imagenet_classes

__all__ = ["CHECKS", "ExerciseFailed", "check"]

CHECKS: dict = {}


class ExerciseFailed(AssertionError):
    """An exercise's answer is not right yet; the message says why."""


def check(topic: str, exercise: str):
    def register(fn):
        CHECKS[(topic, exercise)] = fn
        return fn
    return register


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ExerciseFailed(message)


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        return x.detach().cpu().float().numpy()
    if hasattr(x, "numpy"):  # tf.Tensor
        return np.asarray(x.numpy())
    return np.asarray(x)


def _tensor_type(framework: str):
    if framework == "torch":
        return importlib.import_module("torch").Tensor
    return importlib.import_module("tensorflow").Tensor


def _from_numpy(a: np.ndarray, framework: str):
    if framework == "torch":
        return importlib.import_module("torch").from_numpy(a)
    return importlib.import_module("tensorflow").constant(a)


# --- 01 pretrained models ------------------------------------------------------------------------
@check("01_pretrained_models", "to_model_input")
def _to_model_input(fn, framework: str) -> str:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    image[0, 0] = (0, 128, 255)
    original = image.copy()
    out = fn(image)
    _expect(np.array_equal(image, original), "your function changed the input image in place; work on a copy.")
    kind = "torch.Tensor" if framework == "torch" else "tf.Tensor"
    _expect(isinstance(out, _tensor_type(framework)), f"return a {kind}, not {type(out).__name__}.")
    shape = tuple(out.shape)
    want = (1, 3, 224, 224) if framework == "torch" else (1, 224, 224, 3)
    if framework == "torch" and shape == (1, 224, 224, 3):
        raise ExerciseFailed("the channels are last (1, 224, 224, 3); PyTorch wants (1, 3, 224, 224). Use .permute(2, 0, 1) before adding the batch dimension.")
    if shape in ((3, 224, 224), (224, 224, 3)):
        raise ExerciseFailed(f"shape {shape} has no batch dimension; the model wants a batch, here of one: {want}.")
    _expect(shape == want, f"expected shape {want}, got {shape}.")
    dtype = getattr(out.dtype, "name", None) or str(out.dtype)  # tf: 'float32'; torch: 'torch.float32'
    _expect(dtype.endswith("float32"), f"expected float32 values, got {dtype}; convert before normalising.")
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
    result = fn(_from_numpy(logits.copy(), framework))
    _expect(isinstance(result, (list, tuple)), f"return a list of (class name, probability) pairs, not {type(result).__name__}.")
    _expect(len(result) == 5, f"return exactly 5 pairs; got {len(result)}.")
    for pair in result:
        _expect(isinstance(pair, (list, tuple)) and len(pair) == 2, f"each item must be a (name, probability) pair; got {pair!r}.")
        _expect(isinstance(pair[0], str), f"the first item of each pair is the class *name* (a str); got {pair[0]!r}. "
                "Look it up with IMAGENET_CLASSES[index].")
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)[:5]
    got = [float(p) for _, p in result]
    if np.allclose(got, logits[order], atol=1e-4):
        raise ExerciseFailed("those numbers are the raw logits; turn them into probabilities with softmax first.")
    _expect([n for n, _ in result] == [names[i] for i in order],
            f"expected the classes {[names[i] for i in order]}, best first; got {[n for n, _ in result]}.")
    _expect(np.allclose(got, probs[order], atol=1e-4), f"probabilities should be {np.round(probs[order], 4).tolist()}; got {np.round(got, 4).tolist()}.")
    return "Softmax turns the 1000 logits into probabilities that sum to 1."


@check("01_pretrained_models", "cosine_similarity")
def _cosine_similarity(fn, framework: str) -> str:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 16)).astype(np.float32)
    b = rng.normal(size=(3, 16)).astype(np.float32) * 5
    out = to_numpy(fn(a.copy(), b.copy()))
    _expect(out.shape == (4, 3), f"expected a (4, 3) matrix for 4 and 3 vectors; got shape {out.shape}.")
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    expected = an @ bn.T
    if np.allclose(out, a @ b.T, atol=1e-3):
        raise ExerciseFailed("that is the plain dot product; divide each vector by its length (np.linalg.norm) first.")
    _expect(np.allclose(out, expected, atol=1e-4), f"entry [0, 0] should be {expected[0, 0]:.4f}; got {out[0, 0]:.4f}.")
    same = to_numpy(fn(a, a))
    _expect(np.allclose(np.diag(same), 1, atol=1e-4), "a vector's similarity with itself must be 1.")
    return "1 means same direction, 0 unrelated, -1 opposite; the length of the vectors no longer matters."


# --- shared helpers for lessons 02 and 03 --------------------------------------------------------------
def _side(framework: str):
    return importlib.import_module(f"transfer_course.{'torch' if framework == 'torch' else 'tensorflow'}")


def _trainable_count(model, framework: str) -> int:
    return _side(framework).count_parameters(model)[1]


# --- 02 feature extraction -----------------------------------------------------------------------------
@check("02_feature_extraction", "freeze_backbone")
def _freeze_backbone(fn, framework: str) -> str:
    T = _side(framework)
    model = T.create_model(num_classes=3)
    result = fn(model)
    model = result if result is not None else model
    head = sum(int(np.prod(tuple(p.shape))) for p in (model.head.parameters() if framework == "torch" else model.head.weights))
    trainable = _trainable_count(model, framework)
    _expect(trainable != T.count_parameters(model)[0], "every parameter is still trainable: the backbone is not frozen. "
            + ("Set requires_grad to False on each parameter of model.backbone." if framework == "torch"
               else "Set model.backbone.trainable = False."))
    _expect(trainable != 0, "nothing is trainable any more: freeze only the backbone, not the new head.")
    _expect(trainable == head, f"{trainable:,d} parameters are trainable; only the head's {head:,d} should be.")
    return "Only the head will learn; the ImageNet features stay exactly as they are."


@check("02_feature_extraction", "build_head")
def _build_head(fn, framework: str) -> str:
    head = fn(1280, 5)
    x = np.random.default_rng(0).normal(size=(4, 1280)).astype(np.float32)
    if framework == "torch":
        torch = importlib.import_module("torch")
        _expect(isinstance(head, torch.nn.Module), f"return an nn.Module (e.g. nn.Sequential), not {type(head).__name__}.")
        kinds = [type(m).__name__ for m in head.modules()]
        head.eval()
        out = to_numpy(head(torch.from_numpy(x)))
    else:
        keras = importlib.import_module("keras")
        _expect(isinstance(head, keras.Model), f"return a keras model (e.g. keras.Sequential), not {type(head).__name__}.")
        kinds = [type(layer).__name__ for layer in head.layers]
        out = to_numpy(head(x, training=False))
    _expect(out.shape == (4, 5), f"for 4 feature vectors and 5 classes the head must output (4, 5); got {out.shape}.")
    dense = sum(k in ("Linear", "Dense") for k in kinds)
    _expect(dense >= 2, "use a hidden dense layer before the output layer: dense -> dropout -> output.")
    _expect("Dropout" in kinds, "add a Dropout layer between the hidden layer and the output.")
    _expect(not np.allclose(out.sum(1), 1, atol=1e-3), "the head ends in a softmax; return raw scores (logits): the loss "
            "applies the softmax itself, more accurately.")
    return "dense -> dropout -> output: a small classifier on top of 1280 ImageNet features."


@check("02_feature_extraction", "precision_recall_f1")
def _precision_recall_f1(fn, framework: str) -> str:
    from ..metrics import precision_recall_f1

    cm = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 0]])  # class 2 never appears nor is predicted
    cm2 = np.array([[8, 2, 0], [1, 4, 0], [3, 0, 2]])
    for matrix in (cm2, cm):
        got = fn(matrix.copy())
        _expect(isinstance(got, (tuple, list)) and len(got) == 3, "return three arrays: (precision, recall, f1).")
        p, r, f = (np.asarray(v, dtype=np.float64) for v in got)
        ep, er, ef = precision_recall_f1(matrix)
        if np.allclose(p, er, atol=1e-6) and not np.allclose(p, ep, atol=1e-6):
            raise ExerciseFailed("precision and recall are swapped: precision divides by the column sum (all "
                                 "images *predicted* as the class), recall by the row sum (all images that *are* the class).")
        _expect(np.all(np.isfinite(p)) and np.all(np.isfinite(f)), "a class that is never predicted gives 0/0; "
                "return 0 there (np.where or np.divide with where=) instead of nan.")
        _expect(np.allclose(p, ep, atol=1e-6), f"precision should be {np.round(ep, 3).tolist()}; got {np.round(p, 3).tolist()}.")
        _expect(np.allclose(r, er, atol=1e-6), f"recall should be {np.round(er, 3).tolist()}; got {np.round(r, 3).tolist()}.")
        _expect(np.allclose(f, ef, atol=1e-6), f"F1 should be {np.round(ef, 3).tolist()}; got {np.round(f, 3).tolist()}.")
    return "Precision: how many of the predicted are right. Recall: how many of the real ones were found."


# --- 03 fine-tuning ------------------------------------------------------------------------------------
@check("03_fine_tuning", "unfreeze_top_blocks")
def _unfreeze_top_blocks(fn, framework: str) -> str:
    T = _side(framework)
    ours, theirs = T.create_model(num_classes=3), T.create_model(num_classes=3)
    for model in (ours, theirs):
        T.freeze(model.backbone)
    head_only = _trainable_count(theirs, framework)
    T.unfreeze(ours.backbone, top=3)
    fn(theirs, 3)
    want, got = _trainable_count(ours, framework), _trainable_count(theirs, framework)
    _expect(got != T.count_parameters(theirs)[0], "everything is trainable: unfreeze only the last n blocks; the others stay frozen.")
    _expect(got != head_only, "no backbone parameter became trainable: unfreeze the layers of the *last* n blocks, blocks[-n:].")
    T.unfreeze(ours.backbone, top=3, train_bn=True)
    _expect(got != _trainable_count(ours, framework), "the BatchNorm layers of those blocks were unfrozen too; keep "
            "them frozen, so they keep their ImageNet statistics (skip them in the loop).")
    _expect(got == want, f"{got:,d} parameters are trainable; unfreezing the last 3 blocks (BatchNorm frozen) gives {want:,d}.")
    return "Only the last blocks, the most ImageNet-specific ones, will adapt."


@check("03_fine_tuning", "learning_rate_groups")
def _learning_rate_groups(fn, framework: str) -> str:
    T = _side(framework)
    model = T.create_model(num_classes=3)
    T.freeze(model.backbone)
    T.unfreeze(model.backbone, top=2)
    groups = fn(model, 1e-3, 1e-5)
    _expect(isinstance(groups, (list, tuple)) and len(groups) == 2,
            "return two (parameters, learning rate) pairs: the backbone's and the head's.")
    if framework == "torch":
        backbone = [p for p in model.backbone.parameters() if p.requires_grad]
        head = list(model.head.parameters())
    else:
        backbone, head = model.backbone.trainable_weights, model.head.trainable_weights
    ids = lambda params: sorted(id(p) for p in params)  # noqa: E731
    (first, lr1), (second, lr2) = groups
    _expect(ids(first) == ids(backbone) or ids(second) == ids(backbone),
            "one group must hold exactly the *trainable* parameters of model.backbone (frozen ones left out).")
    by_lr = {ids(first) == ids(backbone): lr1, ids(second) == ids(backbone): lr2}
    _expect(by_lr.get(True) == 1e-5, "the pretrained (backbone) parameters get the small backbone_lr.")
    head_group, head_lr = (second, lr2) if ids(first) == ids(backbone) else (first, lr1)
    _expect(ids(head_group) == ids(head), "the other group holds all the head's parameters.")
    _expect(head_lr == 1e-3, "the new head gets the larger head_lr.")
    return "Pretrained layers move 100× more slowly than the new head."


@check("03_fine_tuning", "predict_image")
def _predict_image(fn, framework: str, model=None, image_size: int = 96) -> str:
    from ..models import preprocess

    T = _side(framework)
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(300, 451, 3), dtype=np.uint8), rng.integers(0, 256, size=(80, 60), dtype=np.uint8)]
    for image in images:
        got = fn(model, image.copy())
        _expect(isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], str),
                f"return a (class name, probability) pair; got {got!r}.")
        probs = T.predict_proba(model, preprocess(image, model.spec, size=image_size))[0]
        best = int(np.argmax(probs))
        _expect(got[0] == model.class_names[best], f"expected class {model.class_names[best]!r}, got {got[0]!r}: "
                f"prepare the image exactly as in training, preprocess(image, model.spec, size={image_size}).")
        _expect(abs(float(got[1]) - probs[best]) < 1e-3, f"the probability should be {probs[best]:.3f}; got {float(got[1]):.3f} "
                "(softmax of the model's scores).")
    return "Same preprocessing as in training, any image size, grayscale included."
