"""Training for TensorFlow/Keras: the same names as the PyTorch side, over Keras ``fit``.

:func:`fit` compiles the model (so ``trainable`` changes always take effect), builds the optimizer
(smaller learning rates for pretrained layers when ``backbone_lr`` is given), and runs ``model.fit``
with callbacks for the progress bar, early stopping, checkpoints and the epoch hook.

With a strategy (``strategy=`` or the one the model was built in): build the model inside ``strategy.scope()``
yourself (its variables must be the strategy's); ``fit`` compiles it and builds the optimizer in that scope.
``MirroredStrategy`` (several GPUs, one process) runs through Keras ``fit``, which splits each global batch over the
replicas. A ``MultiWorkerMirroredStrategy`` with several workers (lesson 06) runs a loop of its own, ``_fit_workers``:
each worker takes its shard of the data (padded to equal shards, reshuffled each epoch the same way on every worker),
``strategy.run`` computes the gradients, the optimizer sums them over the replicas, the metrics are summed over all
samples, and only the chief (worker 0) shows progress, keeps the checkpoint and calls ``on_epoch_end``.
"""
from __future__ import annotations

import json
import tempfile
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..distributed import DistributedError, check_shardable, shard_indices, shard_sizes
from ..memory import release_memory
from ..metrics import check_labels, report_from_probabilities
from ..models import check_preprocessed_images
from ..precision import validate_precision
from ..training import (
    CheckpointMismatchError,
    Digest,
    History,
    as_float_inputs,
    check_backbone_and_head,
    check_batch_size,
    check_checkpoint_path,
    check_finite_inputs,
    check_finite_loss,
    check_fit_args,
    class_indices,
    feature_cache_key,
    fingerprint,
    folder_digest,
    phase_checkpoint,
    read_feature_cache,
    write_feature_cache,
)
from .data import array_loader
from .device import _POLICIES, check_device
from .models import TransferModel, freeze, unfreeze

__all__ = [
    "LearningRateSchedule",
    "cache_features",
    "discriminative_optimizer",
    "evaluate",
    "fine_tune",
    "fit",
    "labels_of",
    "predict",
]

_OPTIMIZERS = {"adamw": keras.optimizers.AdamW, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def _as_dataset(data, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return array_loader(*data, batch_size=batch_size, shuffle=shuffle, seed=seed)
    raise TypeError(f"Expected a tf.data.Dataset or an (inputs, labels) pair; received {type(data).__name__}.")


def labels_of(data) -> np.ndarray | None:
    """The labels of a dataset or ``(x, y)`` pair, when known without iterating."""
    if isinstance(data, (tuple, list)):
        return np.asarray(data[1])
    if hasattr(data, "folder"):
        return np.asarray(data.folder.labels)
    if hasattr(data, "arrays"):
        return data.arrays[1]
    return None


def _check_data(model, ds, name):
    labels = labels_of(ds)
    if name == "training" and labels is not None and len(labels) == 0:
        check_fit_args(1, 1.0, num_train=0)
    if labels is not None:
        check_labels(labels, int(model.output_shape[-1]), f"The {name} labels")


@keras.saving.register_keras_serializable(package="transfer_course")
class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lr * lr_factor(step)``: the same ``constant``/``cosine``/``warmup_cosine`` curves as PyTorch's side."""

    def __init__(self, lr, total_steps, schedule="constant", warmup_steps=0):
        self.lr, self.total_steps, self.schedule, self.warmup_steps = float(lr), int(total_steps), schedule, int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.schedule == "constant":
            return tf.constant(self.lr)
        start = float(self.warmup_steps) if self.schedule == "warmup_cosine" else 0.0
        progress = tf.minimum(1.0, (step - start) / max(1.0, self.total_steps - start))
        cosine = 0.5 * (1.0 + tf.cos(np.pi * progress))
        if self.schedule == "warmup_cosine":
            cosine = tf.where(step < start, (step + 1.0) / max(1.0, start), cosine)
        return self.lr * cosine

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "schedule": self.schedule, "warmup_steps": self.warmup_steps}


def discriminative_optimizer(optimizer: keras.optimizers.Optimizer, variables, ratio: float) -> keras.optimizers.Optimizer:
    """Make ``optimizer`` update ``variables`` with ``ratio`` times its learning rate, the rest with the full one.

    Keras has no per-layer learning rates. Scaling gradients instead would not work for Adam, which
    divides the scale away, so this scales the learning rate inside each variable's update step.
    """
    base = type(optimizer)
    slow = list(variables)

    class Discriminative(base):
        def build(self, var_list):
            super().build(var_list)
            self._slow_keys = {self._var_key(v) for v in slow}

        def update_step(self, gradient, variable, learning_rate):
            if self._var_key(variable) in self._slow_keys:
                learning_rate = learning_rate * ratio
            return super().update_step(gradient, variable, learning_rate)

    Discriminative.__name__ = f"Discriminative{base.__name__}"
    return Discriminative.from_config(optimizer.get_config())


class _Loop(keras.callbacks.Callback):
    """Progress bar, history (with learning rate and time), checkpoint and the epoch hook."""

    # Its per-batch work is a progress-bar tick, so Keras may call it from a helper thread and keep dispatching
    # batches; otherwise Keras waits for every batch's results before starting the next one.
    async_safe = True

    def __init__(self, history, total, initial, progress, checkpoint, on_epoch_end, settings=None):
        super().__init__()
        self.history_, self.checkpoint, self.hook, self.settings = history, checkpoint, on_epoch_end, settings
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="training", unit="batch", leave=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        check_finite_loss(logs.get("loss", 0.0), epoch + 1)
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["seconds"] = time.perf_counter() - self.t0
        self.history_.append(logs)
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy")})
        if self.checkpoint is not None:
            _save_checkpoint(self.checkpoint, epoch + 1, self.model, self.history_, self.settings)
        if self.hook is not None:
            self.hook(epoch, logs)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


def _model_fingerprint(model):
    return fingerprint([(w.path, w.shape) for w in model.weights], getattr(model, "class_names", None))


def _save_checkpoint(folder: Path, epoch: int, model, history: History, settings: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_weights(folder / "model.weights.h5")  # includes the optimizer's state (moments, step count)
    state = {"fingerprint": _model_fingerprint(model), "epoch": epoch, "history": history.to_dict(),
             "optimizer_settings": settings,
             # Dropout's random stream: Keras keeps its state in variables that save_weights leaves out
             "seed_states": [np.asarray(v).tolist() for v in _seed_states(model)]}
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / "state.json")  # written last: the state names an epoch whose weights are saved


def _resume(folder: Path, model, optimizer="adamw", lr=None, backbone_lr=None, weight_decay=0.0) -> tuple[int, History]:
    try:
        state = json.loads((folder / "state.json").read_text())
        if not isinstance(state, dict) or not {"fingerprint", "epoch", "history"} <= set(state):
            raise ValueError("fields missing")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointMismatchError(f"{folder / 'state.json'} is damaged or was not written by fit(checkpoint=...) "
                                      f"({exc}). Use a new checkpoint folder, or delete this one to start over.") from None
    if state["fingerprint"] != _model_fingerprint(model):
        raise CheckpointMismatchError(
            f"{folder} was saved from a different model (other layers, shapes or classes), so training cannot "
            "resume from it. Use a new checkpoint folder for this model, or delete it to start over.")
    saved, now = state.get("optimizer_settings"), _settings(optimizer, lr, backbone_lr, weight_decay)
    if saved is not None and saved != now:
        raise CheckpointMismatchError(
            f"{folder} was saved by a run with another optimizer set-up ({saved}), not this one ({now}). Resuming "
            "would mix the two. Call fit with the saved run's optimizer, lr, backbone_lr and weight_decay to continue "
            "it, or use a new checkpoint folder to start a new run.")
    if not model.optimizer.built:  # the optimizer's slots must exist to receive their values
        model.optimizer.build(model.trainable_variables)
    weights = folder / "model.weights.h5"
    if not weights.is_file() or weights.stat().st_size == 0:
        raise CheckpointMismatchError(f"{weights} is missing or empty: the checkpoint was not written completely. "
                                      "Delete the folder to start over.")
    try:
        model.load_weights(weights)
    except Exception as exc:  # noqa: BLE001 - h5py/keras raise many types for a damaged file
        raise CheckpointMismatchError(f"{weights} cannot be read ({type(exc).__name__}: {str(exc)[:200]}): it is "
                                      "truncated or damaged. Delete the checkpoint folder to start over.") from None
    seeds = state.get("seed_states") or []
    for variable, value in zip(_seed_states(model), seeds):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    return state["epoch"], History.from_dict(state["history"])


def _seed_states(model) -> list:
    return [v for v in model.variables if "seed_generator_state" in v.path]


def _settings(optimizer, lr, backbone_lr, weight_decay) -> dict:
    return {"optimizer": optimizer, "lr": float(lr), "backbone_lr": None if backbone_lr is None else float(backbone_lr),
            "weight_decay": float(weight_decay)}


def _check_array_images(model, data, what) -> None:
    """Image arrays handed to fit must be preprocessed for the model's weights (channels last)."""
    if isinstance(model, TransferModel) and isinstance(data, (tuple, list)) and len(data) == 2:
        check_preprocessed_images(np.asarray(data[0]), model.spec, channels_first=False, what=f"{what} images")


def fit(model: keras.Model, train, val=None, *, epochs: int = 5, lr: float = 1e-3, backbone_lr: float | None = None,
        optimizer: str = "adamw", weight_decay: float = 0.0, schedule: str = "constant", warmup_epochs: int = 0,
        precision: str | None = None, device=None, channels_last: bool = True, clip_grad_norm: float | None = None,
        early_stopping: int | None = None, monitor: str = "val_loss", restore_best: bool = True,
        checkpoint: str | Path | None = None, batch_size: int = 32, seed: int = 0, progress: bool = True,
        on_epoch_end=None, strategy: tf.distribute.Strategy | None = None) -> History:
    """Train ``model`` on ``train`` (a ``tf.data.Dataset`` or ``(x, y)`` arrays); return its :class:`History`.

    The arguments mean what they mean on the PyTorch side. TensorFlow differences: ``precision`` is
    Keras' global policy, which must be set *before* the model is built, so here it is only checked
    (call ``resolve_precision`` first); images are always channels-last; ``checkpoint`` is a folder;
    ``strategy`` (see ``get_strategy``) compiles the model in that strategy's scope.
    """
    if isinstance(train, (tuple, list)) and len(train) == 2 and len(train[0]) == 0:
        check_fit_args(epochs, lr, num_train=0)
    check_fit_args(epochs, lr, backbone_lr, schedule, clip_grad_norm, optimizer=optimizer, batch_size=batch_size,
                   weight_decay=weight_decay, warmup_epochs=warmup_epochs)
    optimizer = optimizer.lower()
    device = check_device(device)
    checkpoint = check_checkpoint_path(checkpoint, "folder")
    _check_array_images(model, train, "training")
    _check_array_images(model, val, "validation")
    check_finite_inputs(train, "training")
    if val is not None:
        check_finite_inputs(val, "validation")
    train_ds = _as_dataset(train, batch_size, True, seed)
    val_ds = None if val is None else _as_dataset(val, batch_size, False, seed)
    steps = int(train_ds.cardinality())
    check_fit_args(epochs, lr, backbone_lr, schedule, clip_grad_norm, num_train=0 if steps == 0 else None)
    if isinstance(model, TransferModel) and model.head.input_shape[-1] != model.spec.feature_dim:
        raise ValueError(f"The model's head takes {model.head.input_shape[-1]} features but the backbone gives "
                         f"{model.spec.feature_dim}. Build the head with make_head({model.spec.feature_dim}, num_classes) "
                         "or replace_head(model, ...).")
    _check_data(model, train_ds, "training")
    if val_ds is not None:
        _check_data(model, val_ds, "validation")
    if precision is not None and _POLICIES[validate_precision(precision)] != model.dtype_policy.name:
        raise ValueError(f"This model was built with Keras policy {model.dtype_policy.name!r}, not {precision!r}. "
                         f"Call resolve_precision({precision!r}) before create_model, then fit.")
    if not model.trainable_weights:
        raise ValueError("Every weight of the model is frozen: nothing would train. Unfreeze the head "
                         "(or the top blocks) first.")
    keras.utils.set_random_seed(seed)

    strategy = strategy or getattr(model, "_distribute_strategy", None)  # the scope the model was built in, if any
    schedule_fn = LearningRateSchedule(lr, epochs * max(steps, 1), schedule, warmup_epochs * max(steps, 1))
    with strategy.scope() if strategy is not None else _nullcontext():  # the optimizer belongs to the strategy too
        opt = _OPTIMIZERS[optimizer](learning_rate=schedule_fn, weight_decay=float(weight_decay),
                                     global_clipnorm=clip_grad_norm)
        if backbone_lr is not None:
            check_backbone_and_head(model, keras.layers.Layer, "layer")
            opt = discriminative_optimizer(opt, model.backbone.trainable_weights, backbone_lr / lr)
    if _workers(strategy) is not None and getattr(model, "_distribute_strategy", None) is not strategy:
        raise ValueError("The model was not built in this strategy's scope. Create it inside `with strategy.scope():` "
                         "so its variables are mirrored on every worker, then call fit.")
    scope = strategy.scope() if strategy is not None else _nullcontext()
    with scope:
        model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        # The optimizer's moments are created now, eagerly. Created during the first traced step instead, each one
        # is guarded by a graph branch: 600 extra graph functions for Lite0, and about 70 MB more at the peak.
        # model.optimizer: compile may have wrapped opt (a loss-scaling optimizer for float16).
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    if _workers(strategy) is not None:
        return _fit_workers(model, strategy, train, val, epochs=epochs, batch_size=batch_size, seed=seed,
                            checkpoint=checkpoint, progress=progress, on_epoch_end=on_epoch_end,
                            early_stopping=early_stopping, settings=_settings(optimizer, lr, backbone_lr, weight_decay))

    history, start = History(), 0
    if checkpoint and (checkpoint / "state.json").exists():
        start, history = _resume(checkpoint, model, optimizer, lr, backbone_lr, weight_decay)
    if start >= epochs:
        return history
    callbacks = [_Loop(history, epochs * steps, start * steps, progress, checkpoint, on_epoch_end,
                       _settings(optimizer, lr, backbone_lr, weight_decay))]
    if early_stopping:
        callbacks.insert(0, keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping,
                                                          restore_best_weights=restore_best))
    # One pass over the data per epoch, as one repeated stream: a resumed run skips the batches the interrupted
    # run already used, so it sees the same shuffled order from the same epoch on (reshuffling is seeded).
    epochs_ds, per_epoch = train_ds, None
    if steps > 0:
        epochs_ds, per_epoch = train_ds.repeat(), steps
        if start:
            epochs_ds = epochs_ds.skip(start * steps)
    release_memory()  # start from what is really in use, not from the previous step's freed pages
    try:
        with tf.device(device) if device else _nullcontext():
            model.fit(epochs_ds, validation_data=val_ds, epochs=epochs, initial_epoch=start, steps_per_epoch=per_epoch,
                      verbose=0, callbacks=callbacks, shuffle=False)
    finally:
        _drop_compiled_functions(model)
    release_memory()
    return history


def _drop_compiled_functions(model: keras.Model) -> None:
    """Let go of the graphs Keras compiled for ``fit`` (the training and validation steps).

    A model keeps them for its next ``fit``, but this ``fit`` compiles its own (each call builds a new optimizer),
    so they would only hold memory: about 150 MB for EfficientNet-Lite0 with every layer training, measured with
    TensorFlow 2.21 on CPU, for as long as the model lives. Keras traces them again if the model is fitted or
    evaluated with its own ``fit``/``evaluate`` later.
    """
    for name in ("train_function", "test_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def _workers(strategy) -> tuple[int, int] | None:
    """``(rank, workers)`` for a multi-worker strategy with several workers, else ``None``."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    chiefs, workers = len(spec.get("chief", [])), len(spec.get("worker", []))
    if chiefs + workers < 2:
        return None
    return resolver.task_id + (chiefs if resolver.task_type == "worker" else 0), chiefs + workers


def _arrays(data, what):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return as_float_inputs(np.asarray(data[0])), class_indices(np.asarray(data[1]))
    if hasattr(data, "arrays"):
        return data.arrays
    raise TypeError(f"In a multi-worker run fit shards in-memory {what} data itself: pass (x, y) arrays or an "
                    "array_loader dataset. For other pipelines, shard them with strategy.distribute_datasets_from_function "
                    "and write the loop with strategy.run (lesson 06).")


def _fit_workers(model, strategy, train, val, *, epochs, batch_size, seed, checkpoint, progress, on_epoch_end,
                 early_stopping, settings) -> History:
    """fit's loop for several workers: equal shards per worker, ``strategy.run`` per step, sums over all samples."""
    if early_stopping:
        raise ValueError("early_stopping is not available in a multi-worker run; train a fixed number of epochs and "
                         "keep a checkpoint, or choose the epochs in a one-process run.")
    rank, workers = _workers(strategy)  # fit has checked that the model was built in this strategy's scope
    replicas = strategy.num_replicas_in_sync
    (x, y), val_arrays = _arrays(train, "training"), None if val is None else _arrays(val, "validation")
    check_shardable(len(x), workers)
    check_shardable(len(x), replicas, batch_size, global_batch=True)
    per_replica, chief = batch_size // replicas, rank == 0
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    def shard(xs, ys, epoch, train_split):
        n = len(xs)
        order = np.random.default_rng(seed + epoch).permutation(n) if train_split else None
        idx = shard_indices(n, rank, workers, order=order)  # padded: every worker runs the same number of steps
        weight = np.ones(len(idx), np.float32)
        if not train_split:  # padding copies do not count in validation metrics
            weight = (np.arange(shard_sizes(n, workers) * workers)[rank::workers] < n).astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices((xs[idx], ys[idx], weight)).batch(per_replica)
        return strategy.distribute_datasets_from_function(lambda context: ds)

    def sums(logits, yb, wb, per_example):
        right = tf.cast(tf.equal(tf.argmax(logits, -1), tf.cast(yb, tf.int64)), tf.float32)
        return tf.stack([tf.reduce_sum(per_example * wb), tf.reduce_sum(right * wb), tf.reduce_sum(wb)])

    def train_replica(xb, yb, wb):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(xb, training=True), tf.float32)
            per_example = loss_fn(yb, logits)
            loss = tf.reduce_mean(per_example) / replicas  # summed over replicas: the mean over the global batch
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces (sums) the gradients
        return sums(logits, yb, wb, per_example)

    def val_replica(xb, yb, wb):
        logits = tf.cast(model(xb, training=False), tf.float32)
        return sums(logits, yb, wb, loss_fn(yb, logits))

    train_step = tf.function(lambda b: strategy.reduce("SUM", strategy.run(train_replica, args=b), axis=None))
    val_step = tf.function(lambda b: strategy.reduce("SUM", strategy.run(val_replica, args=b), axis=None))

    history, start = History(), 0
    with strategy.scope():
        if checkpoint and (checkpoint / "state.json").exists():
            start, history = _resume(checkpoint, model, settings["optimizer"], settings["lr"], settings["backbone_lr"],
                                     settings["weight_decay"])
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its slots exist before the first replica step
    steps = -(-shard_sizes(len(x), workers) // per_replica)
    bar = None
    if progress and chief:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps, initial=start * steps, desc="training", unit="batch", leave=True)
    try:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            try:
                total = np.zeros(3)
                for batch in shard(x, y, epoch, True):
                    total += train_step(batch).numpy()
                    if bar is not None:
                        bar.update(1)
                logs = {"loss": total[0] / total[2], "accuracy": total[1] / total[2]}
                if val_arrays is not None:
                    total = sum((val_step(b).numpy() for b in shard(*val_arrays, epoch, False)), np.zeros(3))
                    logs["val_loss"], logs["val_accuracy"] = total[0] / total[2], total[1] / total[2]
            except (tf.errors.OpError, RuntimeError) as exc:
                raise DistributedError(
                    f"worker {rank} of {workers}: the distributed run broke ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:300] if str(exc) else ''}). Another worker probably stopped or did not "
                    "answer within the strategy's timeout; see its own error. Resume from the last checkpoint with the "
                    "same launch.") from exc
            check_finite_loss(logs["loss"], epoch + 1)
            logs["lr"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
            logs["seconds"] = time.perf_counter() - t0
            history.append(logs)
            if bar is not None:
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy")})
            if checkpoint:  # every worker takes part in saving (reading variables may need them); the chief's copy is kept
                if chief:
                    _save_checkpoint(checkpoint, epoch + 1, model, history, settings)
                else:
                    with tempfile.TemporaryDirectory() as scratch:
                        _save_checkpoint(Path(scratch), epoch + 1, model, history, settings)
            if on_epoch_end is not None and chief:
                on_epoch_end(epoch, logs)
    finally:
        if bar is not None:
            bar.close()
    return history


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def predict(model: keras.Model, data, batch_size: int = 64, device=None, precision=None) -> np.ndarray:
    """Class probabilities ``(N, classes)`` for a dataset or ``(x, y)`` pair, in the data's order."""
    check_batch_size(batch_size)
    device = check_device(device)
    _check_array_images(model, data, "prediction")
    ds = _as_dataset(data, batch_size, False, 0)
    # predict_on_batch runs the model in inference mode as a compiled graph; calling the model eagerly batch after
    # batch gives the same numbers but kept hundreds of MB more memory on CPU in our measurements (lesson 02).
    if _workers(getattr(model, "_distribute_strategy", None)) is not None:
        # a model of a multi-worker run: each worker predicts the whole data by itself (predict_on_batch would
        # gather every worker's outputs)
        out = [tf.nn.softmax(tf.cast(model(x, training=False), tf.float32)).numpy() for x, *_ in ds]
    else:
        out = [tf.nn.softmax(tf.cast(model.predict_on_batch(x), tf.float32)).numpy() for x, *_ in ds]
    return np.concatenate(out) if out else np.zeros((0, int(model.output_shape[-1])), np.float32)


def evaluate(model: keras.Model, data, class_names=None, batch_size: int = 64, device=None) -> dict:
    """Loss, accuracy, macro precision/recall/F1, per-class values and the confusion matrix on ``data``."""
    ds = _as_dataset(data, batch_size, False, 0)
    labels = labels_of(ds)
    if labels is None:
        labels = np.concatenate([np.asarray(y) for _, y in ds])
    _check_data(model, ds, "evaluation")
    probs = predict(model, ds)
    return report_from_probabilities(labels, probs, class_names or getattr(model, "class_names", None))


def cache_features(model: TransferModel, data, path: str | Path | None = None, device=None,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Run the frozen backbone once over ``data``; return ``(features (N, feature_dim), labels)``.

    Training a head on these is the same as training it on images through a frozen backbone
    (in inference mode), without repeating the expensive forward pass every epoch. Use a dataset
    without augmentation and without shuffling. With ``path`` the arrays are also saved there
    and read back next time, if they were made by the same backbone weights from the same data (the
    key is the content: overwritten images, new labels or new arrays are recomputed). The file is written at
    exactly ``path``; an existing file that is not a feature cache is never overwritten.
    """
    ds = _as_dataset(data, 64, False, 0)
    key = _features_key(model, ds)
    cached = read_feature_cache(path, key)
    if cached is not None:
        return cached
    batches = ds
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(ds, desc="features", unit="batch", leave=False, total=int(ds.cardinality()))
    forward = _feature_forward(model)
    feats, labels = [], []
    for x, y in batches:
        feats.append(np.asarray(forward(x)))
        labels.append(np.asarray(y))
    features, labels = np.concatenate(feats), np.concatenate(labels).astype(np.int64)
    write_feature_cache(path, key, features, labels)
    release_memory()
    return features, labels


_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _feature_forward(model):
    """One compiled backbone forward per model, for any batch size: repeated cache_features calls reuse it instead
    of tracing a new graph each time (which TensorFlow reports as 'retracing' warnings)."""
    forward = _FORWARDS.get(model.backbone)
    if forward is None:
        backbone = model.backbone
        forward = tf.function(lambda x: tf.cast(backbone(x, training=False), tf.float32),
                              input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        _FORWARDS[model.backbone] = forward
    return forward


def _features_key(model, ds) -> str:
    """Key the cache on content: every backbone weight (BatchNorm statistics included) and the data itself (the
    files' bytes and labels for an image folder, else one pass over the dataset's elements)."""
    weights = Digest(*[(w.path, np.asarray(w)) for w in model.backbone.weights]).hexdigest()
    if getattr(ds, "folder", None) is not None:
        data = folder_digest(ds.folder)
    else:
        d = Digest("batches")
        for x, y in ds:
            d.update(np.asarray(x), np.asarray(y))
        data = d.hexdigest()
    return feature_cache_key(model.spec.name, weights, getattr(ds, "image_size", None), data)


def fine_tune(model: TransferModel, train, val=None, *, frozen_epochs: int = 3, epochs: int = 5, top: int | None = 4,
              lr: float = 1e-3, backbone_lr: float = 1e-4, **fit_kwargs) -> History:
    """The two-phase recipe: train only the new head with the backbone frozen, then unfreeze the top
    ``top`` blocks (all with ``None``) and train on with ``backbone_lr`` for them and ``lr / 10`` for the head.
    Returns both phases as one history."""
    checkpoint = fit_kwargs.pop("checkpoint", None)
    freeze(model.backbone)
    first = fit(model, train, val, epochs=frozen_epochs, lr=lr, checkpoint=phase_checkpoint(checkpoint, "frozen"),
                **fit_kwargs)
    unfreeze(model.backbone, top=top)
    second = fit(model, train, val, epochs=epochs, lr=lr / 10, backbone_lr=backbone_lr,
                 checkpoint=phase_checkpoint(checkpoint, "unfrozen"), **fit_kwargs)
    return first + second
