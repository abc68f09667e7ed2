"""Checks for lesson 06, scaling up: a rank's shard of the data, the all-reduce average of gradients, the scaled
learning rate.

Each compares the student's function with a closed form computed here (the padded strided shard that
``DistributedSampler`` takes, the mean over ranks, ``lr · B / B0``), never with a copy of the solution."""
from __future__ import annotations

import numpy as np

from ._base import check, expect, from_numpy, to_numpy

TOPIC = "06_scaling_up"


def _shard(n, rank, world):
    per_rank = -(-n // world)
    padded = [i % n for i in range(per_rank * world)]  # repeats from the start
    return padded[rank::world]


@check(TOPIC, "shard_for_rank")
def _shard_for_rank(fn, framework: str) -> str:
    for n, world in [(10, 2), (11, 2), (10, 4), (7, 3), (5, 5)]:
        for rank in range(world):
            got = [int(i) for i in np.asarray(fn(n, rank, world)).ravel()]
            want = _shard(n, rank, world)
            contiguous = list(range(rank * (n // world), (rank + 1) * (n // world)))
            expect(not (got == contiguous and got != want),
                   f"shard_for_rank({n}, {rank}, {world}) returned a contiguous block {got}. DistributedSampler deals "
                   f"indices out in turn: rank r takes every {world}-th index starting at r (indices[r::{world}]).")
            expect(len(got) == len(want),
                   f"shard_for_rank({n}, {rank}, {world}) has {len(got)} indices; every rank must get ceil({n}/{world}) "
                   f"= {len(want)}, so all ranks run the same number of steps. Pad the index list by repeating its "
                   "first indices before dealing them out (dropping the remainder is the other option, drop_last).")
            expect(got == want, f"shard_for_rank({n}, {rank}, {world}) returned {got}; expected {want} (indices "
                   f"0..{n - 1}, padded by repeating the first ones to a multiple of {world}, then every {world}-th "
                   f"starting at {rank}).")
    return "each rank gets ceil(N / W) indices, dealt out in turn, the first ones repeated as padding"


@check(TOPIC, "average_gradients")
def _average_gradients(fn, framework: str) -> str:
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (2,)]
    per_rank = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(3)]
    inputs = [[from_numpy(g, framework) for g in grads] for grads in per_rank]
    got = fn(inputs)
    expect(isinstance(got, (list, tuple)) and len(got) == len(shapes),
           f"average_gradients must return one averaged gradient per parameter ({len(shapes)} here), as a list; "
           f"received {type(got).__name__}{'' if not hasattr(got, '__len__') else f' of length {len(got)}'}. "
           "(Average over the ranks, not over the parameters.)")
    got = [to_numpy(g) for g in got]
    want = [np.mean([grads[i] for grads in per_rank], axis=0) for i in range(len(shapes))]
    for i, (g, w) in enumerate(zip(got, want)):
        expect(g.shape == w.shape, f"gradient {i} has shape {g.shape}; it must keep the parameter's shape {w.shape}.")
        summed = np.sum([grads[i] for grads in per_rank], axis=0)
        expect(not np.allclose(g, summed, atol=1e-5), f"gradient {i} is the SUM over the 3 ranks; divide by the number "
               "of ranks: each rank's gradient is already a mean over its own batch.")
        expect(not np.allclose(g, per_rank[0][i], atol=1e-5), f"gradient {i} is rank 0's own gradient: average it with "
               "the other ranks' gradients (that is what the all-reduce does).")
        expect(np.allclose(g, w, atol=1e-5), f"gradient {i} is not the mean over the ranks of that parameter's gradient.")
    return "the mean over ranks: with equal batches, the gradient of the mean loss over all ranks' samples"


@check(TOPIC, "scaled_learning_rate")
def _scaled_learning_rate(fn, framework: str) -> str:
    for base_lr, base_batch, per_rank, world in [(1e-3, 32, 32, 4), (1e-3, 20, 20, 2), (0.1, 256, 32, 16), (3e-4, 64, 16, 2)]:
        got = float(fn(base_lr, base_batch, per_rank, world))
        want = base_lr * per_rank * world / base_batch
        args = f"scaled_learning_rate({base_lr:g}, {base_batch}, {per_rank}, {world})"
        expect(not np.isclose(got, base_lr * per_rank / base_batch) or np.isclose(got, want),
               f"{args} = {got:g} ignores the number of processes: the effective batch is per_rank_batch x world_size "
               f"= {per_rank * world}.")
        expect(not np.isclose(got, base_lr * np.sqrt(per_rank * world / base_batch)) or np.isclose(got, want),
               f"{args} = {got:g} follows the square-root rule; the linear rule multiplies by B / B0 itself.")
        expect(not np.isclose(got, base_lr * world) or np.isclose(got, want),
               f"{args} = {got:g} multiplies by the number of processes only; compare the effective batch "
               f"{per_rank * world} with the batch the rate was tuned for ({base_batch}).")
        expect(np.isclose(got, want), f"{args} = {got:g}; the linear rule gives base_lr x (per_rank_batch x world_size) "
               f"/ base_batch = {want:g}.")
    return "the linear scaling rule: the learning rate grows with the effective batch"
