"""Checks for lesson 07, transfer for text: mean pooling with the attention mask, the parameter groups of a
fine-tune, cosine similarities of sentence vectors.

Each compares the student's function with a closed form computed here in NumPy (the masked mean, the cosine),
or with the model's own structure (which parameters belong to which layer), never with a copy of the solution."""
from __future__ import annotations

import importlib

import numpy as np

from ._base import check, expect, from_numpy, to_numpy

TOPIC = "07_nlp_transfer"


# --- mean pooling with the attention mask ----------------------------------------------------------------------
@check(TOPIC, "mean_pooling")
def _mean_pooling(fn, framework: str) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)
    x[mask == 0] += 10.0  # padding vectors far from the real ones: including them is easy to spot
    out = fn(from_numpy(x, framework), from_numpy(mask, framework))
    expect(out is not None, "mean_pooling returned None: return the (batch, hidden) tensor.")
    got = to_numpy(out)
    expect(got.shape == (3, 4), f"the result has shape {got.shape}; one vector per text is (batch, hidden) = (3, 4). "
           "Average over the token axis (axis 1), not over the hidden axis.")
    want = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    if np.allclose(got, x.mean(1), atol=1e-4):
        raise_msg = ("this is the mean over ALL tokens, padding included: a short text in a padded batch gets a "
                     "different vector than alone. Multiply by the mask, then divide by the number of real tokens.")
        expect(False, raise_msg)
    expect(not np.allclose(got, (x * mask[..., None]).sum(1), atol=1e-4),
           "this is the masked SUM: divide by the number of real tokens per text (mask.sum over axis 1).")
    expect(not np.allclose(got, (x * mask[..., None]).sum(1) / x.shape[1], atol=1e-4),
           "you divided by the padded length T; divide by the number of real tokens of each text instead.")
    expect(np.allclose(got, want, atol=1e-4), "the values differ from the mean over real tokens, "
           "sum_t m_t h_t / sum_t m_t. Check that the mask is broadcast over the hidden axis (mask[:, :, None]).")
    return "the mean over real tokens only: padding does not change a text's vector."


# --- parameter groups ------------------------------------------------------------------------------------------
def _small_classifier(framework: str):
    if framework == "torch":
        transformers = importlib.import_module("transformers")
        text = importlib.import_module("transfer_course.torch.text")
        config = transformers.BertConfig(vocab_size=50, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                         intermediate_size=64, max_position_embeddings=16)
        importlib.import_module("torch").manual_seed(0)
        return text.TextClassifier(transformers.BertModel(config, add_pooling_layer=False), 3)
    text = importlib.import_module("transfer_course.tensorflow.text")
    return text.TextClassifier(text.minilm_encoder(), 3)


def _layer_ids(model, framework: str) -> list[set]:
    """ids of the parameters of each encoder layer, bottom to top."""
    if framework == "torch":
        return [{id(p) for p in layer.parameters()} for layer in model.encoder.encoder.layer]
    return [{id(v) for v in model.encoder.get_layer(f"layer_{i}").weights} for i in range(6)]


def _group_ids(group: dict, framework: str) -> set:
    key = "params" if framework == "torch" else "variables"
    expect(isinstance(group, dict) and key in group and "lr" in group,
           f"each group must be a dict with '{key}' and 'lr' keys; received {group!r:.120}.")
    return {id(p) for p in group[key]}


def _frozen_ids(model, framework: str) -> set:
    if framework == "torch":
        return {id(p) for p in model.encoder.parameters() if not p.requires_grad}
    trainable = {id(v) for v in model.encoder.trainable_weights}
    return {id(v) for v in model.encoder.weights} - trainable


def _all_encoder_ids(model, framework: str) -> set:
    if framework == "torch":
        return {id(p) for p in model.encoder.parameters()}
    return {id(v) for v in model.encoder.weights}


def _head_ids(model, framework: str) -> set:
    if framework == "torch":
        return {id(p) for p in model.head.parameters()}
    return {id(v) for v in model.head.weights}


@check(TOPIC, "encoder_param_groups")
def _encoder_param_groups(fn, framework: str) -> str:
    model = _small_classifier(framework)
    groups = fn(model, 1e-3, 2e-5, 2)
    expect(isinstance(groups, (list, tuple)) and len(groups) == 2,
           f"return a list of two groups (the head, then the top encoder layers); received {type(groups).__name__}"
           f"{' of length ' + str(len(groups)) if isinstance(groups, (list, tuple)) else ''}.")
    head, top = (_group_ids(g, framework) for g in groups)
    layers = _layer_ids(model, framework)
    lrs = [float(g["lr"]) for g in groups]
    expect(lrs != [2e-5, 1e-3], "the learning rates are swapped: the new head gets the LARGER rate (head_lr), the "
           "pretrained layers the smaller one (encoder_lr).")
    expect(lrs == [1e-3, 2e-5], f"learning rates {lrs}: the head group needs head_lr, the encoder group encoder_lr.")
    expect(head == _head_ids(model, framework), "the first group must hold exactly the head's parameters "
           "(its weight and bias).")
    expect(not head & top, "a parameter is in both groups: each parameter may appear in one group only.")
    expect(top != layers[0] | layers[1], "you chose the BOTTOM two layers; fine-tune the TOP ones (the last two), "
           "which hold the most task-specific features.")
    expect(top == layers[4] | layers[5], "the second group must hold exactly the parameters of the top "
           f"2 encoder layers (layers 4 and 5); it holds {len(top)} parameters, they have {len(layers[4] | layers[5])}.")
    frozen = _frozen_ids(model, framework)
    others = _all_encoder_ids(model, framework) - top
    expect(others <= frozen, "the encoder's other parameters (embeddings and layers 0-3) are still trainable: freeze "
           "them (requires_grad = False in PyTorch, trainable = False in Keras).")
    expect(not top & frozen, "the top layers are in a group but frozen: make them trainable.")
    head_frozen = ({id(p) for p in model.head.parameters() if not p.requires_grad} if framework == "torch"
                   else {id(v) for v in model.head.weights} - {id(v) for v in model.head.trainable_weights})
    expect(not head_frozen, "the head is in its group but frozen (you froze every parameter, then unfroze only the "
           "top layers?): the new head must stay trainable, or it never learns.")
    return "head at the larger rate, top layers at the smaller one, everything else frozen."


# --- cosine similarities ---------------------------------------------------------------------------------------
@check(TOPIC, "cosine_similarities")
def _cosine_similarities(fn, framework: str) -> str:
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (4, 6)).astype(np.float32) * np.array([[1], [3], [0.5], [2]], np.float32)
    b = rng.normal(0, 1, (5, 6)).astype(np.float32) * np.array([[2], [1], [4], [0.3], [1]], np.float32)
    out = fn(from_numpy(a, framework), from_numpy(b, framework))
    expect(out is not None, "cosine_similarities returned None: return the (len(a), len(b)) matrix.")
    got = to_numpy(out)
    expect(got.shape == (4, 5), f"the result has shape {got.shape}; one similarity per pair is (len(a), len(b)) = "
           "(4, 5): multiply a by the transpose of b.")
    an, bn = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    want = an @ bn.T
    expect(not np.allclose(got, a @ b.T, atol=1e-3), "this is the plain dot product: divide each vector by its "
           "length first (L2-normalise the rows), so long vectors do not win.")
    expect(not np.allclose(got, 1 - want, atol=1e-3), "this is the cosine DISTANCE 1 - cos; return the similarity.")
    wrong_axis = (a / np.linalg.norm(a, axis=0, keepdims=True)) @ (b / np.linalg.norm(b, axis=0, keepdims=True)).T
    expect(not np.allclose(got, wrong_axis, atol=1e-3), "you normalised along the wrong axis (over the texts): "
           "normalise each row, axis 1.")
    expect(np.allclose(got, want, atol=1e-4), "the values differ from cos(a_i, b_j) = a_i . b_j / (|a_i| |b_j|).")
    return "cosine similarities in [-1, 1], independent of the vectors' lengths."
