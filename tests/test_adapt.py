"""The framework-neutral part of domain adaptation: the DANN schedule, the CORAL reference, the embedded domain pair
and the errors for pairs that cannot be adapted."""
import numpy as np
import pytest

from transfer_course.adapt import (
    METHODS,
    DomainPair,
    adapt_settings,
    check_domains,
    check_lambda,
    check_method,
    coral_numpy,
    dann_lambda,
    domain_separability,
    gap_closed,
    make_domain_pair,
    mean_std,
    negative_scan,
    pair_features,
)


def test_dann_schedule_is_the_papers_formula():
    p = np.linspace(0, 1, 11)
    assert np.allclose(dann_lambda(p), 2 / (1 + np.exp(-10 * p)) - 1)
    assert dann_lambda(0.0) == 0.0 and 0.99 < dann_lambda(1.0) < 1.0
    assert np.all(np.diff(dann_lambda(p)) > 0)
    with pytest.raises(ValueError, match="progress must lie in"):
        dann_lambda(1.5)


def test_coral_reference_against_the_formula_written_out():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) * 2
    ca = (a - a.mean(0)).T @ (a - a.mean(0)) / 6
    cb = (b - b.mean(0)).T @ (b - b.mean(0)) / 4
    assert np.isclose(coral_numpy(a, b), ((ca - cb) ** 2).sum() / (4 * 9))
    assert coral_numpy(a, a) == 0.0
    with pytest.raises(ValueError, match="same d"):
        coral_numpy(a, b[:, :2])


def test_gap_closed_and_mean_std():
    assert gap_closed(0.6, 0.8, 0.7) == pytest.approx(0.5)
    assert gap_closed(0.6, 0.8, 0.55) < 0
    with pytest.raises(ValueError, match="no gap to close"):
        gap_closed(0.8, 0.7, 0.75)
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1))


@pytest.mark.parametrize("bad,error,match", [(-0.1, ValueError, ">= 0"), (float("nan"), ValueError, "finite"),
                                             (True, TypeError, "number"), ("1", TypeError, "number")])
def test_lambda_must_be_a_number_at_least_zero(bad, error, match):
    with pytest.raises(error, match=match):
        check_lambda(bad)
    assert check_lambda(0) == 0.0


def test_unknown_method_lists_the_methods():
    assert check_method("dann") == "dann"
    with pytest.raises(ValueError, match="Unknown adaptation method 'mmd'.*adabn, coral, dann"):
        check_method("mmd")
    assert METHODS == ("source-only", "target-only", "adabn", "coral", "dann")
    with pytest.raises(ValueError, match="Unknown profile"):
        adapt_settings("huge")


def _images(n, size=8, channels=3):
    return np.zeros((n, size, size, channels), np.uint8)


def test_pairs_that_cannot_be_adapted_are_refused():
    y = np.arange(4) % 2
    with pytest.raises(ValueError, match="different shapes: \\(8, 8, 3\\) vs \\(16, 16, 3\\)"):
        check_domains((_images(4), y), _images(4, 16))
    with pytest.raises(ValueError, match="different channel counts"):
        check_domains((_images(4), y), _images(4, channels=1))
    with pytest.raises(ValueError, match="target set is empty"):
        check_domains((_images(4), y), _images(0))
    with pytest.raises(ValueError, match="classes the source training split does not: \\['c'\\]"):
        check_domains((_images(4), y), _images(4), class_names=["a", "b", "c"], target_test=(_images(3), np.array([0, 1, 2])))
    split = (_images(4), y)
    with pytest.raises(ValueError, match="different shapes"):
        DomainPair(split, split, (_images(4, 16), y), split, split, ("a", "b"))


def test_negative_scan_is_gray_inverted_at_half_contrast():
    image = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    out = negative_scan(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out[0, 0].tolist() == [191] * 3 and out[0, 1].tolist() == [64] * 3  # black -> light gray, white -> dark
    assert np.array_equal(out, negative_scan(image))
    with pytest.raises(ValueError, match="uint8 RGB"):
        negative_scan(image.astype(np.float32))


def test_domain_pair_splits_and_disjoint_regions(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_COURSE_HOME", str(tmp_path))
    from transfer_course.data import load_split, make_dataset

    pair = make_domain_pair(size=24, per_class=2, val_per_class=2)
    assert len(pair.class_names) == 10
    for name, (x, y) in pair.splits().items():
        assert x.shape[1:] == (24, 24, 3) and np.bincount(y).tolist() == [2] * 10, name
    root = make_dataset("photo_patches", size=24, per_class=4, val_per_class=2)
    x_test, _, _ = load_split(root, "test", class_names=pair.class_names)
    assert np.array_equal(pair.target_test[0], negative_scan(x_test))  # the test tiles, restyled: no training pixel
    assert not any(np.array_equal(negative_scan(s[None])[0], t) for s in pair.source_train[0] for t in pair.target_train[0])
    assert all(np.ptp(x[..., 0] - x[..., 1]) == 0 for x in pair.target_train[0])  # gray
    assert pair.digest() == make_domain_pair(size=24, per_class=2, val_per_class=2).digest()

    calls = []

    def make_extractor():
        calls.append(1)
        return lambda images: images.reshape(len(images), -1)[:, :5].astype(np.float32)

    first = pair_features(pair, make_extractor, name="toy", progress=False)
    second = pair_features(pair, make_extractor, name="toy", progress=False)
    assert len(calls) == 1  # the second call reads the cache and never builds the extractor
    assert all(np.array_equal(first[k][0], second[k][0]) and first[k][0].shape == (20, 5) for k in first)


def test_domain_separability_tells_apart_and_not():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 4))
    assert domain_separability(a, a + 3.0) > 0.95
    assert domain_separability(a, rng.normal(size=(60, 4))) < 0.7
