"""Lesson 03 (TensorFlow): the reference solutions pass their checks; typical mistakes get specific feedback."""
import keras
import numpy as np
import pytest
from keras import layers

import transfer_course.tensorflow as T
from helpers import reference_solution
from transfer_course.exercises import CHECKS, ExerciseFailed
from transfer_course.models import preprocess

NOTEBOOK = "03_fine_tuning_tensorflow"
NAMES = dict(keras=keras, layers=layers, backbone_blocks=T.backbone_blocks, preprocess=preprocess)


def run(exercise, fn, **context):
    return CHECKS[("03_fine_tuning", exercise)](fn, framework="tensorflow", **context)


@pytest.fixture(scope="module")
def small_model():
    return T.create_model(num_classes=3, hidden_units=16, dropout=0.5, class_names=["a", "b", "c"])


def test_unfreeze_top_blocks_reference_passes():
    assert "last blocks" in run("unfreeze_top_blocks", reference_solution(NOTEBOOK, "unfreeze_top_blocks", **NAMES))


def _unfreeze(select, skip_bn=True, backbone_trainable=True):
    def answer(model, n):
        model.backbone.trainable = backbone_trainable
        chosen = {id(layer) for _, group in select(T.backbone_blocks(model.backbone), n) for layer in group}
        for layer in model.backbone.layers:
            layer.trainable = id(layer) in chosen and not (skip_bn and isinstance(layer, layers.BatchNormalization))
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (lambda model, n: T.unfreeze(model.backbone), "everything is trainable"),
    (_unfreeze(lambda blocks, n: blocks[-n:], backbone_trainable=False), "model.backbone.trainable is still False"),
    (_unfreeze(lambda blocks, n: blocks[:n]), r"unfroze the \*first\* n blocks"),
    (_unfreeze(lambda blocks, n: blocks[-n:], skip_bn=False), "BatchNorm layers of those blocks were unfrozen too"),
    (_unfreeze(lambda blocks, n: blocks[-n - 1:]), "parameters are trainable; unfreezing the last 3 blocks"),
])
def test_unfreeze_top_blocks_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("unfreeze_top_blocks", wrong)


def test_learning_rate_groups_reference_passes():
    assert "100×" in run("learning_rate_groups", reference_solution(NOTEBOOK, "learning_rate_groups", **NAMES))


@pytest.mark.parametrize("wrong,feedback", [
    (lambda m, head_lr, bb_lr: [(m.backbone.trainable_weights, head_lr), (m.head.trainable_weights, bb_lr)], "swapped"),
    (lambda m, head_lr, bb_lr: [(m.backbone.weights, bb_lr), (m.head.trainable_weights, head_lr)], "frozen ones included"),
    (lambda m, head_lr, bb_lr: [(iter(m.backbone.trainable_weights), bb_lr), (m.head.trainable_weights, head_lr)],
     "generator"),
    (lambda m, head_lr, bb_lr: [(m.backbone.trainable_weights, bb_lr), (m.trainable_weights, head_lr)],
     "appears in both groups"),
    (lambda m, head_lr, bb_lr: [(m.trainable_weights, head_lr)], "two .parameters, learning rate. pairs"),
])
def test_learning_rate_groups_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("learning_rate_groups", wrong)


def test_predict_image_reference_passes(small_model):
    answer = reference_solution(NOTEBOOK, "predict_image", **NAMES, profile=type("P", (), {"image_size": 96}))
    assert "inference mode" in run("predict_image", answer, model=small_model, image_size=96)


def _predict(softmax=True, name=True):
    def answer(model, image):
        scores = np.asarray(model(preprocess(image, model.spec, size=96), training=False))[0]
        values = np.asarray(keras.ops.softmax(scores)) if softmax else scores
        best = int(values.argmax())
        return (model.class_names[best] if name else best), float(values[best])
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (_predict(softmax=False), "raw score"),
    (_predict(name=False), "return a .class name, probability. pair"),
])
def test_predict_image_mistakes(small_model, wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("predict_image", wrong, model=small_model, image_size=96)
