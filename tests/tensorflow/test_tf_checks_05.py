"""Lesson 05 (TensorFlow): the reference solutions pass their checks; typical mistakes get specific feedback."""
import keras
import pytest
import tensorflow as tf
from helpers import reference_solution

import transfer_course.tensorflow as T
from transfer_course.exercises import CHECKS, ExerciseFailed

NOTEBOOK = "05_rl_transfer_tensorflow"
NAMES = {"tf": tf, "keras": keras, "ActorCritic": T.ActorCritic}


def run(exercise, fn):
    return CHECKS[("05_rl_transfer", exercise)](fn, framework="tensorflow")


def test_references_pass():
    assert "episode ends" in run("gae", reference_solution(NOTEBOOK, "gae", **NAMES))
    assert "feature extractor" in run("frozen_feature_extractor", reference_solution(NOTEBOOK, "frozen_feature_extractor", **NAMES))
    assert "five answers" in run("curve_metrics", reference_solution(NOTEBOOK, "curve_metrics", **NAMES))


def _gae(mask_next=True, use_lambda=True, td_only=False, returns=False, ignore_dones=False):
    def answer(rewards, values, dones, next_value, next_done, gamma, lam):
        if ignore_dones:
            dones, next_done = tf.zeros_like(dones), tf.zeros_like(next_done)
        out, last = [], tf.zeros_like(next_value)
        for t in reversed(range(len(rewards))):
            next_v = next_value if t == len(rewards) - 1 else values[t + 1]
            if mask_next:
                not_done = 1.0 - (next_done if t == len(rewards) - 1 else dones[t + 1])
            else:
                not_done = 1.0 - dones[t]
            delta = rewards[t] + gamma * next_v * not_done - values[t]
            last = delta if td_only else delta + gamma * (lam if use_lambda else 1.0) * not_done * last
            out.append(last)
        adv = tf.stack(out[::-1])
        return adv + values if returns else adv
    return answer


@pytest.mark.parametrize("wrong,feedback", [
    (_gae(ignore_dones=True), "flow across the end of an episode"),
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
    if heads:
        net.set_weights(source.get_weights())
    for name in ("actor_torso", "critic_torso"):
        getattr(net, name).set_weights(getattr(source, name).get_weights())
        getattr(net, name).trainable = not freeze
    if freeze_heads:
        net.actor_head.trainable = net.critic_head.trainable = False
    return net


def _freeze_source(source):
    net = _copy_torsos(source, freeze=False)
    source.actor_torso.trainable = source.critic_torso.trainable = False
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


def test_curve_metrics_mistake_in_this_framework():
    """The metrics are NumPy in both frameworks (the PyTorch suite covers each mistake); one here for the wiring."""
    def no_none(steps, returns, scratch_returns, threshold):
        answer = reference_solution(NOTEBOOK, "curve_metrics", **NAMES)(steps, returns, scratch_returns, threshold)
        return {**answer, "time_to_threshold": answer["time_to_threshold"] or -1.0}
    with pytest.raises(ExerciseFailed, match="must give None"):
        run("curve_metrics", no_none)
