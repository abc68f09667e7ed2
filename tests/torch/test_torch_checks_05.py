"""Lesson 05 (PyTorch): the reference solutions pass their checks; typical mistakes get specific feedback."""
import copy

import numpy as np
import pytest
import torch
from helpers import reference_solution
from torch import nn

import transfer_course.torch as T
from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "05_rl_transfer_pytorch"
NAMES = {"torch": torch, "nn": nn, "ActorCritic": T.ActorCritic}


def run(exercise, fn):
    return CHECKS[("05_rl_transfer", exercise)](fn, framework="torch")


def test_references_pass():
    assert "episode ends" in run("gae", reference_solution(NOTEBOOK, "gae", **NAMES))
    assert "feature extractor" in run("frozen_feature_extractor", reference_solution(NOTEBOOK, "frozen_feature_extractor", **NAMES))
    assert "five answers" in run("curve_metrics", reference_solution(NOTEBOOK, "curve_metrics", **NAMES))


def _gae(mask_next=True, use_lambda=True, td_only=False, returns=False):
    def answer(rewards, values, dones, next_value, next_done, gamma, lam):
        adv, last = torch.zeros_like(rewards), torch.zeros_like(next_value)
        for t in reversed(range(len(rewards))):
            next_v = next_value if t == len(rewards) - 1 else values[t + 1]
            if mask_next:
                not_done = 1.0 - (next_done if t == len(rewards) - 1 else dones[t + 1])
            else:
                not_done = 1.0 - dones[t]
            delta = rewards[t] + gamma * next_v * not_done - values[t]
            last = delta if td_only else delta + gamma * (lam if use_lambda else 1.0) * not_done * last
            adv[t] = last
        return adv + values if returns else adv
    return answer


def _gae_ignoring_dones(rewards, values, dones, next_value, next_done, gamma, lam):
    return _gae()(rewards, values, torch.zeros_like(dones), next_value, torch.zeros_like(next_done), gamma, lam)


@pytest.mark.parametrize("wrong,feedback", [
    (_gae_ignoring_dones, "flow across the end of an episode"),
    (_gae(mask_next=False), r"you cut the episode with dones\[t\]"),
    (_gae(td_only=True), "one-step errors"),
    (_gae(use_lambda=False), "λ is missing"),
    (_gae(returns=True), "you returned the returns"),
    (lambda *a: None, "returned None"),
])
def test_gae_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("gae", wrong)


def _copy_torsos(source, freeze=True, heads=False, freeze_heads=False):
    net = T.ActorCritic(source.obs_dim, source.n_actions, source.hidden)
    net.load_state_dict(source.state_dict()) if heads else None
    for name in ("actor_torso", "critic_torso"):
        getattr(net, name).load_state_dict(getattr(source, name).state_dict())
        for p in getattr(net, name).parameters():
            p.requires_grad = not freeze
    if freeze_heads:
        for p in [*net.actor_head.parameters(), *net.critic_head.parameters()]:
            p.requires_grad = False
    return net


def _freeze_source(source):
    net = copy.deepcopy(source)
    for p in [*source.actor_torso.parameters(), *source.critic_torso.parameters()]:
        p.requires_grad = False
    return net


@pytest.mark.parametrize("wrong,feedback", [
    (lambda s: s, "returned the source network itself"),
    (_freeze_source, "the \\*source\\* network's torsos are frozen"),
    (lambda s: _copy_torsos(s, freeze=False), "is still trainable"),
    (lambda s: _copy_torsos(s, heads=True), "was copied from the source"),
    (lambda s: _copy_torsos(s, freeze_heads=True), "is frozen too"),
    (lambda s: T.freeze_torso(T.ActorCritic(s.obs_dim, s.n_actions, s.hidden)), "does not hold the source's weights"),
])
def test_frozen_feature_extractor_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("frozen_feature_extractor", wrong)


def _metrics(**override):
    def answer(steps, returns, scratch_returns, threshold):
        def area(r):
            return float(np.sum((r[1:] + r[:-1]) / 2 * np.diff(steps)) / (steps[-1] - steps[0]))
        hit = np.flatnonzero(returns >= threshold)
        out = {"jumpstart": returns[0] - scratch_returns[0], "asymptotic": returns[-3:].mean(), "area": area(returns),
               "transfer_ratio": (area(returns) - area(scratch_returns)) / area(scratch_returns),
               "time_to_threshold": float(steps[hit[0]]) if len(hit) else None}
        out.update({k: v(steps, returns, scratch_returns, threshold) for k, v in override.items()})
        return out
    return answer


def _area_times_budget(steps, returns, scratch_returns, threshold):
    return float(np.sum((returns[1:] + returns[:-1]) / 2 * np.diff(steps)))


@pytest.mark.parametrize("wrong,feedback", [
    (_metrics(jumpstart=lambda s, r, b, t: r[-1] - b[-1]), "the \\*first\\* returns .* not the last ones"),
    (_metrics(asymptotic=lambda s, r, b, t: r[-1]), "mean of the last 3 evaluations"),
    (_metrics(area=_area_times_budget), "divided by the budget"),
    (_metrics(area=lambda s, r, b, t: float(np.sum(r))), "sum of the returns is not the area"),
    (_metrics(transfer_ratio=lambda s, r, b, t: np.mean(r) / np.mean(b)), "you returned A_T / A_S"),
    (_metrics(time_to_threshold=lambda s, r, b, t: float(s[np.flatnonzero(r >= t)[0]]) if (r >= t).any() else float(s[-1])),
     "must give None"),
    (_metrics(time_to_threshold=lambda s, r, b, t: float(s[np.flatnonzero(r > t)[0]]) if (r > t).any() else None),
     ">=, not >"),
])
def test_curve_metrics_mistakes(wrong, feedback):
    with pytest.raises(ExerciseFailed, match=feedback):
        run("curve_metrics", wrong)
