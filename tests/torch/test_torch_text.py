"""Lesson 07, PyTorch side: the encoder loaded with transformers gives sentence-transformers' own vectors, mean
pooling ignores padding, the classifier handles a batch of one, parameter groups freeze what they should, and the
training loop only changes what it trains."""
import numpy as np
import pytest
import torch

from transfer_course.text import load_tokenizer
from transfer_course.torch.text import (
    BagOfEmbeddings,
    load_text_encoder,
    mean_pool,
    parameter_groups,
    predict_texts,
    sentence_embeddings,
    text_model,
    train_head,
    train_text_classifier,
)

TEXTS = ["Return the arc cosine of x.", "Close the socket.", "Sleep.",
         " ".join(["a long text about threads and locks"] * 50)]


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder()


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(max_length=256)


def test_same_vectors_as_sentence_transformers(encoder, tokenizer):
    from sentence_transformers import SentenceTransformer

    from transfer_course.text import encoder_folder

    reference = SentenceTransformer(str(encoder_folder()), device="cpu").encode(TEXTS)  # max 256 word pieces
    with pytest.warns(UserWarning, match="1 of 4 texts"):
        ours = sentence_embeddings(encoder, tokenizer, TEXTS, batch_size=3, progress=False)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    assert (ours * reference).sum(1).min() > 0.9999


def test_mean_pool_ignores_padding():
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = mean_pool(x, mask)
    assert torch.allclose(pooled[0], x[0, :2].mean(0)) and torch.allclose(pooled[1], x[1].mean(0))
    with pytest.raises(ValueError, match=r"mask \(B, T\)"):
        mean_pool(x, mask[:, :3])


def test_classifier_batch_of_one_and_parameter_groups(encoder, tokenizer):
    import copy

    model = text_model(3, encoder=copy.deepcopy(encoder))
    probs = predict_texts(model, tokenizer, ["Sleep."])
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1, atol=1e-5)
    groups = parameter_groups(model, 1e-3, 2e-5, 2)
    assert [g["lr"] for g in groups] == [1e-3, 2e-5]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()
                         if n.startswith(("head.", "encoder.encoder.layer.4.", "encoder.encoder.layer.5."))}
    with pytest.raises(ValueError, match="top_layers must be an int from 0 to 6"):
        parameter_groups(model, 1e-3, 2e-5, 7)
    with pytest.raises(ValueError, match="num_classes"):
        text_model(1, encoder=encoder)


def test_training_changes_only_the_top_layers_and_the_head(encoder, tokenizer):
    import copy

    model = text_model(2, encoder=copy.deepcopy(encoder))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = parameter_groups(model, 1e-2, 1e-4, 1)
    texts, labels = ["Close the socket.", "Open a connection.", "Return the sine.", "Round a number."], [0, 0, 1, 1]
    history = train_text_classifier(model, tokenizer, texts, labels, val=(texts, labels), epochs=2, batch_size=2,
                                    groups=groups, progress=False)
    assert len(history["val_accuracy"]) == 2 and 1 <= history["best_epoch"] <= 2
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(("head.", "encoder.encoder.layer.5.")) for n in changed)
    with pytest.raises(ValueError, match="4 texts but 3 labels"):
        train_text_classifier(model, tokenizer, texts, labels[:3], epochs=1, progress=False)
    with pytest.raises(ValueError, match="whole numbers"):  # as on the TensorFlow side: 0.5 is not a class
        train_text_classifier(model, tokenizer, texts, [0, 0.5, 1, 1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="empty or whitespace-only"):
        train_text_classifier(model, tokenizer, texts[:3] + [" "], labels, epochs=1, progress=False)


def test_head_and_scratch_model_learn(tokenizer):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(1, 0.3, (10, 8)), rng.normal(-1, 0.3, (10, 8))]).astype(np.float32)
    head = train_head(x, np.repeat([0, 1], 10), 2)
    assert (head(torch.from_numpy(x)).argmax(1).numpy() == np.repeat([0, 1], 10)).all()
    torch.manual_seed(0)
    bag = BagOfEmbeddings(tokenizer.vocab_size, 2, dim=8)
    texts, labels = ["socket server", "network socket", "sine cosine", "cosine tangent"], [0, 0, 1, 1]
    train_text_classifier(bag, tokenizer, texts, labels, epochs=40, lr=0.05, batch_size=4, progress=False)
    assert (predict_texts(bag, tokenizer, texts).argmax(1) == labels).all()


def test_scratch_model_starts_like_the_tensorflow_one(tokenizer):
    """Embeddings uniform in ±0.05 ([PAD] zero), Glorot-uniform head, zero bias: Keras' defaults, not nn.Embedding's N(0, 1)."""
    torch.manual_seed(0)
    bag = BagOfEmbeddings(tokenizer.vocab_size, 5, dim=64)
    w = bag.embed.weight.detach().numpy()
    assert np.abs(w).max() <= 0.05 and not w[0].any()
    assert abs(w[1:].std() - 0.05 / np.sqrt(3)) < 0.001  # the uniform's spread, far from N(0, 1)'s 1.0
    limit = np.sqrt(6 / (64 + 5))
    head = bag.head.weight.detach().numpy()
    assert np.abs(head).max() <= limit and head.std() > limit / 3 and not bag.head.bias.detach().numpy().any()
