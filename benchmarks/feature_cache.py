"""Head training on cached features vs forwarding through the frozen backbone every epoch.

Both paths train the same new head, from the same initial weights, on the same images in the same order, with
the backbone frozen in inference mode: the features are identical, so the accuracies must match. Only the
time differs: the cached path runs the backbone once, the live path once per epoch.

    python benchmarks/feature_cache.py [--framework torch|tensorflow] [--epochs 30] [--quick]
"""
from __future__ import annotations

import argparse
import importlib
import time

import numpy as np

from transfer_course.data import make_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "tensorflow"), default="torch")
    parser.add_argument("--epochs", type=int, default=30, help="head epochs (lesson 02 trains its head for 30)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="10 epochs, 96 px")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.size = 10, 96
    T = importlib.import_module(f"transfer_course.{args.framework}")
    root = make_dataset("photo_patches", size=args.size, per_class=20, val_per_class=20)
    train = T.image_folder_loader(root, "train", image_size=args.size, batch_size=16, shuffle=False)
    val = T.image_folder_loader(root, "val", image_size=args.size, batch_size=64)
    names = (train.dataset.folder if args.framework == "torch" else train.folder).class_names

    def fresh_model():
        T.seed_everything(0)
        model = T.replace_head(T.create_model(), class_names=names, dropout=0.0)
        T.freeze(model.backbone)
        return model

    # live: every epoch forwards all images through the frozen backbone, then trains the head
    model = fresh_model()
    start = time.perf_counter()
    T.fit(model, train, epochs=args.epochs, lr=1e-3, progress=False, seed=0)
    live_s = time.perf_counter() - start
    live_acc = T.evaluate(model, val)["accuracy"]

    # cached: the backbone runs once; the head trains on the stored vectors in the same order
    model = fresh_model()
    start = time.perf_counter()
    features = T.cache_features(model, train, progress=False)
    T.fit(model.head, T.array_loader(*features, batch_size=16, shuffle=False), epochs=args.epochs, lr=1e-3,
          progress=False, seed=0)
    cached_s = time.perf_counter() - start
    cached_acc = T.evaluate(model, val)["accuracy"]

    print(f"framework {args.framework} | {len(features[0])} images, {args.size} px, {args.epochs} epochs")
    print(f"backbone every epoch : {live_s:8.2f} s  val accuracy {live_acc:.3f}")
    print(f"cached features      : {cached_s:8.2f} s  val accuracy {cached_acc:.3f}")
    print(f"speed-up {live_s / cached_s:.1f}x (goal >= 20x); accuracy difference {abs(live_acc - cached_acc):.3f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
