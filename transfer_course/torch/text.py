"""Transfer for text in PyTorch: all-MiniLM-L6-v2 through Hugging Face transformers, a classifier on top of it.

The encoder (Devlin et al., 2019, BERT; Wang et al., 2020, MiniLM; Reimers & Gurevych, 2019, Sentence-BERT) maps
``input_ids`` and ``attention_mask`` ``(B, T)`` to one vector per token ``(B, T, 384)``. A sentence vector is the
mean of the real tokens' vectors, ``e = sum_t m_t h_t / sum_t m_t`` ``(B, 384)`` (:func:`mean_pool`), L2-normalised
for the sentence embedding. :class:`TextClassifier` puts a new linear head on the pooled vector; fine-tuning
trains the top ``k`` Transformer layers with a smaller learning rate than the head (:func:`parameter_groups`).

The lesson writes these steps out with torch first; this module is the same code as plumbing
(batching, progress bars, choosing the best epoch on validation).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..memory import release_memory
from ..training import class_indices
from ..text import (
    ENCODER,
    SCRATCH_EMBEDDING_RANGE,
    Tokenizer,
    check_texts,
    encoder_folder,
    length_batches,
    load_tokenizer,
)

__all__ = [
    "BagOfEmbeddings",
    "TextClassifier",
    "load_text_encoder",
    "load_tokenizer",
    "mean_pool",
    "parameter_groups",
    "predict_texts",
    "sentence_embeddings",
    "text_model",
    "train_head",
    "train_text_classifier",
]


def load_text_encoder(folder: str | Path | None = None) -> nn.Module:
    """all-MiniLM-L6-v2 as a ``transformers`` ``BertModel`` (offline, from the package's folder), in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    folder = Path(folder) if folder else encoder_folder()
    model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    return model.eval()


def mean_pool(token_vectors: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, H)`` token vectors and ``(B, T)`` mask -> ``(B, H)``: the mean over real (mask 1) tokens only."""
    if token_vectors.ndim != 3 or attention_mask.shape != token_vectors.shape[:2]:
        raise ValueError(f"mean_pool needs token vectors (B, T, H) and a mask (B, T); received "
                         f"{tuple(token_vectors.shape)} and {tuple(attention_mask.shape)}.")
    mask = attention_mask.unsqueeze(-1).to(token_vectors.dtype)
    return (token_vectors * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _warn_truncated(tokenizer: Tokenizer, texts: list[str]) -> None:
    tokenizer(texts)  # warns once, for the whole list, naming how many texts are cut


@torch.no_grad()
def sentence_embeddings(encoder: nn.Module, tokenizer: Tokenizer, texts, batch_size: int = 32,
                        normalize: bool = True, progress: bool = True) -> np.ndarray:
    """Texts -> ``(N, 384)`` float32 numpy sentence vectors (mean pooling, L2-normalised unless ``normalize=False``).
    Texts of similar length are batched together (less padding); the result is in the order of ``texts``."""
    from tqdm.auto import tqdm

    texts = check_texts(texts)
    _warn_truncated(tokenizer, texts)
    encoder.eval()
    out = np.zeros((len(texts), ENCODER["hidden"]), dtype=np.float32)
    for positions, batch in tqdm(length_batches(tokenizer, texts, batch_size), total=-(-len(texts) // batch_size),
                                 desc="encoding", unit="batch", disable=not progress, leave=False):
        ids, mask = torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])
        hidden = encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        pooled = mean_pool(hidden, mask)
        out[positions] = (nn.functional.normalize(pooled, dim=1) if normalize else pooled).numpy()
    release_memory()
    return out


class TextClassifier(nn.Module):
    """Encoder -> mean pooling -> dropout -> ``nn.Linear(384, classes)``; ``forward(input_ids, attention_mask)``."""

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(ENCODER["hidden"], num_classes)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.head(self.dropout(nn.functional.normalize(mean_pool(hidden, attention_mask), dim=1)))


def text_model(num_classes: int, encoder: nn.Module | None = None, dropout: float = 0.1) -> TextClassifier:
    """A :class:`TextClassifier` on all-MiniLM-L6-v2 (loaded when ``encoder`` is None)."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; received {num_classes!r}.")
    return TextClassifier(encoder if encoder is not None else load_text_encoder(), num_classes, dropout)


def parameter_groups(model: TextClassifier, head_lr: float, encoder_lr: float, top_layers: int) -> list[dict]:
    """Freeze the encoder except its top ``top_layers`` Transformer layers; two optimizer groups:
    ``{"params": head, "lr": head_lr}`` and ``{"params": top layers, "lr": encoder_lr}``."""
    layers = model.encoder.encoder.layer
    if not isinstance(top_layers, int) or not 0 <= top_layers <= len(layers):
        raise ValueError(f"top_layers must be an int from 0 to {len(layers)}; received {top_layers!r}.")
    for p in model.encoder.parameters():
        p.requires_grad = False
    tuned = [p for layer in layers[len(layers) - top_layers:] for p in layer.parameters()]
    for p in tuned:
        p.requires_grad = True
    groups = [{"params": list(model.head.parameters()), "lr": head_lr, "name": "head"}]
    if tuned:
        groups.append({"params": tuned, "lr": encoder_lr, "name": f"top {top_layers} encoder layers"})
    return groups


@torch.no_grad()
def predict_texts(model: nn.Module, tokenizer: Tokenizer, texts, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``(N, classes)`` of a :class:`TextClassifier` (or :class:`BagOfEmbeddings`)."""
    texts = check_texts(texts)
    was_training = model.training
    model.eval()
    probs = None
    for positions, b in length_batches(tokenizer, texts, batch_size):
        p = torch.softmax(model(torch.from_numpy(b["input_ids"]), torch.from_numpy(b["attention_mask"])), 1).numpy()
        probs = np.zeros((len(texts), p.shape[1]), dtype=np.float32) if probs is None else probs
        probs[positions] = p
    model.train(was_training)
    return probs


def train_text_classifier(model: nn.Module, tokenizer: Tokenizer, texts, labels, val=None, epochs: int = 5,
                          batch_size: int = 16, groups: list[dict] | None = None, lr: float = 1e-3,
                          seed: int = 0, progress: bool = True) -> dict:
    """Train with AdamW on the parameter ``groups`` (or all trainable parameters at ``lr``); after each epoch
    measure ``val`` = (texts, labels) and keep the best epoch's weights. Returns a history dict of lists."""
    from tqdm.auto import tqdm

    texts, labels = check_texts(texts), class_indices(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels: give one label per text.")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = groups or [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in params], weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    history = {"loss": [], "accuracy": [], "val_accuracy": []}
    best, best_state = -1.0, None
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        order = rng.permutation(len(texts))
        total, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], warn=False)
            y = torch.from_numpy(labels[idx]).long()
            logits = model(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"]))
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        history["loss"].append(total / len(texts))
        history["accuracy"].append(correct / len(texts))
        if val is not None:
            acc = float((predict_texts(model, tokenizer, val[0]).argmax(1) == np.asarray(val[1])).mean())
            history["val_accuracy"].append(acc)
            bar.set_postfix(val_accuracy=f"{acc:.3f}")
            if acc > best:  # keep only what training changes: the trainable parameters
                best, best_state = acc, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
        history["best_epoch"] = int(np.argmax(history["val_accuracy"])) + 1
    model.eval()
    release_memory()  # hand the freed activations back to the system
    return history


def train_head(features, labels, num_classes: int, epochs: int = 300, lr: float = 0.05, weight_decay: float = 1e-3,
               seed: int = 0) -> nn.Linear:
    """A new ``nn.Linear(H, classes)`` trained full-batch with Adam on cached (frozen) features."""
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels)).long()
    head = nn.Linear(x.shape[1], num_classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(head(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


class BagOfEmbeddings(nn.Module):
    """From scratch: word-piece embeddings (random init) averaged over real tokens -> linear layer.

    Initialised as the TensorFlow side's Keras layers are (embeddings uniform in ±0.05, the linear layer Glorot-uniform
    with zero bias), not with PyTorch's defaults (``nn.Embedding`` draws N(0, 1)): the two frameworks' baselines then
    start from the same distribution."""

    def __init__(self, vocab_size: int, num_classes: int, dim: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.head = nn.Linear(dim, num_classes)
        with torch.no_grad():
            nn.init.uniform_(self.embed.weight, -SCRATCH_EMBEDDING_RANGE, SCRATCH_EMBEDDING_RANGE)
            self.embed.weight[0] = 0  # [PAD]: masked out anyway, and padding_idx keeps it out of training
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.head(mean_pool(self.embed(input_ids), attention_mask))
