"""Checks for lesson 05, transfer in reinforcement learning: GAE, a frozen torso with new heads, and Taylor &
Stone's metrics of a learning curve. References are closed forms or :mod:`transfer_course.rl`'s numpy code."""
from __future__ import annotations

import numpy as np

from ...rl import compute_gae
from ._base import check, expect, from_numpy, side, to_numpy


# --- 05 GAE --------------------------------------------------------------------------------------------------
def _rollout(seed: int = 0, T: int = 6, N: int = 3):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(1.0, 0.5, size=(T, N)).astype(np.float32)
    values = rng.normal(0.0, 1.0, size=(T, N)).astype(np.float32)
    dones = np.zeros((T, N), np.float32)
    dones[2, 0] = dones[4, 1] = 1.0  # new episodes start at those steps
    next_value = rng.normal(0.0, 1.0, size=N).astype(np.float32)
    next_done = np.array([0.0, 0.0, 1.0], np.float32)[:N]
    return rewards, values, dones, next_value, next_done


@check("05_rl_transfer", "gae")
def _gae(fn, framework: str) -> str:
    rewards, values, dones, next_value, next_done = _rollout()
    gamma, lam = 0.9, 0.8
    args = [from_numpy(a, framework) for a in (rewards, values, dones, next_value, next_done)]
    got = fn(*args, gamma, lam)
    expect(got is not None, "gae returned None: return the advantages, a tensor of shape (T, N).")
    got = to_numpy(got)
    expect(got.shape == rewards.shape, f"the advantages have shape {got.shape}; they must have the rewards' shape {rewards.shape}.")
    want, returns = compute_gae(rewards, values, dones, next_value, next_done, gamma, lam)
    if np.allclose(got, returns, atol=1e-4):
        expect(False, "you returned the returns A + V; return the advantages A alone (the returns are added afterwards).")
    ignore_dones, _ = compute_gae(rewards, values, np.zeros_like(dones), next_value, np.zeros_like(next_done), gamma, lam)
    expect(not np.allclose(got, ignore_dones, atol=1e-4), "the advantages flow across the end of an episode: multiply "
           "by (1 - d[t+1]) both the next value in δ and the advantage carried back from t + 1.")
    shifted = _gae_same_step_dones(rewards, values, dones, next_value, gamma, lam)
    expect(not np.allclose(got, shifted, atol=1e-4), "you cut the episode with dones[t]; dones[t] marks that the "
           "observation at t *starts* an episode, so step t ends one when dones[t + 1] = 1 (next_done for the last step).")
    td, _ = compute_gae(rewards, values, dones, next_value, next_done, gamma, 0.0)
    expect(not np.allclose(got, td, atol=1e-4), "these are the one-step errors δ[t] only: add γ λ (1 - d[t+1]) A[t+1], "
           "looping backwards from the last step.")
    no_lambda, _ = compute_gae(rewards, values, dones, next_value, next_done, gamma, 1.0)
    expect(not np.allclose(got, no_lambda, atol=1e-4), "λ is missing: the advantage carried back is γ λ (1 - d[t+1]) A[t+1], "
           "not γ (1 - d[t+1]) A[t+1].")
    expect(np.allclose(got, want, atol=1e-4), f"the advantages differ from GAE's by up to {np.abs(got - want).max():.3g}; "
           "check δ[t] = r[t] + γ V(s[t+1]) (1 - d[t+1]) - V(s[t]) and that the loop runs backwards.")
    return "Backwards through the rollout, cut at episode ends."


def _gae_same_step_dones(rewards, values, dones, next_value, gamma, lam):
    """The usual slip: masking with dones[t] (and no next_done) instead of dones[t + 1]."""
    adv, last = np.zeros_like(rewards, dtype=np.float64), np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        next_v = next_value if t == len(rewards) - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_v * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        adv[t] = last
    return adv


# --- 05 frozen torso, new heads --------------------------------------------------------------------------------
def _weights(module, framework: str) -> list:
    if framework == "torch":
        return [p.detach().cpu().numpy().copy() for p in module.parameters()]
    return [np.array(w) for w in module.get_weights()]


def _trainable(module, framework: str) -> bool:
    """Whether any weight of ``module`` would be trained."""
    if framework == "torch":
        return any(p.requires_grad for p in module.parameters())
    return bool(module.trainable and module.trainable_variables)


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@check("05_rl_transfer", "frozen_feature_extractor")
def _frozen_feature_extractor(fn, framework: str) -> str:
    T = side(framework)
    if framework == "torch":
        import torch

        torch.manual_seed(123)
    else:
        import keras

        keras.utils.set_random_seed(123)
    source = T.ActorCritic(4, 2, 16)
    before = {name: _weights(getattr(source, name), framework)
              for name in ("actor_torso", "critic_torso", "actor_head", "critic_head")}
    net = fn(source)
    expect(net is not None, "frozen_feature_extractor returned None: return the new network.")
    expect(net is not source, "you returned the source network itself: build a new ActorCritic and copy the torsos into "
           "it, so the source agent keeps its own weights and stays trainable.")
    expect(_trainable(source.actor_torso, framework) and _trainable(source.critic_torso, framework),
           "the *source* network's torsos are frozen now: freeze the copy's torsos, not the source's (a copy made with "
           "copy.deepcopy or a new ActorCritic, then its own layers).")
    for name, weights in before.items():
        expect(_same(_weights(getattr(source, name), framework), weights), f"the source's {name} changed; leave the source unchanged.")
    for name in ("actor_torso", "critic_torso"):
        expect(_same(_weights(getattr(net, name), framework), before[name]), f"the new network's {name} does not hold the "
               "source's weights: copy them (load_state_dict / set_weights), otherwise there is nothing to transfer.")
        expect(not _trainable(getattr(net, name), framework), f"the new network's {name} is still trainable: freeze it ("
               + ("requires_grad = False on its parameters)." if framework == "torch" else "layer.trainable = False)."))
    for name in ("actor_head", "critic_head"):
        expect(not _same(_weights(getattr(net, name), framework), before[name]), f"the {name} was copied from the source: "
               "the frozen-features strategy gives the target *new*, randomly initialised heads.")
        expect(_trainable(getattr(net, name), framework), f"the {name} is frozen too: only the torsos are frozen; the new "
               "heads are what learns the target.")
    return "The torsos are a fixed feature extractor; only the new heads will learn."


# --- 05 Taylor & Stone's metrics --------------------------------------------------------------------------------
def _linear(a: float, b: float, steps: np.ndarray) -> np.ndarray:
    return a + b * steps


@check("05_rl_transfer", "curve_metrics")
def _curve_metrics(fn, framework: str) -> str:
    steps = np.arange(0, 11, dtype=np.float64) * 1000.0  # 0 .. 10k, budget T = 10k
    transfer = _linear(100.0, 0.03, steps)  # 100 -> 400
    scratch = _linear(20.0, 0.02, steps)  # 20 -> 220
    got = fn(steps.copy(), transfer.copy(), scratch.copy(), 250.0)
    expect(isinstance(got, dict), f"return a dict with the five metrics; received {type(got).__name__}.")
    keys = {"jumpstart", "asymptotic", "area", "transfer_ratio", "time_to_threshold"}
    expect(keys <= set(got), f"the dict lacks {sorted(keys - set(got))}.")
    # Closed forms: a straight line's trapezoid area is exact: average = a + b T / 2.
    area_t, area_s = 100.0 + 0.03 * 5000, 20.0 + 0.02 * 5000  # 250, 120
    expect(np.isclose(got["jumpstart"], 80.0), f"jumpstart {got['jumpstart']}: it is R_T(0) - R_S(0), the *first* "
           "returns (100 - 20 = 80 here)" + (", not the last ones." if np.isclose(got["jumpstart"], 180.0) else "."))
    expect(not np.isclose(got["asymptotic"], 400.0), "asymptotic performance is the mean of the last 3 evaluations "
           "(less noisy than the last one alone).")
    expect(np.isclose(got["asymptotic"], 370.0), f"asymptotic {got['asymptotic']}: the mean of the last 3 "
           "returns (340, 370, 400) is 370 here.")
    expect(not np.isclose(got["area"], area_t * 10_000), "the area is divided by the budget T (steps[-1] - steps[0]), so it "
           "reads as an average return.")
    expect(not np.isclose(got["area"], float(np.sum(transfer))), "the sum of the returns is not the area: weight each "
           "interval by its length in steps (trapezoid rule), then divide by the budget.")
    expect(np.isclose(got["area"], area_t), f"area {got['area']}: the trapezoid rule gives {area_t} for a straight line "
           "from 100 to 400.")
    expect(not np.isclose(got["transfer_ratio"], area_t / area_s), "the transfer ratio is (A_T - A_S) / A_S: a relative "
           "gain, 0 when transfer changes nothing; you returned A_T / A_S.")
    expect(np.isclose(got["transfer_ratio"], (area_t - area_s) / area_s), f"transfer ratio {got['transfer_ratio']}: "
           f"(A_T - A_S) / A_S = {(area_t - area_s) / area_s:.4f} here.")
    expect(got["time_to_threshold"] is not None and np.isclose(got["time_to_threshold"], 5000.0),
           f"time to threshold {got['time_to_threshold']}: the first step whose return is >= 250 is 5000 here (the "
           "return 250 counts: >=, not >).")
    never = fn(steps.copy(), scratch.copy(), scratch.copy(), 475.0)
    expect(never["time_to_threshold"] is None, f"a curve that never reaches the threshold must give None (not reached), "
           f"not {never['time_to_threshold']!r}: a budget or -1 would look like a measured time.")
    return "One curve, five answers: first policy, end point, whole run, relative gain, speed."
