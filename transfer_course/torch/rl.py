"""A PPO actor-critic agent in PyTorch, readable top to bottom (after cleanRL's ``ppo.py``), and the weight
transfer between agents that lesson 05 studies.

PPO (Schulman et al. 2017): collect ``num_envs * num_steps`` transitions with the current policy, estimate
advantages with GAE (:func:`transfer_course.rl.compute_gae`), then take a few epochs of minibatch steps on

    L = -E[min(ρ Â, clip(ρ, 1-ε, 1+ε) Â)] + c_v · ½ E[(V(s) - R̂)²] - c_e · E[H(π(·|s))],   ρ = π(a|s) / π_old(a|s)

with the advantages ``Â`` normalised per minibatch. Shapes: observations ``(B, obs_dim)``, logits
``(B, n_actions)``, values ``(B,)``.

The network (:class:`ActorCritic`) is two MLPs, each a *torso* (two tanh layers) and a *head* (one linear layer):
``actor_torso → actor_head`` gives the action logits, ``critic_torso → critic_head`` the state value.
:func:`transfer_network` builds a target network from a source one:

* ``"scratch"``: new random weights, nothing reused;
* ``"frozen"``: the source torsos copied and frozen (``requires_grad = False``) as a feature extractor, new heads;
* ``"finetune"``: everything copied and trainable; the reused torsos get ``learning_rate * reused_lr_scale``.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..rl import (
    LearningCurve,
    PPOConfig,
    check_spaces,
    compute_gae,
    evaluate_policy,
    make_vector_env,
)
from .device import get_device

__all__ = [
    "TRANSFER_MODES",
    "ActorCritic",
    "PPOAgent",
    "freeze_torso",
    "load_agent",
    "new_heads",
    "ppo_loss",
    "transfer_network",
]

TRANSFER_MODES = ("scratch", "frozen", "finetune")
TORSOS, HEADS = ("actor_torso", "critic_torso"), ("actor_head", "critic_head")


def _layer(n_in: int, n_out: int, std: float = np.sqrt(2)) -> nn.Linear:
    """A linear layer with orthogonal weights (gain ``std``) and zero bias, PPO's usual initialisation."""
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Actor and critic MLPs: ``logits, value = net(obs)`` with obs ``(B, obs_dim)`` → ``(B, n_actions)``, ``(B,)``."""

    def __init__(self, obs_dim: int = 4, n_actions: int = 2, hidden: int = 64):
        super().__init__()
        self.obs_dim, self.n_actions, self.hidden = int(obs_dim), int(n_actions), int(hidden)
        self.actor_torso = nn.Sequential(_layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh())
        self.actor_head = _layer(hidden, n_actions, std=0.01)  # near-uniform first policy
        self.critic_torso = nn.Sequential(_layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh())
        self.critic_head = _layer(hidden, 1, std=1.0)
        self.reused: tuple = ()  # names of the parts copied from a source network (they get the lower rate)

    def forward(self, obs: torch.Tensor):
        return self.actor_head(self.actor_torso(obs)), self.critic_head(self.critic_torso(obs)).squeeze(-1)


def freeze_torso(net: ActorCritic) -> ActorCritic:
    """Freeze the actor and critic torsos (``requires_grad = False``): they become a fixed feature extractor."""
    for name in TORSOS:
        for p in getattr(net, name).parameters():
            p.requires_grad = False
    return net


def new_heads(net: ActorCritic, n_actions: int | None = None) -> ActorCritic:
    """Replace both output layers by freshly initialised ones (``n_actions`` outputs for the actor)."""
    net.n_actions = int(n_actions or net.n_actions)
    net.actor_head = _layer(net.hidden, net.n_actions, std=0.01)
    net.critic_head = _layer(net.hidden, 1, std=1.0)
    return net


def transfer_network(source: ActorCritic, mode: str, n_actions: int | None = None, seed: int | None = None) -> ActorCritic:
    """A network for the target task built from ``source`` (see the module docstring for the three modes)."""
    if mode not in TRANSFER_MODES:
        raise ValueError(f"Unknown transfer mode {mode!r}. Valid choices: {', '.join(TRANSFER_MODES)}.")
    if seed is not None:
        torch.manual_seed(seed)
    if mode == "scratch":
        return ActorCritic(source.obs_dim, n_actions or source.n_actions, source.hidden)
    net = copy.deepcopy(source)
    for p in net.parameters():
        p.requires_grad = True
    if mode == "frozen":
        net = new_heads(freeze_torso(net), n_actions)
        net.reused = TORSOS
    else:
        if n_actions is not None and n_actions != source.n_actions:
            net = new_heads(net, n_actions)
        net.reused = TORSOS
    return net


def ppo_loss(net: ActorCritic, obs, actions, old_logprobs, advantages, returns, config: PPOConfig):
    """PPO's clipped loss on one minibatch; returns ``(loss, stats dict)``."""
    logits, values = net(obs)
    dist = torch.distributions.Categorical(logits=logits)
    logprobs, entropy = dist.log_prob(actions), dist.entropy().mean()
    ratio = (logprobs - old_logprobs).exp()
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)).mean()
    value_loss = 0.5 * ((values - returns) ** 2).mean()
    loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    return loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}


class PPOAgent:
    """PPO on ``env_id`` with the physics ``variant``; ``agent.train(steps)`` returns the learning curve.

    ``network`` defaults to a new :class:`ActorCritic`; pass one from :func:`transfer_network` to transfer.
    Frozen parameters are left out of the optimizer; parts named in ``network.reused`` learn at
    ``config.learning_rate * config.reused_lr_scale``, the rest at ``config.learning_rate``.
    """

    def __init__(self, env_id: str = "CartPole-v1", variant: dict | None = None, config: PPOConfig | None = None,
                 seed: int = 0, network: ActorCritic | None = None, device=None):
        self.env_id, self.variant, self.seed = env_id, dict(variant or {}), int(seed)
        self.config = config or PPOConfig()
        self.device = get_device(device)
        self.envs = make_vector_env(env_id, self.config.num_envs, **self.variant)
        torch.manual_seed(self.seed)
        if network is None:
            network = ActorCritic(int(np.prod(self.envs.single_observation_space.shape)),
                                  int(self.envs.single_action_space.n), self.config.hidden)
        check_spaces(network.obs_dim, network.n_actions, self.envs)
        self.network = network.to(self.device)
        self.optimizer = torch.optim.Adam(self.param_groups(), eps=1e-5)
        self.global_step, self.total_steps = 0, None
        self.curve_steps, self.curve_returns = [], []
        self.rng = np.random.default_rng(self.seed)
        self._obs = None

    def param_groups(self) -> list[dict]:
        """The optimizer's groups: trainable reused parts at the lower rate, the rest at the full rate."""
        reused, rest = [], []
        for name, module in self.network.named_children():
            params = [p for p in module.parameters() if p.requires_grad]
            (reused if name in self.network.reused else rest).extend(params)
        lr = self.config.learning_rate
        groups = [{"params": rest, "lr": lr, "base_lr": lr}]
        if reused:
            groups.append({"params": reused, "lr": lr * self.config.reused_lr_scale, "base_lr": lr * self.config.reused_lr_scale})
        return groups

    # -- acting ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Action logits ``(N, n_actions)`` for observations ``(N, obs_dim)`` (numpy in, numpy out)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return self.network(x)[0].cpu().numpy()

    def evaluate(self, episodes: int = 10, greedy: bool = True, seed: int = 0, variant: dict | None = None) -> np.ndarray:
        """Returns of ``episodes`` episodes on this agent's environment (or on ``variant`` of it)."""
        self.network.eval()
        return evaluate_policy(self.logits, self.env_id, episodes, greedy, seed,
                               **(self.variant if variant is None else variant))

    @property
    def curve(self) -> LearningCurve:
        return LearningCurve(self.curve_steps, self.curve_returns)

    # -- learning -------------------------------------------------------------------------------------------
    def train(self, steps: int, eval_every: int = 2_500, eval_episodes: int = 8, eval_greedy: bool = False,
              progress: bool = True, checkpoint: str | Path | None = None, desc: str = "PPO") -> LearningCurve:
        """Train until ``steps`` environment steps in total (a resumed run continues where it stopped).

        Every ``eval_every`` steps (and at step 0 and at the end) the policy plays ``eval_episodes`` episodes,
        sampled by default (the policy the agent acts with), and their mean return extends the learning curve.
        With ``checkpoint``, the run is saved after every evaluation and at the end.
        """
        cfg, net = self.config, self.network
        if steps < cfg.batch_size:
            raise ValueError(f"steps={steps} is less than one rollout ({cfg.batch_size} transitions); train longer.")
        self.total_steps = int(steps)
        if self._obs is None:
            self._obs, _ = self.envs.reset(seed=self.seed * 1_000 + self.global_step)
            self._done = np.zeros(cfg.num_envs)
        if not self.curve_steps:
            self._evaluate_now(eval_episodes, eval_greedy)
        next_eval = (self.global_step // eval_every + 1) * eval_every
        shape = (cfg.num_steps, cfg.num_envs)
        obs_buf = np.zeros(shape + (net.obs_dim,), np.float32)
        act_buf, logp_buf, rew_buf, done_buf, val_buf = (np.zeros(shape, np.float32) for _ in range(5))
        bar = tqdm(total=steps, initial=self.global_step, desc=desc, unit="step", disable=not progress, mininterval=0.5)
        recent = []
        while self.global_step < steps:
            if cfg.anneal_lr:  # linear decay of every group's rate over the budget
                for g in self.optimizer.param_groups:
                    g["lr"] = g["base_lr"] * (1.0 - self.global_step / steps)
            net.train()
            for t in range(cfg.num_steps):  # rollout: one batched forward pass per step of the vector env
                obs_buf[t], done_buf[t] = self._obs, self._done
                with torch.no_grad():
                    logits, value = net(torch.as_tensor(self._obs, dtype=torch.float32, device=self.device))
                    dist = torch.distributions.Categorical(logits=logits)
                    action = dist.sample()
                act_buf[t], logp_buf[t], val_buf[t] = action.cpu().numpy(), dist.log_prob(action).cpu().numpy(), value.cpu().numpy()
                self._obs, reward, terminated, truncated, info = self.envs.step(action.cpu().numpy())
                rew_buf[t], self._done = reward, np.logical_or(terminated, truncated).astype(np.float32)
                if "episode" in info:
                    recent.extend(info["episode"]["r"][info["_episode"]].tolist())
            with torch.no_grad():
                next_value = net(torch.as_tensor(self._obs, dtype=torch.float32, device=self.device))[1].cpu().numpy()
            advantages, returns = compute_gae(rew_buf, val_buf, done_buf, next_value, self._done, cfg.gamma, cfg.gae_lambda)
            self._update(obs_buf, act_buf, logp_buf, advantages, returns)
            self.global_step += cfg.batch_size
            bar.update(cfg.batch_size)
            if recent:
                bar.set_postfix(train_return=f"{np.mean(recent[-20:]):.0f}", refresh=False)
            if self.global_step >= next_eval or self.global_step >= steps:
                self._evaluate_now(eval_episodes, eval_greedy)
                next_eval = (self.global_step // eval_every + 1) * eval_every
                if checkpoint is not None:
                    self.save(checkpoint)
        bar.close()
        return self.curve

    def _update(self, obs_buf, act_buf, logp_buf, advantages, returns):
        cfg, net = self.config, self.network
        b_obs = torch.as_tensor(obs_buf.reshape(-1, net.obs_dim), device=self.device)
        b_act = torch.as_tensor(act_buf.reshape(-1), device=self.device).long()
        b_logp = torch.as_tensor(logp_buf.reshape(-1), device=self.device)
        b_adv = torch.as_tensor(advantages.reshape(-1), dtype=torch.float32, device=self.device)
        b_ret = torch.as_tensor(returns.reshape(-1), dtype=torch.float32, device=self.device)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        for _ in range(cfg.update_epochs):
            order = torch.as_tensor(self.rng.permutation(cfg.batch_size), device=self.device)
            for start in range(0, cfg.batch_size, cfg.minibatch_size):
                mb = order[start:start + cfg.minibatch_size]
                loss, _ = ppo_loss(net, b_obs[mb], b_act[mb], b_logp[mb], b_adv[mb], b_ret[mb], cfg)
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()

    def _evaluate_now(self, episodes: int, greedy: bool):
        seed = self.seed * 100_003 + len(self.curve_steps)
        self.curve_steps.append(self.global_step)
        self.curve_returns.append(float(self.evaluate(episodes, greedy, seed).mean()))

    # -- checkpoints ------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save network, optimizer, step counter, learning curve and settings (plain tensors and numbers only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": "transfer_course.rl/1", "env_id": self.env_id, "variant": dict(self.variant), "seed": self.seed,
            "config": dataclasses.asdict(self.config), "global_step": self.global_step, "total_steps": self.total_steps,
            "curve_steps": list(self.curve_steps), "curve_returns": list(self.curve_returns),
            "network": {"obs_dim": self.network.obs_dim, "n_actions": self.network.n_actions,
                        "hidden": self.network.hidden, "reused": list(self.network.reused),
                        "frozen": [n for n, p in self.network.named_parameters() if not p.requires_grad],
                        "weights": self.network.state_dict()},
            "optimizer": self.optimizer.state_dict(),
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path


def load_agent(path, device=None, variant: dict | None = None) -> PPOAgent:
    """Rebuild a :class:`PPOAgent` saved by :meth:`PPOAgent.save` (safe loading: ``weights_only=True``); call
    ``train(steps)`` to resume. ``variant`` moves the loaded agent to other physics (the optimizer restarts)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No saved agent at {path}. Save one with agent.save({str(path)!r}).")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "transfer_course.rl/1":
        raise ValueError(f"{path} is not an agent saved by PPOAgent.save.")
    spec = state["network"]
    net = ActorCritic(spec["obs_dim"], spec["n_actions"], spec["hidden"])
    net.load_state_dict(spec["weights"])
    net.reused = tuple(spec["reused"])
    for name, p in net.named_parameters():
        p.requires_grad = name not in spec["frozen"]
    same = variant is None
    agent = PPOAgent(state["env_id"], state["variant"] if same else variant, PPOConfig(**state["config"]),
                     state["seed"], network=net, device=device)
    if same:
        agent.optimizer.load_state_dict(state["optimizer"])
        agent.global_step, agent.total_steps = state["global_step"], state["total_steps"]
        agent.curve_steps, agent.curve_returns = list(state["curve_steps"]), list(state["curve_returns"])
    return agent

