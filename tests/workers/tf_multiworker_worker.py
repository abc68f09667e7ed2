"""Run by tests/tensorflow/test_tf_distributed.py as 2 workers (TF_CONFIG set by the test).

``checks OUT``: gradients, coverage, metrics, checkpoints, one writer, bad input in one launch; each worker writes
``OUT/rank<r>.json``. ``die OUT``: worker 1 dies in the middle of an epoch; worker 0 must stop with a clear error."""
import json
import os
import sys
import time
from pathlib import Path

from transfer_course.tensorflow.distributed import setup_distributed

mode, out = sys.argv[1], Path(sys.argv[2])
info, strategy = setup_distributed(timeout=float(os.environ.get("TEST_TIMEOUT", "20")))  # before other TF work

import keras
import numpy as np
import tensorflow as tf

import transfer_course.tensorflow.train as train_module
from transfer_course.tensorflow import evaluate, fit

rank, world = info.rank, info.world_size
report = {"rank": rank, "world": world, "replicas": strategy.num_replicas_in_sync}


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(0, 1, (n, 6)) + np.eye(3, 6)[y] * 2).astype(np.float32), y


def net(seed=0):
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                                 keras.layers.Dense(3, name="out")], name="net")  # fixed names: checkpoints compare paths


if mode == "die":
    x, y = data(400)
    model = net()
    if rank == 1:
        original = train_module.shard_indices
        calls = []

        def dying(*a, **k):  # dies when the second epoch's shard is drawn, after the first epoch's steps
            calls.append(1)
            if len(calls) > 1:
                os._exit(3)
            return original(*a, **k)
        train_module.shard_indices = dying
    t0 = time.perf_counter()
    try:
        fit(model, (x, y), epochs=3, batch_size=8, progress=False)
        report["error"] = None
    except Exception as exc:  # noqa: BLE001 - the test reads the type and message
        report["error"], report["type"] = str(exc), type(exc).__name__
    report["seconds"] = time.perf_counter() - t0
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    os._exit(0)

# 1. Gradients: two replicas on two halves, averaged == one process on the whole batch.
x, y = data(16)
model = net()
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
reference = net()
reference.set_weights(model.get_weights())  # the same weights, used on the whole batch without strategy.run
with tf.GradientTape() as tape:
    whole = loss_fn(y, reference(x))
want = tape.gradient(whole, reference.trainable_variables)


def replica(xb, yb):
    with tf.GradientTape() as tape:
        per_example = keras.losses.sparse_categorical_crossentropy(yb, model(xb), from_logits=True)
        loss = tf.reduce_mean(per_example) / strategy.num_replicas_in_sync  # summed over replicas: the global mean
    grads = tape.gradient(loss, model.trainable_variables)
    return [tf.distribute.get_replica_context().all_reduce("SUM", g) for g in grads]


half = slice(rank * 8, rank * 8 + 8)
ds = tf.data.Dataset.from_tensor_slices((x[half], y[half])).batch(8)
batch = next(iter(strategy.distribute_datasets_from_function(lambda ctx: ds)))
got = tf.function(lambda b: strategy.run(replica, args=b))(batch)
got = [strategy.experimental_local_results(g)[0] for g in got]
report["grad_diff"] = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(got, want))

# 2. Coverage: the indices each worker's shard holds in fit, for a size that divides and one that does not.
seen = []
original = train_module.shard_indices


def recording(*a, **k):
    idx = original(*a, **k)
    seen.append(idx.tolist())
    return idx


train_module.shard_indices = recording
for n in (20, 21):
    seen.clear()
    xs, ys = data(n)
    fit(net(), (xs, ys), epochs=1, batch_size=4, progress=False)
    report[f"seen_{n}"] = seen[0]
train_module.shard_indices = original

# 3. Metrics over all samples; 4. only the chief writes; 5. resume 1 -> 2 workers; 2 workers -> checkpoint.
calls = []
save = train_module._save_checkpoint
train_module._save_checkpoint = lambda folder, *a, **k: (calls.append(str(folder)), save(folder, *a, **k))
xs, ys = data(40)
xv, yv = data(21, seed=1)
model = net()
history = fit(model, (xs, ys), (xv, yv), epochs=2, lr=1e-2, batch_size=8, checkpoint=out / "from_one_process",
              progress=True)
report["resumed_history"] = history.epochs
report["val_accuracy_full"] = evaluate(model, (xv, yv))["accuracy"]
model = net()
history = fit(model, (xs, ys), (xv, yv), epochs=1, lr=1e-2, batch_size=8, checkpoint=out / "from_two_processes",
              progress=False)
report["history"] = history.epochs
report["saved_to"] = calls
report["weights"] = [np.asarray(w).ravel().tolist() for w in model.weights]

# 6. Bad input: more workers than samples; a global batch smaller than the number of replicas.
for name, kwargs in (("too_few", {"train": data(1), "batch_size": 4}), ("batch_zero", {"train": data(20), "batch_size": 1})):
    try:
        fit(net(), kwargs["train"], epochs=1, batch_size=kwargs["batch_size"], progress=False)
        report[name] = None
    except ValueError as exc:
        report[name] = str(exc)

(out / f"rank{rank}.json").write_text(json.dumps(report))
