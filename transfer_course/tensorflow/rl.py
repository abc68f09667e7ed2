"""A PPO actor-critic agent in TensorFlow/Keras, readable top to bottom (after cleanRL's ``ppo.py``), and the
weight transfer between agents that lesson 05 studies. The PyTorch twin is ``transfer_course.torch.rl``: same
public names, same hyper-parameters (:class:`transfer_course.rl.PPOConfig`), same learning curves.

PPO (Schulman et al. 2017): collect ``num_envs * num_steps`` transitions with the current policy, estimate
advantages with GAE (:func:`transfer_course.rl.compute_gae`), then take a few epochs of minibatch steps on

    L = -E[min(ρ Â, clip(ρ, 1-ε, 1+ε) Â)] + c_v · ½ E[(V(s) - R̂)²] - c_e · E[H(π(·|s))],   ρ = π(a|s) / π_old(a|s)

with the advantages ``Â`` normalised per minibatch. Shapes: observations ``(B, obs_dim)``, logits
``(B, n_actions)``, values ``(B,)``. The update step is a ``tf.function``; the interaction with the
environments stays in NumPy (one batched forward pass per step of the vector environment).

The network (:class:`ActorCritic`) is two MLPs, each a *torso* (two tanh layers) and a *head* (one Dense layer).
:func:`transfer_network` builds a target network from a source one:

* ``"scratch"``: new random weights, nothing reused;
* ``"frozen"``: the source torsos copied and frozen (``layer.trainable = False``) as a feature extractor, new heads;
* ``"finetune"``: everything copied and trainable; the reused torsos get their own optimizer with
  ``learning_rate * reused_lr_scale`` (Adam is invariant to a gradient's scale, so scaling the gradient would
  not lower its step: a second optimizer does).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ..rl import (
    LearningCurve,
    PPOConfig,
    _act,
    check_spaces,
    compute_gae,
    evaluate_policy,
    make_vector_env,
)

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


def _dense(units: int, gain: float = np.sqrt(2), activation=None) -> keras.layers.Dense:
    """A Dense layer with orthogonal weights (gain ``gain``) and zero bias, PPO's usual initialisation."""
    return keras.layers.Dense(units, activation=activation, kernel_initializer=keras.initializers.Orthogonal(gain),
                              bias_initializer="zeros")


class ActorCritic(keras.Model):
    """Actor and critic MLPs: ``logits, value = net(obs)`` with obs ``(B, obs_dim)`` → ``(B, n_actions)``, ``(B,)``."""

    def __init__(self, obs_dim: int = 4, n_actions: int = 2, hidden: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.obs_dim, self.n_actions, self.hidden = int(obs_dim), int(n_actions), int(hidden)
        self.actor_torso = keras.Sequential([_dense(hidden, activation="tanh"), _dense(hidden, activation="tanh")],
                                            name="actor_torso")
        self.actor_head = _dense(n_actions, gain=0.01)  # near-uniform first policy
        self.critic_torso = keras.Sequential([_dense(hidden, activation="tanh"), _dense(hidden, activation="tanh")],
                                             name="critic_torso")
        self.critic_head = _dense(1, gain=1.0)
        self.reused: tuple = ()  # names of the parts copied from a source network (they get the lower rate)
        self(tf.zeros((1, self.obs_dim)))  # create the weights now

    def call(self, obs):
        return self.actor_head(self.actor_torso(obs)), tf.squeeze(self.critic_head(self.critic_torso(obs)), -1)


def freeze_torso(net: ActorCritic) -> ActorCritic:
    """Freeze the actor and critic torsos (``trainable = False``): they become a fixed feature extractor.
    Build the optimizer and the training step after this (an agent built earlier keeps its variable list)."""
    for name in TORSOS:
        getattr(net, name).trainable = False
    return net


def new_heads(net: ActorCritic, n_actions: int | None = None) -> ActorCritic:
    """Freshly initialised output layers. Same ``n_actions``: re-initialised in place; another ``n_actions``:
    a new network with the torsos' weights copied (Keras layers keep their shape once built)."""
    if n_actions is not None and int(n_actions) != net.n_actions:
        fresh = ActorCritic(net.obs_dim, n_actions, net.hidden)
        for name in TORSOS:
            getattr(fresh, name).set_weights(getattr(net, name).get_weights())
            getattr(fresh, name).trainable = getattr(net, name).trainable
        return fresh
    for name, gain in zip(HEADS, (0.01, 1.0)):
        layer = getattr(net, name)
        layer.kernel.assign(keras.initializers.Orthogonal(gain)(layer.kernel.shape))
        layer.bias.assign(tf.zeros_like(layer.bias))
    return net


def transfer_network(source: ActorCritic, mode: str, n_actions: int | None = None, seed: int | None = None) -> ActorCritic:
    """A network for the target task built from ``source`` (see the module docstring for the three modes)."""
    if mode not in TRANSFER_MODES:
        raise ValueError(f"Unknown transfer mode {mode!r}. Valid choices: {', '.join(TRANSFER_MODES)}.")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    net = ActorCritic(source.obs_dim, n_actions or source.n_actions, source.hidden)
    if mode == "scratch":
        return net
    for name in TORSOS:
        getattr(net, name).set_weights(getattr(source, name).get_weights())
    if mode == "frozen":
        freeze_torso(net)
    elif net.n_actions == source.n_actions:
        for name in HEADS:
            getattr(net, name).set_weights(getattr(source, name).get_weights())
    net.reused = TORSOS
    return net


def ppo_loss(net: ActorCritic, obs, actions, old_logprobs, advantages, returns, config: PPOConfig):
    """PPO's clipped loss on one minibatch; returns ``(loss, stats dict of scalar tensors)``."""
    logits, values = net(obs)
    logp_all = tf.nn.log_softmax(logits)
    logprobs = tf.gather(logp_all, actions, batch_dims=1)
    entropy = tf.reduce_mean(-tf.reduce_sum(tf.exp(logp_all) * logp_all, -1))
    ratio = tf.exp(logprobs - old_logprobs)
    adv = (advantages - tf.reduce_mean(advantages)) / (tf.math.reduce_std(advantages) + 1e-8)
    clipped = tf.clip_by_value(ratio, 1 - config.clip_coef, 1 + config.clip_coef)
    policy_loss = tf.reduce_mean(tf.maximum(-adv * ratio, -adv * clipped))
    value_loss = 0.5 * tf.reduce_mean(tf.square(values - returns))
    loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


class _NumpyPolicy:
    """A NumPy copy of an :class:`ActorCritic`'s weights, refreshed before each rollout. Calling a Keras model costs
    about 0.3 ms per call, far more than the network's arithmetic; the environments are stepped one batched call at
    a time, so the rollout runs this copy and TensorFlow only runs the update (a ``tf.function``)."""

    def __init__(self, net: ActorCritic):
        self.actor = net.actor_torso.get_weights() + net.actor_head.get_weights()
        self.critic = net.critic_torso.get_weights() + net.critic_head.get_weights()

    @staticmethod
    def _mlp(x, w):
        x = np.tanh(x @ w[0] + w[1])
        x = np.tanh(x @ w[2] + w[3])
        return x @ w[4] + w[5]

    def __call__(self, obs: np.ndarray):
        obs = np.asarray(obs, dtype=np.float32)
        return self._mlp(obs, self.actor), self._mlp(obs, self.critic)[:, 0]


class PPOAgent:
    """PPO on ``env_id`` with the physics ``variant``; ``agent.train(steps)`` returns the learning curve.

    ``network`` defaults to a new :class:`ActorCritic`; pass one from :func:`transfer_network` to transfer.
    Frozen variables are left out of the optimizers; parts named in ``network.reused`` learn at
    ``config.learning_rate * config.reused_lr_scale``, the rest at ``config.learning_rate``.
    ``device``: ``None`` lets TensorFlow place the ops (a GPU when it sees one), or e.g. ``"/CPU:0"``.
    """

    def __init__(self, env_id: str = "CartPole-v1", variant: dict | None = None, config: PPOConfig | None = None,
                 seed: int = 0, network: ActorCritic | None = None, device=None):
        self.env_id, self.variant, self.seed = env_id, dict(variant or {}), int(seed)
        self.config = config or PPOConfig()
        self.device = device
        self.envs = make_vector_env(env_id, self.config.num_envs, **self.variant)
        keras.utils.set_random_seed(self.seed)
        if network is None:
            network = ActorCritic(int(np.prod(self.envs.single_observation_space.shape)),
                                  int(self.envs.single_action_space.n), self.config.hidden)
        check_spaces(network.obs_dim, network.n_actions, self.envs)
        self.network = network
        lr, scale = self.config.learning_rate, self.config.reused_lr_scale
        self.reused_vars, self.other_vars = [], []
        for name in ("actor_torso", "actor_head", "critic_torso", "critic_head"):
            (self.reused_vars if name in network.reused else self.other_vars).extend(getattr(network, name).trainable_variables)
        self.optimizer = keras.optimizers.Adam(lr, epsilon=1e-5)
        self.reused_optimizer = keras.optimizers.Adam(lr * scale, epsilon=1e-5) if self.reused_vars else None
        self.base_lrs = (lr, lr * scale)
        self.optimizer.build(self.other_vars)  # create the optimizer state now, not inside the compiled loop
        if self.reused_optimizer is not None:
            self.reused_optimizer.build(self.reused_vars)
        self.global_step, self.total_steps = 0, None
        self.curve_steps, self.curve_returns = [], []
        self.rng = np.random.default_rng(self.seed)
        self._obs = None
        self._update_fn = tf.function(self._update_all)

    # -- acting ---------------------------------------------------------------------------------------------
    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Action logits ``(N, n_actions)`` for observations ``(N, obs_dim)`` (numpy in, numpy out)."""
        return self.network(tf.convert_to_tensor(np.asarray(obs, dtype=np.float32)))[0].numpy()

    def evaluate(self, episodes: int = 10, greedy: bool = True, seed: int = 0, variant: dict | None = None) -> np.ndarray:
        """Returns of ``episodes`` episodes on this agent's environment (or on ``variant`` of it)."""
        policy = _NumpyPolicy(self.network)  # the same network, without a Keras call per step
        return evaluate_policy(lambda obs: policy(obs)[0], self.env_id, episodes, greedy, seed,
                               **(self.variant if variant is None else variant))

    @property
    def curve(self) -> LearningCurve:
        return LearningCurve(self.curve_steps, self.curve_returns)

    # -- learning -------------------------------------------------------------------------------------------
    def _step(self, obs, actions, old_logprobs, advantages, returns):
        """One minibatch step: PPO's loss, gradients clipped to a global norm, each group's optimizer."""
        variables = self.other_vars + self.reused_vars
        with tf.GradientTape() as tape:
            loss, _stats = ppo_loss(self.network, obs, actions, old_logprobs, advantages, returns, self.config)
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, self.config.max_grad_norm)
        n = len(self.other_vars)
        self.optimizer.apply_gradients(zip(grads[:n], self.other_vars))
        if self.reused_optimizer is not None:
            self.reused_optimizer.apply_gradients(zip(grads[n:], self.reused_vars))
        return loss

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
        act_buf = np.zeros(shape, np.int32)
        logp_buf, rew_buf, done_buf, val_buf = (np.zeros(shape, np.float32) for _ in range(4))
        bar = tqdm(total=steps, initial=self.global_step, desc=desc, unit="step", disable=not progress, mininterval=0.5)
        recent = []
        with tf.device(self.device) if self.device else _nullcontext():
            while self.global_step < steps:
                if cfg.anneal_lr:  # linear decay of both rates over the budget
                    frac = 1.0 - self.global_step / steps
                    self.optimizer.learning_rate.assign(self.base_lrs[0] * frac)
                    if self.reused_optimizer is not None:
                        self.reused_optimizer.learning_rate.assign(self.base_lrs[1] * frac)
                policy = _NumpyPolicy(net)  # this rollout's policy
                for t in range(cfg.num_steps):  # rollout: one batched forward pass per step of the vector env
                    obs_buf[t], done_buf[t] = self._obs, self._done
                    logits, value = policy(self._obs)
                    logp_all = logits - logits.max(-1, keepdims=True)
                    logp_all -= np.log(np.exp(logp_all).sum(-1, keepdims=True))
                    action = _act(logits, False, self.rng)
                    act_buf[t], logp_buf[t], val_buf[t] = action, logp_all[np.arange(len(action)), action], value
                    self._obs, reward, terminated, truncated, info = self.envs.step(action)
                    rew_buf[t], self._done = reward, np.logical_or(terminated, truncated).astype(np.float32)
                    if "episode" in info:
                        recent.extend(info["episode"]["r"][info["_episode"]].tolist())
                next_value = policy(self._obs)[1]
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
        cfg = self.config
        batch = (obs_buf.reshape(-1, self.network.obs_dim), act_buf.reshape(-1), logp_buf.reshape(-1),
                 advantages.reshape(-1).astype(np.float32), returns.reshape(-1).astype(np.float32))
        orders = np.stack([self.rng.permutation(cfg.batch_size) for _ in range(cfg.update_epochs)]).astype(np.int32)
        self._update_fn(*(tf.convert_to_tensor(x) for x in batch), tf.convert_to_tensor(orders))

    def _update_all(self, obs, actions, old_logprobs, advantages, returns, orders):
        """All epochs and minibatches of one update in one ``tf.function`` (``orders``: a permutation per epoch)."""
        size = self.config.minibatch_size
        for epoch in tf.range(self.config.update_epochs):
            for k in tf.range(self.config.num_minibatches):
                mb = orders[epoch, k * size:(k + 1) * size]
                self._step(*(tf.gather(x, mb) for x in (obs, actions, old_logprobs, advantages, returns)))

    def _evaluate_now(self, episodes: int, greedy: bool):
        seed = self.seed * 100_003 + len(self.curve_steps)
        self.curve_steps.append(self.global_step)
        self.curve_returns.append(float(self.evaluate(episodes, greedy, seed).mean()))

    # -- checkpoints ------------------------------------------------------------------------------------------
    def _optimizers(self):
        return [o for o in (self.optimizer, self.reused_optimizer) if o is not None]

    def save(self, path) -> Path:
        """Save network, optimizer state, step counter, learning curve and settings to one ``.npz`` file
        (arrays and a JSON header only, loaded with ``allow_pickle=False``)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"the TensorFlow agent saves to a '.npz' file; received {path.name!r}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        net = self.network
        meta = {"format": "transfer_course.rl/1", "env_id": self.env_id, "variant": self.variant, "seed": self.seed,
                "config": dataclasses.asdict(self.config), "global_step": self.global_step,
                "total_steps": self.total_steps, "curve_steps": list(self.curve_steps),
                "curve_returns": list(self.curve_returns),
                "network": {"obs_dim": net.obs_dim, "n_actions": net.n_actions, "hidden": net.hidden,
                            "reused": list(net.reused), "frozen": [n for n in TORSOS if not getattr(net, n).trainable]},
                "optimizer_built": [bool(o.built) for o in self._optimizers()]}
        arrays = {f"w{i}": w for i, w in enumerate(net.get_weights())}
        for k, opt in enumerate(self._optimizers()):
            if opt.built:
                arrays.update({f"o{k}_{i}": v.numpy() for i, v in enumerate(opt.variables)})
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)
        return path


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def load_agent(path, device=None, variant: dict | None = None) -> PPOAgent:
    """Rebuild a :class:`PPOAgent` saved by :meth:`PPOAgent.save` (``np.load(allow_pickle=False)``: no code runs);
    call ``train(steps)`` to resume. ``variant`` moves the loaded agent to other physics (the optimizer restarts)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No saved agent at {path}. Save one with agent.save({str(path)!r}).")
    with np.load(path, allow_pickle=False) as data:
        if "meta" not in data:
            raise ValueError(f"{path} is not an agent saved by PPOAgent.save.")
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    if meta.get("format") != "transfer_course.rl/1":
        raise ValueError(f"{path} is not an agent saved by PPOAgent.save.")
    spec = meta["network"]
    net = ActorCritic(spec["obs_dim"], spec["n_actions"], spec["hidden"])
    net.set_weights([arrays[f"w{i}"] for i in range(len(net.get_weights()))])
    net.reused = tuple(spec["reused"])
    for name in spec["frozen"]:
        getattr(net, name).trainable = False
    same = variant is None
    agent = PPOAgent(meta["env_id"], meta["variant"] if same else variant, PPOConfig(**meta["config"]),
                     meta["seed"], network=net, device=device)
    if same:
        for k, (opt, built) in enumerate(zip(agent._optimizers(), meta["optimizer_built"])):
            if built:
                for i, v in enumerate(opt.variables):
                    v.assign(arrays[f"o{k}_{i}"])
        agent.global_step, agent.total_steps = meta["global_step"], meta["total_steps"]
        agent.curve_steps, agent.curve_returns = list(meta["curve_steps"]), list(meta["curve_returns"])
    return agent
