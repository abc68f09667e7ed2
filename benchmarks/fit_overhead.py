"""Overhead of ``transfer_course.torch.fit`` against a minimal hand-written training loop.

Same model (EfficientNet-Lite0, top blocks unfrozen, frozen BatchNorm in inference mode), same data loader,
same optimizer and learning rate. ``fit`` adds label checks, a learning-rate schedule, loss/accuracy
bookkeeping and a progress bar. Rounds alternate between the two to spread machine noise evenly.

    python benchmarks/fit_overhead.py [--epochs 3] [--rounds 5] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import transfer_course.torch as T
from transfer_course.data import make_dataset


def minimal_loop(model, loader, epochs, lr):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    for _ in range(epochs):
        T.train_mode(model)
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()


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
    loader = T.image_folder_loader(root, "train", image_size=args.size, batch_size=16, seed=0)
    names = loader.dataset.folder.class_names
    images = len(loader.dataset) * args.epochs
    for x, _ in loader:  # decode every image once so neither side pays for it
        pass

    def fresh():
        T.seed_everything(0)
        model = T.replace_head(T.create_model(), class_names=names)
        T.freeze(model.backbone)
        T.unfreeze(model.backbone, top=args.top)
        return model

    times = {"minimal loop": [], "transfer_course fit": []}
    for _ in range(args.rounds):
        model = fresh()
        start = time.perf_counter()
        minimal_loop(model, loader, args.epochs, 1e-4)
        times["minimal loop"].append(time.perf_counter() - start)
        model = fresh()
        start = time.perf_counter()
        T.fit(model, loader, epochs=args.epochs, lr=1e-4, progress=True, seed=0)
        times["transfer_course fit"].append(time.perf_counter() - start)

    print(f"{images} images per run ({args.epochs} epochs x {len(loader.dataset)}), {args.size} px, top {args.top} blocks, "
          f"{torch.get_num_threads()} threads, median of {args.rounds}")
    throughput = {}
    for name, values in times.items():
        throughput[name] = images / statistics.median(values)
        print(f"{name:20s} {throughput[name]:7.1f} images/s   (runs: {', '.join(f'{v:.2f}' for v in values)} s)")
    ratio = throughput["transfer_course fit"] / throughput["minimal loop"]
    print(f"throughput ratio fit / minimal = {ratio:.3f} (goal >= 0.97)")


if __name__ == "__main__":
    main()
