"""Transfer in reinforcement learning, the framework-neutral part (numpy + gymnasium only).

What is here:

* **Environment variants.** ``make_env("CartPole-v1", gravity=40.0)`` builds a gymnasium environment whose
  physics differ from the default. CartPole caches two derived quantities, ``total_mass = masscart + masspole``
  and ``polemass_length = masspole * length``; changing a mass or the (half-)length without recomputing them
  leaves the dynamics half-changed, so :func:`make_env` recomputes both. Parameters that would make the
  physics meaningless (a non-positive mass, length, gravity or time step) are refused.
* **Taylor & Stone's transfer metrics** (Taylor & Stone 2009, *Transfer Learning for Reinforcement Learning
  Domains: A Survey*, JMLR 10), computed from learning curves: return ``R(t)`` after ``t`` environment steps,
  evaluated at steps ``t_0 = 0 < t_1 < ... < t_K = T`` (the budget). With ``T`` a transfer run and ``S`` the
  scratch run of the same seed:

  - jumpstart ``J = R_T(0) - R_S(0)``: how much better the very first policy is;
  - asymptotic performance ``R(T)``: the mean return of the last few evaluations;
  - total reward ``A = (1/T) ∫_0^T R(t) dt`` (trapezoid rule): the area under the curve, divided by the
    budget so it reads as "the average return over training";
  - transfer ratio ``r = (A_T - A_S) / A_S``;
  - time to threshold ``t* = min{t_k : R(t_k) >= θ}``, *not reached* (``None``) when no evaluation reaches
    ``θ``; summaries then use the budget ``T`` as a censored value (a lower bound) and say so.

* **Evaluation helpers**: run a policy, given as a function ``logits(obs (N, obs_dim)) -> (N, n_actions)``,
  greedily (``argmax``) or sampled (``a ~ softmax(logits)``) on several episodes in lock-step.
* **Generalised advantage estimation** in numpy (:func:`compute_gae`), the reference the agents' code is
  tested against, and :class:`PPOConfig`, the hyper-parameters of the agents in ``transfer_course.torch.rl`` and
  ``transfer_course.tensorflow.rl`` (Schulman et al. 2017, *Proximal Policy Optimization Algorithms*;
  the layout follows cleanRL's ``ppo.py``).
* **Pictures**: learning curves with a band over seeds, a bar chart of the metrics, pole-angle trajectories.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from .errors import choices_message

__all__ = [
    "LESSON_BUDGETS",
    "VARIANT_PARAMETERS",
    "LearningCurve",
    "PPOConfig",
    "area_under_curve",
    "asymptotic_performance",
    "check_spaces",
    "compute_gae",
    "describe_env",
    "evaluate_policy",
    "format_metrics_table",
    "jumpstart",
    "lesson_budget",
    "make_env",
    "make_vector_env",
    "mean_std",
    "plot_learning_curves",
    "plot_metrics",
    "plot_trajectories",
    "record_trajectory",
    "time_to_threshold",
    "transfer_metrics",
    "transfer_ratio",
]

#: The physics each environment lets you change (attributes of ``env.unwrapped``) and their default values.
VARIANT_PARAMETERS = {
    "CartPole-v1": {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5, "force_mag": 10.0, "tau": 0.02},
    "Acrobot-v1": {"LINK_LENGTH_1": 1.0, "LINK_LENGTH_2": 1.0, "LINK_MASS_1": 1.0, "LINK_MASS_2": 1.0},
}
#: Parameters that must stay strictly positive for the physics to mean anything. ``force_mag`` may be negative
#: (that swaps the meaning of the two actions) but not zero (the cart could not move).
_POSITIVE = {"gravity", "masscart", "masspole", "length", "tau", "LINK_LENGTH_1", "LINK_LENGTH_2", "LINK_MASS_1", "LINK_MASS_2"}
_NONZERO = {"force_mag"}

#: Environment steps and seeds of lesson 05 per profile. The source agent trains for the profile's ``rl_steps``,
#: except in the quick profile: 20k steps give a policy that still wobbles, and its transfer would say little.
LESSON_BUDGETS = {
    "quick": {"source_steps": 40_000, "target_steps": 20_000, "second_steps": 15_000, "seeds": 1, "second_seeds": 1, "eval_every": 2_500},
    "default": {"target_steps": 40_000, "second_steps": 25_000, "seeds": 3, "second_seeds": 3, "eval_every": 2_500},
    "full": {"target_steps": 100_000, "second_steps": 60_000, "seeds": 5, "second_seeds": 5, "eval_every": 5_000},
}


def lesson_budget(profile) -> dict:
    """Lesson 05's budget for a :class:`~transfer_course.profiles.Profile` (source steps: its ``rl_steps``, at least 40k)."""
    return {"source_steps": profile.rl_steps, **LESSON_BUDGETS[profile.name]}


@dataclasses.dataclass
class PPOConfig:
    """Hyper-parameters of the PPO actor-critic agents (both frameworks read the same fields)."""

    #: environments stepped in lock-step; each rollout gathers ``num_envs * num_steps`` transitions
    num_envs: int = 4
    #: steps per environment in one rollout
    num_steps: int = 128
    #: Adam learning rate of the head layers (and of everything when training from scratch)
    learning_rate: float = 2.5e-3
    #: learning rate of reused (transferred) layers = ``learning_rate * reused_lr_scale`` when fine-tuning
    reused_lr_scale: float = 0.3
    #: decay the learning rates linearly to zero over the run's budget
    anneal_lr: bool = True
    #: discount factor γ
    gamma: float = 0.99
    #: GAE's λ: 0 is one-step TD, 1 is the Monte-Carlo return
    gae_lambda: float = 0.95
    #: minibatches per epoch over a rollout
    num_minibatches: int = 4
    #: passes over each rollout
    update_epochs: int = 4
    #: PPO's clip range ε: the probability ratio is kept in [1 - ε, 1 + ε]
    clip_coef: float = 0.2
    #: weight of the entropy bonus
    ent_coef: float = 0.01
    #: weight of the value loss
    vf_coef: float = 0.5
    #: gradients are rescaled to at most this global norm
    max_grad_norm: float = 0.5
    #: width of the two hidden layers of the actor and of the critic
    hidden: int = 64

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def __post_init__(self):
        for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive integer; received {getattr(self, name)!r}.")
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"num_envs * num_steps = {self.batch_size} must be divisible by num_minibatches = "
                             f"{self.num_minibatches}.")
        if not 0 < self.reused_lr_scale <= 1:
            raise ValueError(f"reused_lr_scale must be in (0, 1]; received {self.reused_lr_scale!r}.")


# --- environments ---------------------------------------------------------------------------------------
def _validate_variant(env_id: str, variant: dict) -> dict:
    if env_id not in VARIANT_PARAMETERS:
        raise ValueError(choices_message("environment", env_id, VARIANT_PARAMETERS))
    known = VARIANT_PARAMETERS[env_id]
    clean = {}
    for name, value in variant.items():
        if name not in known:
            raise ValueError(f"{choices_message(f'{env_id} variant parameter', name, known)}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{env_id} variant parameter {name} must be a number; received {value!r}.") from None
        if not math.isfinite(value):
            raise ValueError(f"{env_id} variant parameter {name} must be finite; received {value!r}.")
        if name in _POSITIVE and value <= 0:
            raise ValueError(f"{env_id}: {name}={value!r} makes the physics meaningless; it must be > 0 "
                             f"(default {known[name]}).")
        if name in _NONZERO and value == 0:
            raise ValueError(f"{env_id}: {name}=0 means the cart can never move; use a non-zero force "
                             f"(negative swaps the two actions; default {known[name]}).")
        clean[name] = value
    return clean


def make_env(env_id: str = "CartPole-v1", render_mode: str | None = None, **variant):
    """A gymnasium environment with the physics in ``variant`` changed on ``env.unwrapped``.

    CartPole's derived quantities ``total_mass`` and ``polemass_length`` are recomputed after the change.
    """
    import gymnasium as gym

    variant = _validate_variant(env_id, variant)
    env = gym.make(env_id, render_mode=render_mode)
    core = env.unwrapped
    for name, value in variant.items():
        setattr(core, name, value)
    if env_id == "CartPole-v1":
        core.total_mass = core.masspole + core.masscart
        core.polemass_length = core.masspole * core.length
    return env


def make_vector_env(env_id: str = "CartPole-v1", num_envs: int = 4, **variant):
    """``num_envs`` copies of :func:`make_env` in one ``SyncVectorEnv`` (same process, no subprocesses), with the
    episode returns recorded and finished episodes reset within the same step (``AutoresetMode.SAME_STEP``)."""
    import gymnasium as gym

    _validate_variant(env_id, variant)  # fail here, not inside a worker
    envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id, **variant) for _ in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def describe_env(env) -> dict:
    """The physics parameters of an environment (its ``unwrapped`` attributes), e.g. to print or compare."""
    core = env.unwrapped
    env_id = core.spec.id if core.spec is not None else type(core).__name__
    names = list(VARIANT_PARAMETERS.get(env_id, {}))
    if env_id == "CartPole-v1":
        names += ["total_mass", "polemass_length"]
    return {name: float(getattr(core, name)) for name in names}


def check_spaces(obs_dim: int, n_actions: int, env) -> None:
    """Raise if ``env``'s observation or action space does not fit a network made for ``obs_dim`` inputs and
    ``n_actions`` discrete actions."""
    import gymnasium as gym

    space, actions = env.single_observation_space if hasattr(env, "single_observation_space") else env.observation_space, \
        env.single_action_space if hasattr(env, "single_action_space") else env.action_space
    if not isinstance(actions, gym.spaces.Discrete):
        raise TypeError(f"the target's action space is {actions}, but the network chooses among {n_actions} "
                         "discrete actions; a continuous action space needs a different policy head.")
    if space.shape != (obs_dim,):
        raise ValueError(f"the target's observations have shape {space.shape}, but the source network takes "
                         f"({obs_dim},); reuse a network only on observations of the same layout (or map them first).")
    if int(actions.n) != n_actions:
        raise ValueError(f"the target has {int(actions.n)} actions, but the source network outputs {n_actions}; "
                         "transfer the torso and give the target a new output layer with the right size.")


# --- advantage estimation and evaluation ---------------------------------------------------------------------
def compute_gae(rewards, values, dones, next_value, next_done, gamma: float = 0.99, lam: float = 0.95):
    """Generalised advantage estimation (Schulman et al. 2016) over a rollout.

    ``rewards``, ``values``, ``dones``: ``(num_steps, num_envs)``; ``dones[t]`` is 1 when the observation at
    step ``t`` starts a new episode. ``next_value``, ``next_done``: ``(num_envs,)`` for the step after the rollout.
    ``δ_t = r_t + γ V(s_{t+1}) (1 - d_{t+1}) - V(s_t)``, ``A_t = δ_t + γ λ (1 - d_{t+1}) A_{t+1}``.
    Returns ``(advantages, returns = advantages + values)``, both ``(num_steps, num_envs)``.
    """
    rewards, values, dones = (np.asarray(a, dtype=np.float64) for a in (rewards, values, dones))
    advantages = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        if t == len(rewards) - 1:
            not_done, next_v = 1.0 - np.asarray(next_done, dtype=np.float64), np.asarray(next_value, dtype=np.float64)
        else:
            not_done, next_v = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * next_v * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        advantages[t] = last
    return advantages, advantages + values


def _act(logits: np.ndarray, greedy: bool, rng: np.random.Generator) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if greedy:
        return logits.argmax(-1)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (rng.random((len(p), 1)) > np.cumsum(p, -1)).sum(-1).clip(max=p.shape[-1] - 1)


def evaluate_policy(logits_fn: Callable, env_id: str = "CartPole-v1", episodes: int = 10, greedy: bool = True,
                    seed: int = 0, **variant) -> np.ndarray:
    """Returns of ``episodes`` episodes of the policy ``logits_fn`` (numpy ``(N, obs_dim) -> (N, n_actions)``),
    run in lock-step so each step is one batched forward pass; greedy (``argmax``) or sampled from the softmax."""
    envs = [make_env(env_id, **variant) for _ in range(episodes)]
    rng = np.random.default_rng(seed)
    obs = np.stack([env.reset(seed=seed * 10_000 + i)[0] for i, env in enumerate(envs)])
    returns, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        actions = _act(logits_fn(obs[idx].astype(np.float32)), greedy, rng)
        for i, a in zip(idx, actions):
            o, r, terminated, truncated, _ = envs[i].step(int(a))
            obs[i], returns[i] = o, returns[i] + r
            alive[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns


def record_trajectory(logits_fn: Callable, env_id: str = "CartPole-v1", greedy: bool = True, seed: int = 0,
                      **variant) -> np.ndarray:
    """The observations ``(steps, obs_dim)`` of one episode (for CartPole column 2 is the pole angle in radians)."""
    env, rng = make_env(env_id, **variant), np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    seen, done = [obs], False
    while not done:
        action = _act(logits_fn(obs[None].astype(np.float32)), greedy, rng)[0]
        obs, _, terminated, truncated, _ = env.step(int(action))
        seen.append(obs)
        done = terminated or truncated
    env.close()
    return np.stack(seen)


# --- learning curves and Taylor & Stone's metrics ---------------------------------------------------------------
@dataclasses.dataclass
class LearningCurve:
    """Mean evaluation return ``returns[k]`` after ``steps[k]`` environment steps (``steps[0] == 0``)."""

    steps: np.ndarray
    returns: np.ndarray

    def __post_init__(self):
        self.steps = np.asarray(self.steps, dtype=np.float64).reshape(-1)
        self.returns = np.asarray(self.returns, dtype=np.float64).reshape(-1)
        if len(self.steps) != len(self.returns) or len(self.steps) < 2:
            raise ValueError(f"a learning curve needs as many steps as returns, at least 2; received "
                             f"{len(self.steps)} steps and {len(self.returns)} returns.")
        if np.any(np.diff(self.steps) <= 0):
            raise ValueError("a learning curve's steps must increase strictly.")

    @property
    def budget(self) -> float:
        return float(self.steps[-1])

    def to_dict(self) -> dict:
        return {"steps": self.steps.tolist(), "returns": self.returns.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> LearningCurve:
        return cls(data["steps"], data["returns"])


def _curve(c) -> LearningCurve:
    if isinstance(c, LearningCurve):
        return c
    if isinstance(c, dict):
        return LearningCurve.from_dict(c)
    raise TypeError(f"expected a LearningCurve (steps, returns); received {type(c).__name__}.")


def jumpstart(transfer, scratch) -> float:
    """``J = R_T(0) - R_S(0)``: the first evaluation of the transfer run minus that of the scratch run."""
    return float(_curve(transfer).returns[0] - _curve(scratch).returns[0])


def asymptotic_performance(curve, last: int = 3) -> float:
    """The mean return of the last ``last`` evaluations: the performance the run ends with."""
    if last < 1:
        raise ValueError(f"last must be >= 1; received {last}.")
    return float(_curve(curve).returns[-last:].mean())


def area_under_curve(curve) -> float:
    """Total reward ``A = (1/T) ∫ R(t) dt`` by the trapezoid rule: the average return over the budget ``T``."""
    c = _curve(curve)
    area = float(np.sum((c.returns[1:] + c.returns[:-1]) / 2 * np.diff(c.steps)))
    return area / float(c.steps[-1] - c.steps[0])


def transfer_ratio(transfer, scratch) -> float:
    """``r = (A_T - A_S) / A_S``: the relative gain in area under the curve (0 means no gain)."""
    a_t, a_s = area_under_curve(transfer), area_under_curve(scratch)
    if a_s <= 0:
        raise ValueError(f"the scratch run's area under the curve is {a_s}; the transfer ratio needs a positive one.")
    return (a_t - a_s) / a_s


def time_to_threshold(curve, threshold: float) -> float | None:
    """The first step at which the curve reaches ``threshold``; ``None`` (not reached) if it never does."""
    c = _curve(curve)
    hit = np.flatnonzero(c.returns >= threshold)
    return float(c.steps[hit[0]]) if len(hit) else None


def mean_std(values: Sequence[float], what: str = "value") -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) over seeds; a spread needs at least 2 seeds."""
    values = np.asarray(list(values), dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"a spread (mean ± std) of {what} needs at least 2 seeds; received {len(values)}. "
                         "Run more seeds, or report the single value without a spread.")
    return float(values.mean()), float(values.std(ddof=1))


METRICS = ("jumpstart", "asymptotic", "area", "transfer_ratio", "time_to_threshold")


def transfer_metrics(curves: dict, threshold: float, baseline: str = "scratch", spread: bool = True,
                     last: int = 3) -> dict:
    """Taylor & Stone's five metrics of each method against ``baseline``, seed by seed, then summarised.

    ``curves``: ``{method: [LearningCurve per seed]}``, seed ``i`` of every method paired with seed ``i`` of the
    baseline. Returns ``{method: {metric: mean, metric + "_std": std (if spread), "reached": k, "seeds": n}}``
    with metrics ``jumpstart``, ``asymptotic``, ``area``, ``transfer_ratio``, ``time_to_threshold``. A run
    that never reaches ``threshold`` counts with its budget (a lower bound): ``reached`` says how many did.
    """
    if baseline not in curves:
        raise ValueError(choices_message("baseline", baseline, curves))
    base = [_curve(c) for c in curves[baseline]]
    table = {}
    for method, runs in curves.items():
        runs = [_curve(c) for c in runs]
        if len(runs) != len(base):
            raise ValueError(f"{method!r} has {len(runs)} seeds but {baseline!r} has {len(base)}; pair them seed by seed.")
        if spread and len(runs) < 2:
            raise ValueError(f"a spread (mean ± std) needs at least 2 seeds; {method!r} has {len(runs)}. "
                             "Run more seeds, or pass spread=False to report single values.")
        times = [time_to_threshold(c, threshold) for c in runs]
        per_seed = {
            "jumpstart": [jumpstart(c, b) for c, b in zip(runs, base)],
            "asymptotic": [asymptotic_performance(c, last) for c in runs],
            "area": [area_under_curve(c) for c in runs],
            "transfer_ratio": [transfer_ratio(c, b) for c, b in zip(runs, base)],
            "time_to_threshold": [t if t is not None else c.budget for t, c in zip(times, runs)],
        }
        row = {"seeds": len(runs), "reached": sum(t is not None for t in times)}
        for name, values in per_seed.items():
            if spread:
                row[name], row[name + "_std"] = mean_std(values, name)
            else:
                row[name] = float(np.mean(values))
        table[method] = row
    return table


def format_metrics_table(table: dict, title: str = "") -> str:
    """The table of :func:`transfer_metrics` as aligned text; censored times are shown as ``≥``."""
    head = f"{'method':12s} {'jumpstart':>15s} {'asymptotic':>15s} {'area (avg R)':>15s} {'transfer ratio':>15s} " \
           f"{'steps to θ':>18s}"
    lines = [title, head] if title else [head]
    for method, row in table.items():
        def cell(name, fmt, row=row):
            text = format(row[name], fmt)
            return text + (" ± " + format(row[name + "_std"], fmt) if name + "_std" in row else "")
        steps = cell("time_to_threshold", ".0f")
        if row["reached"] < row["seeds"]:
            steps = "≥ " + steps + f" ({row['reached']}/{row['seeds']})"
        lines.append(f"{method:12s} {cell('jumpstart', '.1f'):>15s} {cell('asymptotic', '.1f'):>15s} "
                     f"{cell('area', '.1f'):>15s} {cell('transfer_ratio', '.2f'):>15s} {steps:>18s}")
    return "\n".join(lines)


# --- pictures ---------------------------------------------------------------------------------------------------
_COLORS = {"scratch": "tab:gray", "frozen": "tab:blue", "fine-tune": "tab:orange"}


def plot_learning_curves(curves: dict, threshold: float | None = None, title: str = "", ax=None):
    """Mean return vs environment steps per method, with a band of ± one standard deviation over seeds."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for i, (method, runs) in enumerate(curves.items()):
        runs = [_curve(c) for c in runs]
        steps = runs[0].steps
        if any(len(c.steps) != len(steps) or np.any(c.steps != steps) for c in runs):
            raise ValueError(f"the seeds of {method!r} were evaluated at different steps; use the same eval_every.")
        r = np.stack([c.returns for c in runs])
        color = _COLORS.get(method, f"C{i}")
        ax.plot(steps, r.mean(0), color=color, label=f"{method} ({len(runs)} seed{'s' * (len(runs) > 1)})")
        if len(runs) > 1:
            sd = r.std(0, ddof=1)
            ax.fill_between(steps, r.mean(0) - sd, r.mean(0) + sd, color=color, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=1, label=f"threshold θ = {threshold:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_metrics(table: dict, title: str = ""):
    """A bar chart per metric of :func:`transfer_metrics`, with ± std error bars when there is a spread."""
    import matplotlib.pyplot as plt

    labels = {"jumpstart": "jumpstart", "asymptotic": "asymptotic return", "area": "area (average return)",
              "transfer_ratio": "transfer ratio", "time_to_threshold": "steps to threshold"}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 3))
    methods = list(table)
    for ax, metric in zip(axes, METRICS):
        values = [table[m][metric] for m in methods]
        errors = [table[m].get(metric + "_std", 0.0) for m in methods]
        ax.bar(range(len(methods)), values, yerr=errors, capsize=3,
               color=[_COLORS.get(m, f"C{i}") for i, m in enumerate(methods)])
        ax.set_xticks(range(len(methods)), methods, rotation=30, fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(labels[metric], fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_trajectories(trajectories: dict, index: int = 2, ylabel: str = "pole angle (rad)", limit: float | None = 0.2095):
    """One observation component over time for several episodes ``{label: (steps, obs_dim) array}``; CartPole's
    pole angle is index 2 and an episode ends when it leaves ±0.2095 rad (12°)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3))
    for label, obs in trajectories.items():
        ax.plot(np.asarray(obs)[:, index], label=f"{label} ({len(obs) - 1} steps)")
    if limit is not None:
        for y in (-limit, limit):
            ax.axhline(y, color="k", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
