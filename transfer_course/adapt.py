"""Unsupervised domain adaptation, the framework-neutral part: the embedded domain pair, the DANN schedule,
the checks on arguments, and the numbers the lessons report (gap closed, domain separability, mean ± std).

The setting (Ben-David et al., 2010; Ganin et al., 2016): labelled images of a **source** domain
``(x_s, y_s)``, unlabelled images of a **target** domain ``x_t`` with the same classes, and the goal of
classifying target images well. A model trained on the source alone (``source-only``) is the floor; one trained
on labelled target images (``target-only``, which a real project cannot train) is the ceiling.

Methods (the framework modules ``transfer_course.torch.adapt`` / ``transfer_course.tensorflow.adapt`` carry
their code):

- **AdaBN** (Li et al., 2016, *Revisiting Batch Normalization For Practical Domain Adaptation*): replace the
  running mean and variance of every BatchNorm layer by those of the target data; no gradient step.
- **Deep CORAL** (Sun & Saenko, 2016): add ``λ · ‖C_s − C_t‖²_F / (4 d²)`` to the classification loss, where
  ``C = (Xᵀ X − (1ᵀX)ᵀ(1ᵀX) / n) / (n − 1)`` is the ``(d, d)`` covariance of a batch of ``(n, d)`` features.
- **DANN** (Ganin et al., 2016, *Domain-Adversarial Training of Neural Networks*): a domain classifier on
  the features, behind a gradient-reversal layer (forward: identity; backward: ``−λ_p · grad``) whose strength
  grows as ``λ_p = 2 / (1 + exp(−γ p)) − 1`` with ``γ = 10`` and ``p`` the fraction of training done.

The embedded pair (:func:`make_domain_pair`): the lessons' photo patches (ten real photos, one class each) as the
source, and the *same kind* of patches as a low-contrast black-and-white negative (gray, inverted, contrast
halved: :func:`negative_scan`) as the target, as if the target images came from scanned film negatives.
Arrays are ``(N, H, W, 3)`` uint8 images and ``(N,)`` int64 labels.

The ``full`` profile's real pair (:func:`mnist_m_pair`): MNIST → MNIST-M, built as Ganin et al. describe it, from
the verified MNIST files and the BSDS500 photos (:func:`~transfer_course.data.download_dataset`).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import choices_message

__all__ = [
    "ADAPT_SETTINGS",
    "METHODS",
    "DomainPair",
    "adapt_settings",
    "check_domains",
    "check_lambda",
    "mnist_m_pair",
    "blend_mnist_m",
    "check_method",
    "coral_numpy",
    "dann_lambda",
    "domain_separability",
    "gap_closed",
    "make_domain_pair",
    "mean_std",
    "negative_scan",
    "pair_features",
]

#: the methods a lesson compares, in the order it reports them
METHODS = ("source-only", "target-only", "adabn", "coral", "dann")


@dataclasses.dataclass(frozen=True)
class AdaptSettings:
    """How long and how hard the small adaptation network trains on cached backbone features."""

    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    hidden_units: int = 256
    coral_weight: float = 1.0
    dann_weight: float = 1.0


#: per profile; chosen once on the *source* validation split and the unsupervised signals, never on target test
ADAPT_SETTINGS = {"quick": AdaptSettings(epochs=60), "default": AdaptSettings(epochs=60), "full": AdaptSettings(epochs=30)}


def adapt_settings(profile) -> AdaptSettings:
    """The :class:`AdaptSettings` for a profile (or its name)."""
    name = getattr(profile, "name", profile)
    if name not in ADAPT_SETTINGS:
        raise ValueError(choices_message("profile", name, ADAPT_SETTINGS))
    return ADAPT_SETTINGS[name]


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`, else a ValueError listing them."""
    if method not in METHODS:
        raise ValueError(choices_message("adaptation method", method, METHODS))
    return method


def check_lambda(value, name: str = "lam") -> float:
    """A transfer-loss weight or reversal strength must be a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number >= 0; received {value!r} ({type(value).__name__}).")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; received {value!r}. A negative weight would turn the "
                         "alignment around (the features would be pushed to *separate* the domains); use 0 to switch "
                         "the transfer loss off.")
    return float(value)


def dann_lambda(progress, gamma: float = 10.0):
    """DANN's schedule ``λ_p = 2 / (1 + exp(−γ p)) − 1`` for ``p`` in [0, 1]: 0 at the start, close to 1 at the end.

    The domain classifier is random at first; a weak reversal then keeps its noisy gradient from wrecking the
    features while the classifier of classes is still learning."""
    p = np.asarray(progress, dtype=np.float64)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"progress must lie in [0, 1] (the fraction of training done); received {progress!r}.")
    out = 2.0 / (1.0 + np.exp(-gamma * p)) - 1.0
    return float(out) if out.ndim == 0 else out


def coral_numpy(source, target) -> float:
    """``‖C_s − C_t‖²_F / (4 d²)`` computed in NumPy for ``(n_s, d)`` and ``(n_t, d)`` features (the reference the
    framework losses are tested against)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"CORAL needs two (n, d) feature arrays with the same d; received {source.shape} and {target.shape}.")
    d = source.shape[1]
    cs, ct = np.cov(source, rowvar=False), np.cov(target, rowvar=False)
    return float(((cs - ct) ** 2).sum() / (4 * d * d))


def gap_closed(source_only: float, target_only: float, method: float) -> float:
    """The share of the source-only → target-only gap that ``method`` closes: 0 = no better than source-only,
    1 = as good as training on labelled target data."""
    gap = target_only - source_only
    if gap <= 0:
        raise ValueError(f"target-only ({target_only:.3f}) is not better than source-only ({source_only:.3f}): there "
                         "is no gap to close.")
    return float((method - source_only) / gap)


def mean_std(values) -> tuple[float, float]:
    """Mean and (population) standard deviation over seeds."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


def domain_separability(source_features, target_features, seed: int = 0) -> float:
    """How well a linear classifier tells the domains apart from features: its 5-fold cross-validated accuracy.

    0.5 means the domains are indistinguishable in these features; 1.0 means perfectly separable. It needs no
    class labels, so it may be used to choose among adapted models; it does *not* say whether the classes are
    still separable (features that map everything to one point fool it). Ben-David et al.'s proxy A-distance is
    ``2 (2 acc − 1)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs, xt = np.asarray(source_features, np.float64), np.asarray(target_features, np.float64)
    n = min(len(xs), len(xt))
    if n < 5:
        raise ValueError(f"domain_separability needs at least 5 samples per domain; received {len(xs)} and {len(xt)}.")
    rng = np.random.default_rng(seed)
    x = np.concatenate([xs[rng.permutation(len(xs))[:n]], xt[rng.permutation(len(xt))[:n]]])
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return float(cross_val_score(clf, x, y, cv=5).mean())


# --- the embedded domain pair --------------------------------------------------------------------------
def negative_scan(images) -> np.ndarray:
    """The target domain's look: gray, inverted and at half contrast, ``x' = 0.25 + 0.5 (1 − gray(x))``, as a
    black-and-white film negative scanned flat. Deterministic; ``(N, H, W, 3)`` or ``(H, W, 3)`` uint8 in and out."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ValueError(f"negative_scan expects uint8 RGB images (..., H, W, 3); received {images.dtype} {images.shape}.")
    gray = images.astype(np.float32).mean(-1, keepdims=True) / 255.0
    out = 0.25 + 0.5 * (1.0 - gray)
    return np.repeat(np.round(out * 255), 3, axis=-1).astype(np.uint8)


@dataclasses.dataclass
class DomainPair:
    """Source and target arrays of one classification task.

    - ``source_train`` (labelled) and ``source_val`` (labelled): what a real project has;
    - ``target_train``: target images whose labels a method must not use (they are kept only to train the
      target-only ceiling);
    - ``target_val``: a few labelled target images, for the ceiling's own choices and to show what an oracle
      would choose; not for choosing an adaptation method's settings;
    - ``target_test``: reported once.

    Each split is an ``(images, labels)`` pair. The constructor checks that the domains fit together.
    """

    source_train: tuple
    source_val: tuple
    target_train: tuple
    target_val: tuple
    target_test: tuple
    class_names: tuple
    description: str = ""

    def __post_init__(self):
        check_domains(self.source_train, self.target_train, self.class_names, target_test=self.target_test)

    def splits(self) -> dict:
        return {k: getattr(self, k) for k in ("source_train", "source_val", "target_train", "target_val", "target_test")}

    def digest(self) -> str:
        """A short hash of every image and label: names cached features of exactly this pair."""
        import hashlib

        h = hashlib.sha1()
        for name, (x, y) in self.splits().items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(x).tobytes())
            h.update(np.ascontiguousarray(y).tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {len(v[1])}" for k, v in self.splits().items())
        return f"DomainPair({len(self.class_names)} classes; {sizes})"


def check_domains(source, target, class_names=None, target_test=None) -> None:
    """Clear errors for a pair that cannot be adapted: an empty target, images of different shapes or channel
    counts, labels outside the class list, or a target test split with classes the source never had."""
    xs, ys = source
    xt = target[0] if isinstance(target, (tuple, list)) else target
    if len(xt) == 0:
        raise ValueError("The target set is empty: adaptation needs target images (unlabelled is enough). Pass at "
                         "least one batch of target images.")
    if len(xs) == 0:
        raise ValueError("The source set is empty: adaptation needs labelled source images.")
    shape_s, shape_t = tuple(np.shape(xs)[1:]), tuple(np.shape(xt)[1:])
    if shape_s != shape_t:
        if len(shape_s) == 1 and len(shape_t) == 1:
            raise ValueError(f"Source and target features have different sizes: {shape_s} vs {shape_t}. Compute both "
                             "with the same backbone (the same layer and input size).")
        what = "channel counts" if shape_s[:-1] == shape_t[:-1] else "shapes"
        raise ValueError(f"Source and target images have different {what}: {shape_s} vs {shape_t}. Resize them to "
                         "one size and convert both to the same number of channels (e.g. ensure_rgb) first.")
    source_classes = set(np.unique(np.asarray(ys)).tolist())
    if class_names is not None:
        bad = sorted(c for c in source_classes if not 0 <= c < len(class_names))
        if bad:
            raise ValueError(f"Source labels {bad} lie outside the {len(class_names)} class names.")
    if target_test is not None:
        test_classes = set(np.unique(np.asarray(target_test[1])).tolist())
        unseen = sorted(test_classes - source_classes)
        if unseen:
            names = [class_names[c] if class_names is not None and 0 <= c < len(class_names) else c for c in unseen]
            raise ValueError(f"The target test split has classes the source training split does not: {names}. "
                             "Domain adaptation assumes the same classes in both domains; use one class list for both.")


def _split(images, labels, style=None):
    return (style(images) if style else images, np.asarray(labels, np.int64))


def make_domain_pair(size: int = 128, per_class: int = 20, val_per_class: int = 20, seed: int = 0) -> DomainPair:
    """The embedded pair: photo patches (source) and the same task seen as a negative scan (target).

    Built from one ``make_dataset("photo_patches", per_class=2 * per_class, ...)``: each photo's tiles are dealt
    out to train / val / test, so no test pixel appears in any training image. Per class, the first ``per_class``
    training patches form the source training set and the other ``per_class`` (other places of the same tiles,
    never the same patch) are styled as the target training set. Validation patches give ``source_val`` and,
    styled, ``target_val``; test patches, styled, give ``target_test``."""
    from .data import load_split, make_dataset

    root = make_dataset("photo_patches", size=size, per_class=2 * per_class, val_per_class=val_per_class, seed=seed)
    x, y, class_names = load_split(root, "train")
    first = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(len(class_names))])
    second = np.concatenate([np.flatnonzero(y == c)[per_class:] for c in range(len(class_names))])
    xv, yv, _ = load_split(root, "val", class_names=class_names)
    xt, yt, _ = load_split(root, "test", class_names=class_names)
    return DomainPair(
        source_train=_split(x[first], y[first]), source_val=_split(xv, yv),
        target_train=_split(x[second], y[second], negative_scan), target_val=_split(xv, yv, negative_scan),
        target_test=_split(xt, yt, negative_scan), class_names=tuple(class_names),
        description="source: photo patches; target: the same scenes as low-contrast black-and-white negatives")


def blend_mnist_m(digits, backgrounds, rng) -> np.ndarray:
    """MNIST-M images (Ganin et al., 2016, section 5.1): each digit blended over a patch cut at random from a colour
    photo, ``out = |patch − digit|`` per channel. ``digits`` ``(N, h, w)`` uint8, ``backgrounds`` a list of
    ``(H, W, 3)`` uint8 photos (each at least ``h × w``), ``rng`` a NumPy Generator; returns ``(N, h, w, 3)`` uint8."""
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 (N, h, w); received {digits.dtype} {digits.shape}.")
    if not backgrounds:
        raise ValueError("blend_mnist_m needs at least one background photo.")
    n, h, w = digits.shape
    out = np.empty((n, h, w, 3), np.uint8)
    picks = rng.integers(0, len(backgrounds), size=n)
    for i, (digit, b) in enumerate(zip(digits, picks)):
        photo = backgrounds[b]
        if photo.shape[0] < h or photo.shape[1] < w:
            raise ValueError(f"background photo {b} is {photo.shape[:2]}, smaller than a digit ({h}, {w}).")
        y, x = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
        patch = photo[y:y + h, x:x + w].astype(np.int16)
        out[i] = np.abs(patch - digit[..., None].astype(np.int16)).astype(np.uint8)
    return out


def mnist_m_pair(size: int = 32, per_class: int = 100, val_per_class: int = 50, test_per_class: int | None = 100,
                 seed: int = 0, timeout: float = 60.0) -> DomainPair:
    """The real benchmark pair of the ``full`` profile: MNIST (source) → MNIST-M (target), Ganin et al.'s
    digit-adaptation benchmark (source-only 0.52 → DANN 0.77 in their paper, with their own network).

    Downloads and verifies MNIST and BSDS500 (sha256; offline, the error names each file and where to put it), then
    builds MNIST-M with :func:`blend_mnist_m`. Unlike the usual MNIST-M files, no digit appears in both domains:
    MNIST's 60,000 training digits are split into a fitting pool (the first 50,000) and a validation pool (the last
    10,000), and in each pool the even-numbered digits form the source and the odd-numbered ones the target. Target
    training and validation digits are blended over BSDS500's *train* photos, target test digits (MNIST's test set)
    over its *test* photos, so no background photo is shared between target training and target test.
    ``per_class`` / ``val_per_class`` / ``test_per_class`` digits of each class per split (``None``: all), chosen at
    random with ``seed``; images are resized to ``size`` pixels, RGB (MNIST's gray repeated for the source).
    The built pair is cached, keyed on the files' checksums and the arguments."""
    import hashlib
    import os

    from PIL import Image

    from .data import download_dataset, extract, read_idx
    from .data.remote import REMOTE_DATASETS
    from .errors import DatasetError
    from .paths import cache_dir

    for name, value in (("size", size), ("per_class", per_class), ("val_per_class", val_per_class),
                        ("test_per_class", test_per_class)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be a positive whole number (or None for all); received {value!r}.")
    key = hashlib.sha1(repr(([f.sha256 for d in ("mnist", "bsds500") for f in REMOTE_DATASETS[d].files], size,
                             per_class, val_per_class, test_per_class, seed)).encode()).hexdigest()[:16]
    path = cache_dir("datasets") / f"mnist_m_pair-{key}.npz"
    names = ("source_train", "source_val", "target_train", "target_val", "target_test")
    description = ("source: MNIST digits (gray); target: MNIST-M, other MNIST digits blended over patches of "
                   "BSDS500 colour photos")
    class_names = tuple(str(d) for d in range(10))
    if path.exists():
        with np.load(path) as saved:
            splits = {n: (saved[f"{n}_x"], saved[f"{n}_y"]) for n in names}
        return DomainPair(**splits, class_names=class_names, description=description)

    mnist = download_dataset("mnist", timeout=timeout)
    [bsds] = download_dataset("bsds500", timeout=timeout)
    x_fit, y_fit = read_idx(mnist[0]), read_idx(mnist[1])
    x_test, y_test = read_idx(mnist[2]), read_idx(mnist[3])
    for x, y, what in ((x_fit, y_fit, "training"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or (len(y) and y.max() > 9):
            raise DatasetError(f"MNIST's {what} files do not fit together (images {x.shape}, labels {y.shape}); "
                               "delete them from the course cache and download them again.")
    images = extract(bsds) / "BSR" / "BSDS500" / "data" / "images"
    photos = {}
    for split in ("train", "test"):
        files = sorted((images / split).glob("*.jpg"))
        if not files:
            raise DatasetError(f"No photos in {images / split}: the BSDS500 archive is not as expected. Delete "
                               f"{bsds} and download it again.")
        photos[split] = [np.asarray(Image.open(f).convert("RGB")) for f in files]

    rng = np.random.default_rng(seed)
    n_val = len(x_fit) // 6  # 10,000 of MNIST's 60,000
    index = np.arange(len(x_fit))
    pools = {"train": index[: len(x_fit) - n_val], "val": index[len(x_fit) - n_val:]}

    def pick(candidates, labels, count):
        chosen = []
        for c in range(10):
            of_class = candidates[labels[candidates] == c]
            chosen.append(rng.permutation(of_class)[: count or len(of_class)])
        return np.concatenate(chosen)

    def resize(batch):
        if batch.shape[1] == size:
            return batch
        return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in batch])

    def gray_rgb(x):
        return np.repeat(x[..., None], 3, axis=-1)

    splits = {}
    for pool, count in (("train", per_class), ("val", val_per_class)):
        src = pick(pools[pool][0::2], y_fit, count)
        tgt = pick(pools[pool][1::2], y_fit, count)
        splits[f"source_{pool}"] = (resize(gray_rgb(x_fit[src])), y_fit[src].astype(np.int64))
        splits[f"target_{pool}"] = (resize(blend_mnist_m(x_fit[tgt], photos["train"], rng)), y_fit[tgt].astype(np.int64))
    test = pick(np.arange(len(x_test)), y_test, test_per_class)
    splits["target_test"] = (resize(blend_mnist_m(x_test[test], photos["test"], rng)), y_test[test].astype(np.int64))
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{n}_x": splits[n][0] for n in names}, **{f"{n}_y": splits[n][1] for n in names})
    tmp.replace(path)
    return DomainPair(**splits, class_names=class_names, description=description)


def pair_features(pair: DomainPair, make_extractor, name: str, progress: bool = True) -> dict:
    """``{split: (features, labels)}`` for every split of ``pair``, computed once by the function that
    ``make_extractor()`` returns (uint8 images ``(N, H, W, 3)`` -> features ``(N, D)``) and saved in the course cache
    as ``features/domain_pair-<name>-<digest>.npz``; a later call with the same pair and ``name`` reads the file and
    never builds the extractor."""
    import os

    from .paths import cache_dir

    path = cache_dir("features") / f"domain_pair-{name}-{pair.digest()}.npz"
    if path.exists():
        with np.load(path) as saved:
            return {split: (saved[f"{split}_x"], saved[f"{split}_y"]) for split in pair.splits()}
    extract = make_extractor()
    splits = pair.splits().items()
    if progress:
        from tqdm.auto import tqdm

        splits = tqdm(splits, desc="backbone features", unit="split")
    data = {split: (np.asarray(extract(x), np.float32), np.asarray(y, np.int64)) for split, (x, y) in splits}
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{s}_x": x for s, (x, _) in data.items()}, **{f"{s}_y": y for s, (_, y) in data.items()})
    os.replace(tmp, path)  # whole file or none: a second kernel never reads half of it
    return data
