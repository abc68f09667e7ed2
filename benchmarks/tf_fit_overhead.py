"""Overhead of ``transfer_course.tensorflow.fit`` against plain ``model.compile`` + ``model.fit``.

Same model (EfficientNet-Lite0, top blocks unfrozen, BatchNorm frozen), same ``tf.data`` pipeline, same
optimizer and learning rate; both compile (and trace) the model once per run, as a user would.
``fit`` adds label checks, the learning-rate schedule object, a history callback and a progress bar.

    python benchmarks/tf_fit_overhead.py [--epochs 3] [--rounds 5] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import keras

import transfer_course.tensorflow as T
from transfer_course.data import make_dataset


def plain_fit(model, ds, epochs, lr):
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(ds, epochs=epochs, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--top", type=int, default=6, help="backbone blocks unfrozen")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 1, 2
    root = make_dataset("photo_patches", size=args.size, per_class=20, val_per_class=20)
    ds = T.image_folder_loader(root, "train", image_size=args.size, batch_size=16, seed=0)
    names = ds.folder.class_names
    images = len(ds.folder) * args.epochs
    for _ in ds:  # fill the in-memory cache so neither side pays for decoding
        pass

    def fresh():
        T.seed_everything(0)
        model = T.replace_head(T.create_model(), class_names=names)
        T.freeze(model.backbone)
        T.unfreeze(model.backbone, top=args.top)
        return model

    times = {"plain model.fit": [], "transfer_course fit": []}
    for _ in range(args.rounds):
        model = fresh()
        start = time.perf_counter()
        plain_fit(model, ds, args.epochs, 1e-4)
        times["plain model.fit"].append(time.perf_counter() - start)
        model = fresh()
        start = time.perf_counter()
        T.fit(model, ds, epochs=args.epochs, lr=1e-4, progress=True, seed=0)
        times["transfer_course fit"].append(time.perf_counter() - start)

    print(f"{images} images per run ({args.epochs} epochs x {len(ds.folder)}), {args.size} px, top {args.top} blocks, "
          f"median of {args.rounds} (compile and tracing included on both sides)")
    throughput = {}
    for name, values in times.items():
        throughput[name] = images / statistics.median(values)
        print(f"{name:20s} {throughput[name]:7.1f} images/s   (runs: {', '.join(f'{v:.2f}' for v in values)} s)")
    print(f"throughput ratio fit / plain = {throughput['transfer_course fit'] / throughput['plain model.fit']:.3f} (goal >= 0.97)")


if __name__ == "__main__":
    main()
