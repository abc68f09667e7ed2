"""transfer_course.rl: environment variants (and their validation), Taylor & Stone's metrics against closed forms,
GAE, evaluation helpers and plots. NumPy and gymnasium only: no framework is imported here."""
import matplotlib
import nbformat
import numpy as np
import pytest
from helpers import ROOT

from transfer_course.profiles import PROFILES
from transfer_course.rl import (
    LearningCurve,
    PPOConfig,
    area_under_curve,
    asymptotic_performance,
    check_spaces,
    compute_gae,
    describe_env,
    evaluate_policy,
    format_metrics_table,
    jumpstart,
    lesson_budget,
    make_env,
    make_vector_env,
    mean_std,
    plot_learning_curves,
    plot_metrics,
    plot_trajectories,
    record_trajectory,
    time_to_threshold,
    transfer_metrics,
    transfer_ratio,
)

matplotlib.use("Agg")
STATE = np.array([0.01, -0.02, 0.05, 0.1])


def step_from(env, state, action):
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    return env.step(action)[0]


# --- environment variants -------------------------------------------------------------------------------------
def test_gravity_changes_the_dynamics():
    base, heavy = step_from(make_env(), STATE, 1), step_from(make_env(gravity=40.0), STATE, 1)
    assert not np.allclose(base, heavy)
    assert heavy[3] > base[3]  # the pole (leaning right) accelerates faster under stronger gravity
    assert np.allclose(base[:3], step_from(make_env(), STATE, 1)[:3])  # and the simulator is deterministic


def test_inverted_force_swaps_the_actions():
    assert np.allclose(step_from(make_env(force_mag=-10.0), STATE, 1), step_from(make_env(), STATE, 0))
    assert np.allclose(step_from(make_env(force_mag=-10.0), STATE, 0), step_from(make_env(), STATE, 1))


def test_masses_and_length_are_recomputed_consistently():
    env = make_env(masspole=0.5, masscart=2.0, length=1.0)
    core = env.unwrapped
    assert core.total_mass == pytest.approx(2.5) and core.polemass_length == pytest.approx(0.5)
    assert describe_env(env)["total_mass"] == pytest.approx(2.5)
    # The same physics set by hand, derived quantities included, gives the same step ...
    import gymnasium as gym

    manual = gym.make("CartPole-v1")
    m = manual.unwrapped
    m.masspole, m.masscart, m.length = 0.5, 2.0, 1.0
    m.total_mass, m.polemass_length = 2.5, 0.5
    assert np.allclose(step_from(env, STATE, 1), step_from(manual, STATE, 1))
    # ... and forgetting to recompute them gives a different, half-changed one.
    stale = gym.make("CartPole-v1")
    stale.unwrapped.masspole, stale.unwrapped.masscart, stale.unwrapped.length = 0.5, 2.0, 1.0
    assert not np.allclose(step_from(env, STATE, 1), step_from(stale, STATE, 1))


def test_vector_env_carries_the_variant():
    envs = make_vector_env("CartPole-v1", 3, gravity=40.0)
    envs.reset(seed=0)
    assert envs.num_envs == 3 and all(e.unwrapped.gravity == 40.0 for e in envs.unwrapped.envs)
    envs.close()


@pytest.mark.parametrize("kwargs,match", [
    ({"env_id": "Pendulum-v9"}, "Unknown environment 'Pendulum-v9'"),
    ({"gravity": 9.8, "pole_length": 2.0}, "Unknown CartPole-v1 variant parameter 'pole_length'"),
    ({"masspole": 0.0}, "masspole=0.0 makes the physics meaningless"),
    ({"length": -1.0}, "length=-1.0 makes the physics meaningless"),
    ({"masscart": -2}, "masscart=-2.0 makes the physics meaningless"),
    ({"force_mag": 0}, "cart can never move"),
    ({"gravity": "strong"}, "must be a number"),
    ({"tau": float("nan")}, "must be finite"),
])
def test_bad_variants_are_refused_with_a_clear_error(kwargs, match):
    env_id = kwargs.pop("env_id", "CartPole-v1")
    with pytest.raises((ValueError, TypeError), match=match):
        make_env(env_id, **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        make_vector_env(env_id, 2, **kwargs)


def test_spaces_that_do_not_fit_the_source_network_are_refused():
    check_spaces(4, 2, make_env())
    with pytest.raises(ValueError, match=r"observations have shape \(6,\).*takes \(4,\)"):
        check_spaces(4, 2, make_env("Acrobot-v1"))
    with pytest.raises(ValueError, match="has 2 actions, but the source network outputs 3"):
        check_spaces(4, 3, make_env())
    import gymnasium as gym

    with pytest.raises(TypeError, match="discrete actions"):
        check_spaces(3, 2, gym.make("Pendulum-v1"))


# --- GAE and evaluation -------------------------------------------------------------------------------------------
def test_gae_closed_forms():
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [0.2], [0.1]])
    no_done = np.zeros((3, 1))
    # λ = 1: the advantage is the discounted return (bootstrapped with next_value) minus the value
    adv, ret = compute_gae(rewards, values, no_done, np.array([4.0]), np.array([0.0]), gamma=0.9, lam=1.0)
    g2 = 3 + 0.9 * 4
    g1 = 2 + 0.9 * g2
    g0 = 1 + 0.9 * g1
    assert np.allclose(adv[:, 0], [g0 - 0.5, g1 - 0.2, g2 - 0.1]) and np.allclose(ret, adv + values)
    # λ = 0: one-step TD errors
    adv0, _ = compute_gae(rewards, values, no_done, np.array([4.0]), np.array([0.0]), gamma=0.9, lam=0.0)
    assert np.allclose(adv0[:, 0], [1 + 0.9 * 0.2 - 0.5, 2 + 0.9 * 0.1 - 0.2, 3 + 0.9 * 4 - 0.1])
    # an episode starting at step 2 cuts the chain: A[1] = r[1] - V[1]
    dones = np.array([[0.0], [0.0], [1.0]])
    adv_cut, _ = compute_gae(rewards, values, dones, np.array([4.0]), np.array([1.0]), gamma=0.9, lam=1.0)
    assert np.allclose(adv_cut[:, 0], [1 + 0.9 * 2 - 0.5, 2 - 0.2, 3 - 0.1])


def test_evaluate_policy_greedy_and_sampled():
    push_right = lambda obs: np.tile([0.0, 1.0], (len(obs), 1))
    greedy = evaluate_policy(push_right, episodes=4, greedy=True, seed=0)
    assert greedy.shape == (4,) and greedy.max() < 15  # always pushing right topples the pole quickly
    uniform = lambda obs: np.zeros((len(obs), 2))
    sampled = evaluate_policy(uniform, episodes=30, greedy=False, seed=0)
    assert 15 < sampled.mean() < 35  # a random policy survives about 22 steps
    assert np.array_equal(sampled, evaluate_policy(uniform, episodes=30, greedy=False, seed=0))
    traj = record_trajectory(push_right, seed=0)
    assert traj.shape[1] == 4 and abs(traj[-1, 2]) > 0.2  # ended because the angle left ±12°


# --- Taylor & Stone's metrics ---------------------------------------------------------------------------------------
STEPS = np.arange(0, 11) * 1000.0


def line(a, b):
    return LearningCurve(STEPS, a + b * STEPS)


def test_metrics_match_closed_forms():
    transfer, scratch = line(100.0, 0.03), line(20.0, 0.02)  # 100 -> 400 and 20 -> 220 over 10k steps
    assert jumpstart(transfer, scratch) == pytest.approx(80.0)
    assert asymptotic_performance(transfer) == pytest.approx((340 + 370 + 400) / 3)
    assert asymptotic_performance(transfer, last=1) == pytest.approx(400.0)
    assert area_under_curve(transfer) == pytest.approx(250.0)  # a line's average: a + b T / 2
    assert area_under_curve(scratch) == pytest.approx(120.0)
    assert transfer_ratio(transfer, scratch) == pytest.approx(130 / 120)
    assert time_to_threshold(transfer, 250.0) == 5000.0  # reaching the threshold exactly counts
    assert time_to_threshold(scratch, 475.0) is None  # not reached: None, not a crash


def test_area_uses_the_trapezoid_rule_on_uneven_steps():
    c = LearningCurve([0, 1000, 4000], [0.0, 100.0, 100.0])
    assert area_under_curve(c) == pytest.approx((50 * 1000 + 100 * 3000) / 4000)


def test_transfer_metrics_over_seeds_with_censoring():
    curves = {"scratch": [line(20.0, 0.02), line(10.0, 0.021)],
              "fine-tune": [line(100.0, 0.03), line(120.0, 0.03)]}
    table = transfer_metrics(curves, threshold=230.0)
    ft, sc = table["fine-tune"], table["scratch"]
    assert ft["jumpstart"] == pytest.approx(95.0) and ft["jumpstart_std"] == pytest.approx(np.std([80, 110], ddof=1))
    assert sc["jumpstart"] == 0.0 and sc["transfer_ratio"] == 0.0
    assert ft["time_to_threshold"] == pytest.approx((5000 + 4000) / 2) and ft["reached"] == 2
    # scratch reaches 230 in neither seed: each counts with its budget, and "reached" says so
    assert sc["reached"] == 0 and sc["time_to_threshold"] == 10_000
    text = format_metrics_table(table)
    assert "≥ 10000 ± 0 (0/2)" in text and "fine-tune" in text


def test_too_few_seeds_for_a_spread():
    curves = {"scratch": [line(20.0, 0.02)], "frozen": [line(20.0, 0.03)]}
    with pytest.raises(ValueError, match="needs at least 2 seeds"):
        transfer_metrics(curves, 300.0)
    single = transfer_metrics(curves, 300.0, spread=False)
    assert "jumpstart_std" not in single["frozen"] and single["frozen"]["area"] == pytest.approx(170.0)
    with pytest.raises(ValueError, match="needs at least 2 seeds; received 1"):
        mean_std([1.0])


def test_metric_input_errors():
    with pytest.raises(ValueError, match="increase strictly"):
        LearningCurve([0, 10, 10], [1, 2, 3])
    with pytest.raises(ValueError, match="as many steps as returns"):
        LearningCurve([0, 10], [1, 2, 3])
    with pytest.raises(ValueError, match="Unknown baseline 'random'"):
        transfer_metrics({"scratch": [line(1, 0)] * 2}, 10.0, baseline="random")
    with pytest.raises(ValueError, match="pair them seed by seed"):
        transfer_metrics({"scratch": [line(1, 0)] * 2, "frozen": [line(1, 0)] * 3}, 10.0)
    with pytest.raises(TypeError, match="expected a LearningCurve"):
        area_under_curve([1, 2, 3])


def test_config_budget_and_plots():
    with pytest.raises(ValueError, match="divisible by num_minibatches"):
        PPOConfig(num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ValueError, match="reused_lr_scale"):
        PPOConfig(reused_lr_scale=0.0)
    assert PPOConfig().batch_size == 512 and PPOConfig().minibatch_size == 128
    assert lesson_budget(PROFILES["default"])["source_steps"] == PROFILES["default"].rl_steps
    assert lesson_budget(PROFILES["quick"])["seeds"] == 1 and lesson_budget(PROFILES["default"])["seeds"] == 3
    curves = {"scratch": [line(20.0, 0.02), line(10.0, 0.021)], "fine-tune": [line(100.0, 0.03), line(120.0, 0.03)]}
    ax = plot_learning_curves(curves, threshold=230.0, title="t")
    assert len(ax.collections) == 2  # one band per method
    assert len(plot_metrics(transfer_metrics(curves, 230.0)).axes) == 5
    plot_trajectories({"a": np.zeros((5, 4))})
    with pytest.raises(ValueError, match="different steps"):
        plot_learning_curves({"x": [line(1, 0), LearningCurve([0, 5], [1, 1])]})


@pytest.mark.parametrize("framework,calls", [
    ("pytorch", ["requires_grad = False", "torch.optim.Adam([", "loss.backward()", "optimizer.step()", ".clamp(",
                 "load_state_dict("]),
    ("tensorflow", [".trainable = False", "tf.GradientTape(", "apply_gradients(", "tf.clip_by_value(", "set_weights("]),
])
@pytest.mark.parametrize("folder", ["solutions", "lessons"])
def test_lesson05_writes_the_framework_out(folder, framework, calls):
    nb = nbformat.read(ROOT / folder / f"05_rl_transfer_{framework}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if folder == "lessons":  # freezing is Exercise 2, blank in the student version
        calls = [c for c in calls if "= False" not in c]
    assert not [c for c in calls if c not in code]
