"""Checks for lesson 02, feature extraction."""
from __future__ import annotations

import importlib

import numpy as np

from ._base import (
    ExerciseFailed,
    check,
    expect,
    side,
    to_numpy,
    trainable_count,
)


# --- 02 feature extraction -----------------------------------------------------------------------------
@check("02_feature_extraction", "freeze_backbone")
def _freeze_backbone(fn, framework: str) -> str:
    T = side(framework)
    model = T.create_model(num_classes=3)
    result = fn(model)
    expect(result is model, "return the model you were given (the lesson writes `model = freeze_backbone(model)`); "
           f"got {type(result).__name__}.")
    head = sum(int(np.prod(tuple(p.shape))) for p in (model.head.parameters() if framework == "torch" else model.head.weights))
    trainable = trainable_count(model, framework)
    expect(trainable != T.count_parameters(model)[0], "every parameter is still trainable: the backbone is not frozen. "
            + ("Set requires_grad to False on each parameter of model.backbone." if framework == "torch"
               else "Set model.backbone.trainable = False."))
    expect(trainable != 0, "nothing is trainable any more: freeze only the backbone, not the new head.")
    expect(trainable == head, f"{trainable:,d} parameters are trainable; only the head's {head:,d} should be.")
    return "Only the head will learn; the ImageNet features stay exactly as they are."


@check("02_feature_extraction", "build_head")
def _build_head(fn, framework: str) -> str:
    head = fn(1280, 5)
    x = np.random.default_rng(0).normal(size=(4, 1280)).astype(np.float32)
    if framework == "torch":
        torch = importlib.import_module("torch")
        expect(isinstance(head, torch.nn.Module), f"return an nn.Module (e.g. nn.Sequential), not {type(head).__name__}.")
        kinds = [type(m).__name__ for m in head.modules()]
        head.eval()
        out = to_numpy(head(torch.from_numpy(x)))
    else:
        keras = importlib.import_module("keras")
        expect(isinstance(head, keras.Model), f"return a keras model (e.g. keras.Sequential), not {type(head).__name__}.")
        kinds = [type(layer).__name__ for layer in head.layers]
        out = to_numpy(head(x, training=False))
    expect(out.shape == (4, 5), f"for 4 feature vectors and 5 classes the head must output (4, 5); got {out.shape}.")
    dense = sum(k in ("Linear", "Dense") for k in kinds)
    expect(dense >= 2, "use a hidden dense layer before the output layer: dense -> dropout -> output.")
    expect("Dropout" in kinds, "add a Dropout layer between the hidden layer and the output.")
    expect(not np.allclose(out.sum(1), 1, atol=1e-3), "the head ends in a softmax; return raw scores (logits): the loss "
            "applies the softmax itself, more accurately.")
    return "dense -> dropout -> output: a small classifier on top of 1280 ImageNet features."


# --- extract_features ----------------------------------------------------------------------------------
_N, _BATCH, _DROP = 10, 4, 0.5


def _probe_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(_N, 12, 12, 3)).astype(np.float32)  # channels last; PyTorch gets them transposed
    y = np.array([3, 0, 2, 1, 4, 4, 0, 2, 1, 3], dtype=np.int64)
    return x, y


def _torch_probe(x, y):
    """A tiny backbone with BatchNorm and dropout (so training mode changes its output), fresh loaders,
    and references computed here: in inference mode, and in training mode without dropout."""
    import copy

    torch = importlib.import_module("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Dropout(_DROP))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    data = torch.utils.data.TensorDataset(xt, torch.from_numpy(y))
    plain = torch.utils.data.DataLoader(data, batch_size=_BATCH, shuffle=False)
    shuffled = torch.utils.data.DataLoader(data, batch_size=_BATCH, shuffle=True,
                                           generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = copy.deepcopy(net).eval()(xt).numpy()
        train_net = copy.deepcopy(net).train()
        train_net[-1].p = 0.0
        train_ref = np.concatenate([train_net(xt[i:i + _BATCH]).numpy() for i in range(0, _N, _BATCH)])
    return (lambda: copy.deepcopy(net).train()), plain, shuffled, ref, train_ref


def _tf_probe(x, y):
    keras = importlib.import_module("keras")
    tf = importlib.import_module("tensorflow")
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    h = layers.Conv2D(6, 3)(inputs)
    bn = layers.BatchNormalization()
    h = layers.ReLU()(bn(h))
    h = layers.GlobalAveragePooling2D()(h)
    net = keras.Model(inputs, layers.Dropout(_DROP)(h))
    rng = np.random.default_rng(3)
    bn.moving_mean.assign(rng.uniform(-0.5, 0.5, 6).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 6).astype(np.float32))
    weights = net.get_weights()
    plain = tf.data.Dataset.from_tensor_slices((x, y)).batch(_BATCH)
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(_N, seed=1, reshuffle_each_iteration=True).batch(_BATCH)
    ref = np.asarray(net(x, training=False))
    no_dropout = keras.Model(inputs, h)
    train_ref = np.concatenate([np.asarray(no_dropout(x[i:i + _BATCH], training=True)) for i in range(0, _N, _BATCH)])

    def fresh():
        net.set_weights(weights)  # undo any moving-average update a training-mode call made
        return net

    return fresh, plain, shuffled, ref, train_ref


def _as_arrays(got, framework: str):
    expect(isinstance(got, (tuple, list)) and len(got) == 2, "return two things: (features, labels).")
    features, labels = got
    if isinstance(features, (list, tuple)):
        raise ExerciseFailed("features is a list of per-batch results; join the batches into one array with "
                             "np.concatenate(features) (one row per image).")
    if framework == "torch" and getattr(features, "requires_grad", False):
        raise ExerciseFailed("the features are tensors that still require grad: autograd recorded the whole backbone. "
                             "Run it inside `with torch.no_grad():` (or torch.inference_mode()) and return NumPy "
                             "arrays with .cpu().numpy().")
    convert = ".cpu().numpy()" if framework == "torch" else ".numpy() or np.asarray(...)"
    for name, value in (("features", features), ("labels", labels)):
        expect(isinstance(value, np.ndarray), f"{name} is a {type(value).__module__}.{type(value).__name__}; return "
               f"NumPy arrays ({convert}), which the rest of the lesson (and scikit-learn, np.savez) expects.")
    expect(features.ndim == 2, f"features must be 2-D, (images, feature_dim): one pooled vector per image; got shape "
           f"{features.shape}. Keep the backbone's pooled output and concatenate batches along axis 0.")
    expect(len(features) == _N, f"the loader holds {_N} images in batches of {_BATCH}, but you returned {len(features)} "
           "feature rows: keep every batch (also the last, smaller one) and concatenate them along axis 0.")
    expect(labels.shape == (_N,), f"labels must be one integer per image, shape ({_N},); got {labels.shape}.")
    return features.astype(np.float64), labels


def _looks_like_training(got, train_ref) -> bool:
    """Training mode: BatchNorm used each batch's statistics and dropout zeroed about half the values
    (and scaled the rest by 1 / (1 - rate))."""
    kept = np.abs(got) > 1e-7
    if np.allclose(got, train_ref, atol=1e-4):
        return True
    return kept.mean() < 0.9 and np.allclose(got[kept], train_ref[kept] / (1 - _DROP), rtol=1e-3, atol=1e-4)


@check("02_feature_extraction", "extract_features")
def _extract_features(fn, framework: str) -> str:
    x, y = _probe_data()
    fresh, plain, shuffled, ref, train_ref = (_torch_probe if framework == "torch" else _tf_probe)(x, y)
    features, labels = _as_arrays(fn(fresh(), plain), framework)
    if not np.allclose(features, ref, atol=1e-4):
        fix = ("call backbone.eval() before the loop" if framework == "torch"
               else "call backbone(x, training=False)")
        expect(not _looks_like_training(features, train_ref),
               "these features were computed in training mode: BatchNorm normalised with each batch's own statistics "
               f"and dropout zeroed values, so they are not the backbone's features. {fix}.")
        raise ExerciseFailed(f"the features differ from the backbone's output in inference mode (largest difference "
                             f"{np.abs(features - ref).max():.3g}). Return backbone(x) for every batch, in the loader's order.")
    expect(np.array_equal(labels, y), f"labels {labels.tolist()} do not match the images' labels {y.tolist()}: take "
           "them from the same (x, y) batches as the features.")
    # A shuffled loader has a new order in every pass: the labels must come from the same pass as the features.
    features, labels = _as_arrays(fn(fresh(), shuffled), framework)
    match = np.abs(features[:, None, :] - ref[None, :, :]).max(-1).argmin(1)
    expect(np.allclose(features, ref[match], atol=1e-4) and len(set(match.tolist())) == _N,
           "on a shuffled loader the features are not the backbone's features of the loader's images.")
    expect(np.array_equal(labels, y[match]), "on a shuffled loader your labels do not line up with your features: "
           "each pass over a shuffled loader has a new order, so collect x's features and y in the same loop, batch "
           "by batch (not from a second pass over the loader, nor from the dataset's own label list).")
    return "One pass, inference mode, features and labels side by side: ready to cache."
