"""Transfer for text in Keras 3: a small, readable port of all-MiniLM-L6-v2 and a classifier on top of it.

The encoder is BERT's (Devlin et al., 2019) with MiniLM's size (Wang et al., 2020): 6 layers, hidden 384, 12 heads.

    embeddings: E_word[ids] + E_pos[0..T-1] + E_type[0] -> LayerNorm           (B, T, 384)
    each layer (post-LayerNorm, Vaswani et al., 2017):
        a = LayerNorm(x + MultiHeadAttention(x, x, mask))                      12 heads of 32
        x = LayerNorm(a + Dense_384(GELU(Dense_1536(a))))                      exact (erf) GELU
    sentence vector: mean over real tokens, sum_t m_t x_t / sum_t m_t -> L2 normalisation      (B, 384)

The weights are read from the same ``model.safetensors`` as the PyTorch side with ``safetensors.numpy`` (no
torch): ``keras.layers.MultiHeadAttention`` takes BERT's query/key/value/output matrices reshaped to
``(384, 12, 32)`` / ``(12, 32, 384)``. A parity test checks that both frameworks give the same sentence embeddings.
Importing this module never imports torch (nor the weights package, whose ``__init__`` may).
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

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
    "load_minilm_weights",
    "load_text_encoder",
    "load_tokenizer",
    "mean_pool",
    "minilm_encoder",
    "parameter_groups",
    "predict_texts",
    "sentence_embeddings",
    "text_model",
    "train_head",
    "train_text_classifier",
]

_EPS = ENCODER["layer_norm_eps"]


class _Embeddings(layers.Layer):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.word = layers.Embedding(ENCODER["vocab"], ENCODER["hidden"], name="word")
        self.position = layers.Embedding(ENCODER["positions"], ENCODER["hidden"], name="position")
        self.token_type = layers.Embedding(2, ENCODER["hidden"], name="token_type")
        self.norm = layers.LayerNormalization(epsilon=_EPS, name="norm")
        self.dropout = layers.Dropout(dropout)

    def build(self, input_shape):
        for layer in (self.word, self.position, self.token_type):
            layer.build(input_shape)
        self.norm.build((*input_shape, ENCODER["hidden"]))

    def call(self, input_ids, training=None):
        positions = ops.arange(ops.shape(input_ids)[1])[None, :]
        x = self.word(input_ids) + self.position(positions) + self.token_type(ops.zeros_like(input_ids))
        return self.dropout(self.norm(x), training=training)


class _Block(layers.Layer):
    """One post-LayerNorm Transformer encoder layer: self-attention, then a GELU feed-forward network."""

    def __init__(self, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        h, heads = ENCODER["hidden"], ENCODER["heads"]
        self.attention = layers.MultiHeadAttention(heads, h // heads, dropout=dropout, name="attention")
        self.attention_norm = layers.LayerNormalization(epsilon=_EPS, name="attention_norm")
        self.intermediate = layers.Dense(ENCODER["intermediate"], name="intermediate")
        self.output_dense = layers.Dense(h, name="output")
        self.output_norm = layers.LayerNormalization(epsilon=_EPS, name="output_norm")
        self.dropout = layers.Dropout(dropout)

    def build(self, input_shape):
        self.attention.build(input_shape, input_shape)
        self.attention_norm.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build((*input_shape[:-1], ENCODER["intermediate"]))
        self.output_norm.build(input_shape)

    def call(self, x, attention_mask, training=None):
        pair_mask = ops.cast(attention_mask[:, None, :], "bool") & ops.ones_like(attention_mask, "bool")[:, :, None]
        a = self.attention(x, x, attention_mask=pair_mask, training=training)  # keys at padding get no weight
        a = self.attention_norm(x + self.dropout(a, training=training))
        f = self.output_dense(keras.activations.gelu(self.intermediate(a), approximate=False))
        return self.output_norm(a + self.dropout(f, training=training))


def minilm_encoder(dropout: float = 0.1, name: str = "encoder") -> keras.Model:
    """Keras model ``{"input_ids", "attention_mask"}`` (B, T) -> token vectors (B, T, 384). Weights are random."""
    ids = keras.Input((None,), dtype="int32", name="input_ids")
    mask = keras.Input((None,), dtype="int32", name="attention_mask")
    x = _Embeddings(dropout, name="embeddings")(ids)
    for i in range(ENCODER["layers"]):
        x = _Block(dropout, name=f"layer_{i}")(x, mask)
    return keras.Model({"input_ids": ids, "attention_mask": mask}, x, name=name)


def load_minilm_weights(encoder: keras.Model, folder: str | Path | None = None) -> None:
    """Copy all-MiniLM-L6-v2's weights from ``model.safetensors`` (read with ``safetensors.numpy``) into ``encoder``."""
    from safetensors.numpy import load_file

    folder = Path(folder) if folder else encoder_folder()
    w = load_file(str(folder / "model.safetensors"))
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    h, heads = ENCODER["hidden"], ENCODER["heads"]

    def dense(prefix):  # torch Linear (out, in) -> Keras Dense kernel (in, out), bias
        return [w[f"{prefix}.weight"].T, w[f"{prefix}.bias"]]

    def norm(prefix):
        return [w[f"{prefix}.weight"], w[f"{prefix}.bias"]]

    emb = encoder.get_layer("embeddings")
    emb.word.set_weights([w["embeddings.word_embeddings.weight"]])
    emb.position.set_weights([w["embeddings.position_embeddings.weight"]])
    emb.token_type.set_weights([w["embeddings.token_type_embeddings.weight"]])
    emb.norm.set_weights(norm("embeddings.LayerNorm"))
    for i in range(ENCODER["layers"]):
        block, p = encoder.get_layer(f"layer_{i}"), f"encoder.layer.{i}"
        qkv = []
        for part in ("query", "key", "value"):
            kernel, bias = dense(f"{p}.attention.self.{part}")
            qkv += [kernel.reshape(h, heads, h // heads), bias.reshape(heads, h // heads)]
        kernel, bias = dense(f"{p}.attention.output.dense")
        block.attention.set_weights(qkv + [kernel.reshape(heads, h // heads, h), bias])
        block.attention_norm.set_weights(norm(f"{p}.attention.output.LayerNorm"))
        block.intermediate.set_weights(dense(f"{p}.intermediate.dense"))
        block.output_dense.set_weights(dense(f"{p}.output.dense"))
        block.output_norm.set_weights(norm(f"{p}.output.LayerNorm"))


def load_text_encoder(folder: str | Path | None = None, dropout: float = 0.1) -> keras.Model:
    """The Keras port of all-MiniLM-L6-v2 with its pretrained weights (from the package, or the verified download)."""
    encoder = minilm_encoder(dropout)
    load_minilm_weights(encoder, folder)
    return encoder


def mean_pool(token_vectors, attention_mask):
    """``(B, T, H)`` token vectors and ``(B, T)`` mask -> ``(B, H)``: the mean over real (mask 1) tokens only."""
    if len(token_vectors.shape) != 3 or tuple(attention_mask.shape) != tuple(token_vectors.shape[:2]):
        raise ValueError(f"mean_pool needs token vectors (B, T, H) and a mask (B, T); received "
                         f"{tuple(token_vectors.shape)} and {tuple(attention_mask.shape)}.")
    mask = ops.cast(attention_mask, token_vectors.dtype)[:, :, None]
    return ops.sum(token_vectors * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-9)


def _inputs(batch: dict) -> dict:
    return {"input_ids": tf.constant(batch["input_ids"], tf.int32),
            "attention_mask": tf.constant(batch["attention_mask"], tf.int32)}


def sentence_embeddings(encoder: keras.Model, tokenizer: Tokenizer, texts, batch_size: int = 32,
                        normalize: bool = True, progress: bool = True) -> np.ndarray:
    """Texts -> ``(N, 384)`` float32 numpy sentence vectors (mean pooling, L2-normalised unless ``normalize=False``).
    Texts of similar length are batched together (less padding); the result is in the order of ``texts``."""
    from tqdm.auto import tqdm

    texts = check_texts(texts)
    tokenizer(texts)  # warns once, for the whole list, naming how many texts are cut
    out = np.zeros((len(texts), ENCODER["hidden"]), dtype=np.float32)
    for positions, batch in tqdm(length_batches(tokenizer, texts, batch_size), total=-(-len(texts) // batch_size),
                                 desc="encoding", unit="batch", disable=not progress, leave=False):
        batch = _inputs(batch)
        pooled = mean_pool(encoder(batch, training=False), batch["attention_mask"])
        out[positions] = ops.convert_to_numpy(ops.normalize(pooled, axis=1) if normalize else pooled)
    release_memory()
    return out


class TextClassifier(keras.Model):
    """Encoder -> mean pooling -> L2 normalisation -> dropout -> ``Dense(classes)`` logits."""

    def __init__(self, encoder: keras.Model, num_classes: int, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.dropout = layers.Dropout(dropout)
        self.head = layers.Dense(num_classes, name="head")
        self.head.build((None, ENCODER["hidden"]))

    def call(self, inputs, training=None):
        pooled = mean_pool(self.encoder(inputs, training=training), inputs["attention_mask"])
        return self.head(self.dropout(ops.normalize(pooled, axis=1), training=training))


def text_model(num_classes: int, encoder: keras.Model | None = None, dropout: float = 0.1) -> TextClassifier:
    """A :class:`TextClassifier` on all-MiniLM-L6-v2 (loaded when ``encoder`` is None)."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; received {num_classes!r}.")
    model = TextClassifier(encoder if encoder is not None else load_text_encoder(), num_classes, dropout)
    model({"input_ids": tf.constant([[101, 102]], tf.int32), "attention_mask": tf.constant([[1, 1]], tf.int32)})  # build
    return model


def parameter_groups(model: TextClassifier, head_lr: float, encoder_lr: float, top_layers: int) -> list[dict]:
    """Freeze the encoder except its top ``top_layers`` layers; groups ``{"variables", "lr", "name"}`` for the head
    and for the top layers (one optimizer each, as in lesson 03)."""
    blocks = [model.encoder.get_layer(f"layer_{i}") for i in range(ENCODER["layers"])]
    if not isinstance(top_layers, int) or not 0 <= top_layers <= len(blocks):
        raise ValueError(f"top_layers must be an int from 0 to {len(blocks)}; received {top_layers!r}.")
    for layer in model.encoder.layers:
        layer.trainable = False
    tuned = blocks[len(blocks) - top_layers:]
    for block in tuned:
        block.trainable = True
    groups = [{"variables": list(model.head.trainable_variables), "lr": head_lr, "name": "head"}]
    if tuned:
        groups.append({"variables": [v for b in tuned for v in b.trainable_variables], "lr": encoder_lr,
                       "name": f"top {top_layers} encoder layers"})
    return groups


def predict_texts(model: keras.Model, tokenizer: Tokenizer, texts, batch_size: int = 32) -> np.ndarray:
    """Class probabilities ``(N, classes)`` of a :class:`TextClassifier` (or :class:`BagOfEmbeddings`)."""
    texts = check_texts(texts)
    probs = None
    for positions, batch in length_batches(tokenizer, texts, batch_size):
        p = ops.convert_to_numpy(ops.softmax(model(_inputs(batch), training=False), axis=1))
        probs = np.zeros((len(texts), p.shape[1]), dtype=np.float32) if probs is None else probs
        probs[positions] = p
    return probs


def _compiled_step(model: keras.Model, groups: list[dict]):
    """A compiled training step for ``model`` with one AdamW per group, kept on the model and reused.

    TensorFlow does not give back all the memory of a compiled graph when the graph is deleted (about 50 MB per
    fine-tuning run of lesson 07), so a step compiled anew in every call would make a few-shot curve grow the
    process run by run. The model keeps one graph for its current groups (the same variables, trainable or not);
    on every call the optimizers are reset to their initial state and given the groups' learning rates.
    ``None`` dimensions: every batch length runs in the same graph.
    """
    key = tuple(tuple((id(v), bool(v.trainable)) for v in g["variables"]) for g in groups)
    cached = model.__dict__.get("_course_train_step")
    if cached is not None and cached[0] == key:
        _, step, optimizers = cached
        for optimizer, group in zip(optimizers, groups):  # a fresh optimizer: no step taken, no moment estimates
            for variable in optimizer.variables:
                variable.assign(ops.zeros_like(variable))
            optimizer.learning_rate = float(group["lr"])  # the learning rate is a variable too: set it again
        return step
    optimizers = [keras.optimizers.AdamW(g["lr"], weight_decay=0.01) for g in groups]
    variables = [list(g["variables"]) for g in groups]
    for optimizer, group in zip(optimizers, variables):
        optimizer.build(group)  # the moment estimates exist before the graph is traced
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ids = tf.TensorSpec((None, None), tf.int32)

    @tf.function(input_signature=[{"input_ids": ids, "attention_mask": ids}, tf.TensorSpec((None,), tf.int64)])
    def step(inputs, y):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = loss_fn(y, logits)
        grads = tape.gradient(loss, variables)
        for optimizer, g, v in zip(optimizers, grads, variables):
            optimizer.apply_gradients(zip(g, v))
        return loss, logits

    model.__dict__["_course_train_step"] = (key, step, optimizers)  # replaces the step of other groups
    return step


def train_text_classifier(model: keras.Model, tokenizer: Tokenizer, texts, labels, val=None, epochs: int = 5,
                          batch_size: int = 16, groups: list[dict] | None = None, lr: float = 1e-3,
                          seed: int = 0, progress: bool = True) -> dict:
    """Train with one AdamW per parameter group (or all trainable variables at ``lr``); after each epoch measure
    ``val`` = (texts, labels) and keep the best epoch's weights. Returns a history dict of lists."""
    from tqdm.auto import tqdm

    texts, labels = check_texts(texts), class_indices(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels: give one label per text.")
    release_memory()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    sample = _inputs(tokenizer(texts[:1], warn=False))
    model(sample)  # build
    groups = groups or [{"variables": list(model.trainable_variables), "lr": lr}]
    step = _compiled_step(model, groups)

    history = {"loss": [], "accuracy": [], "val_accuracy": []}
    best, best_weights = -1.0, None
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress, leave=False)
    for _ in bar:
        order = rng.permutation(len(texts))
        total, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = _inputs(tokenizer([texts[i] for i in idx], warn=False))
            loss, logits = step(batch, tf.constant(labels[idx], tf.int64))
            total += float(loss) * len(idx)
            correct += int(np.sum(np.argmax(logits, 1) == labels[idx]))
        history["loss"].append(total / len(texts))
        history["accuracy"].append(correct / len(texts))
        if val is not None:
            acc = float((predict_texts(model, tokenizer, val[0]).argmax(1) == np.asarray(val[1])).mean())
            history["val_accuracy"].append(acc)
            bar.set_postfix(val_accuracy=f"{acc:.3f}")
            if acc > best:  # keep only what training changes: the trainable variables
                best, best_weights = acc, [np.array(v) for v in model.trainable_variables]
    if best_weights is not None:
        for variable, value in zip(model.trainable_variables, best_weights):
            variable.assign(value)
        history["best_epoch"] = int(np.argmax(history["val_accuracy"])) + 1
    release_memory()  # hand the freed activations back to the system
    return history


def train_head(features, labels, num_classes: int, epochs: int = 300, lr: float = 0.05, weight_decay: float = 1e-3,
               seed: int = 0) -> layers.Dense:
    """A new ``Dense(classes)`` trained full-batch with Adam on cached (frozen) features."""
    keras.utils.set_random_seed(seed)
    x = tf.constant(np.asarray(features), tf.float32)
    y = tf.constant(np.asarray(labels))
    head = layers.Dense(num_classes)
    head.build(x.shape)
    optimizer = keras.optimizers.Adam(lr)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, head(x)) + weight_decay / 2 * tf.reduce_sum(head.kernel ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, head.trainable_variables), head.trainable_variables))

    for _ in range(epochs):
        step()
    return head


class BagOfEmbeddings(keras.Model):
    """From scratch: word-piece embeddings (random init) averaged over real tokens -> Dense layer.

    Keras' initialisers, written out (the PyTorch side uses the same): embeddings uniform in ±0.05, the Dense layer
    Glorot-uniform with zero bias."""

    def __init__(self, vocab_size: int, num_classes: int, dim: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.embed = layers.Embedding(vocab_size, dim,
                                      embeddings_initializer=keras.initializers.RandomUniform(
                                          -SCRATCH_EMBEDDING_RANGE, SCRATCH_EMBEDDING_RANGE))
        self.head = layers.Dense(num_classes, kernel_initializer="glorot_uniform", bias_initializer="zeros")

    def call(self, inputs, training=None):
        return self.head(mean_pool(self.embed(inputs["input_ids"]), inputs["attention_mask"]))
