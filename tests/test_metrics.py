import numpy as np
import pytest
from sklearn import metrics as sk

from transfer_course.metrics import check_labels, classification_report, confusion_matrix, precision_recall_f1


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 60)
    y_pred = np.where(rng.random(60) < 0.6, y_true, rng.integers(0, 4, 60))
    y_pred[y_pred == 3] = 2  # class 3 is never predicted: precision 0 by convention
    cm = confusion_matrix(y_true, y_pred, 4)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y_true, y_pred, labels=range(4)))
    p, r, f = precision_recall_f1(cm)
    sp, sr, sf, _ = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    np.testing.assert_allclose(p, sp), np.testing.assert_allclose(r, sr), np.testing.assert_allclose(f, sf)
    report = classification_report(y_true, y_pred, ["a", "b", "c", "d"])
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert report["f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert report["per_class"]["d"]["support"] == int((y_true == 3).sum())


def test_labels_outside_the_classes_are_named():
    with pytest.raises(ValueError, match=r"contain \[5\], outside 0..2 for a model with 3 classes"):
        check_labels([0, 1, 5], 3)
    with pytest.raises(ValueError, match="1-D"):
        check_labels(np.zeros((2, 2)), 3)


def test_report_from_probabilities_adds_the_cross_entropy():
    from transfer_course.metrics import report_from_probabilities

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1]])
    report = report_from_probabilities([0, 1, 1], probs, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.4])))
    assert sk.log_loss([0, 1, 1], probs, labels=[0, 1, 2]) == pytest.approx(report["loss"])
