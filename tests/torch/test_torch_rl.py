"""The PyTorch PPO agent: it solves CartPole within a stated budget, transfer keeps frozen layers fixed and gives
reused layers the lower learning rate, runs are checkpointed and resumed with safe loading, bad input is refused."""
import numpy as np
import pytest
import torch

import transfer_course.torch as T
from transfer_course.rl import PPOConfig

# Budget: 40,960 environment steps (80 rollouts of 4 x 128), on one thread about 6 s per seed.
SOLVE_STEPS = 40_960


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def source():
    torch.set_num_threads(1)
    agent = T.PPOAgent(seed=0)
    agent.train(SOLVE_STEPS, eval_every=SOLVE_STEPS, progress=False)
    return agent


def test_agent_solves_cartpole_on_most_seeds(source):
    """Mean greedy return >= 475 over 10 episodes within SOLVE_STEPS, on at least 2 of seeds 0, 1, 2."""
    solved = [source.evaluate(10, greedy=True, seed=123).mean() >= 475]
    for seed in (1, 2):
        if sum(solved) >= 2:
            break
        agent = T.PPOAgent(seed=seed)
        agent.train(SOLVE_STEPS, eval_every=SOLVE_STEPS, progress=False)
        solved.append(agent.evaluate(10, greedy=True, seed=123).mean() >= 475)
    assert sum(solved) >= 2, solved


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_frozen_torso_does_not_move_and_new_heads_learn(source):
    net = T.transfer_network(source.network, "frozen", seed=1)
    assert all(not p.requires_grad for m in (net.actor_torso, net.critic_torso) for p in m.parameters())
    assert all(p.requires_grad for m in (net.actor_head, net.critic_head) for p in m.parameters())
    assert not torch.equal(net.actor_head.weight, source.network.actor_head.weight)  # new head
    torso, head = _params(net.actor_torso) + _params(net.critic_torso), _params(net.actor_head)
    agent = T.PPOAgent(variant={"gravity": 40.0}, network=net, seed=1)
    agent.train(1024, eval_every=1024, eval_episodes=2, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(torso, _params(net.actor_torso) + _params(net.critic_torso)))
    assert not all(torch.equal(a, b) for a, b in zip(head, _params(net.actor_head)))
    # the source network itself was neither frozen nor changed
    assert all(p.requires_grad for p in source.network.parameters())


def test_fine_tune_copies_everything_and_gives_reused_layers_the_lower_rate(source):
    net = T.transfer_network(source.network, "finetune")
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), source.network.parameters()))
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    agent = T.PPOAgent(variant={"gravity": 40.0}, network=net, config=PPOConfig(learning_rate=1e-3, reused_lr_scale=0.1))
    assert np.allclose(agent.logits(obs), source.logits(obs))  # fine-tuning starts from the source policy
    groups = agent.optimizer.param_groups
    torso = {id(p) for m in (net.actor_torso, net.critic_torso) for p in m.parameters()}
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4])
    assert {id(p) for p in groups[1]["params"]} == torso and not torso & {id(p) for p in groups[0]["params"]}
    scratch = T.transfer_network(source.network, "scratch", seed=0)
    assert scratch.reused == () and not torch.equal(scratch.actor_torso[0].weight, source.network.actor_torso[0].weight)
    with pytest.raises(ValueError, match="Unknown transfer mode 'freeze'"):
        T.transfer_network(source.network, "freeze")


def test_seeded_runs_repeat():
    curves = []
    for _ in range(2):
        torch.manual_seed(99)  # whatever the global state, the agent's seed decides
        curves.append(T.PPOAgent(seed=3).train(1024, eval_every=512, eval_episodes=2, progress=False).returns)
    assert np.array_equal(*curves)


def test_checkpoint_resume_with_safe_loading(tmp_path):
    path = tmp_path / "agent.pt"
    agent = T.PPOAgent(seed=4, network=T.transfer_network(T.ActorCritic(), "frozen", seed=4))
    agent.train(1024, eval_every=512, eval_episodes=2, progress=False, checkpoint=path)
    state = torch.load(path, weights_only=True)  # plain tensors and numbers only
    assert state["global_step"] == 1024
    loaded = T.load_agent(path)
    obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    assert np.allclose(loaded.logits(obs), agent.logits(obs)) and loaded.global_step == 1024
    assert not any(p.requires_grad for p in loaded.network.actor_torso.parameters())  # frozen stays frozen
    assert loaded.optimizer.state_dict()["state"]  # Adam's moments came back
    curve = loaded.train(2048, eval_every=512, eval_episodes=2, progress=False)
    assert loaded.global_step == 2048 and list(curve.steps) == [0, 512, 1024, 1536, 2048]
    with pytest.raises(FileNotFoundError, match="No saved agent"):
        T.load_agent(tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an agent saved by PPOAgent.save"):
        T.load_agent(tmp_path / "other.pt")


def test_ppo_loss_closed_forms():
    torch.manual_seed(0)
    net = T.ActorCritic(4, 2, 8)
    obs = torch.randn(16, 4)
    with torch.no_grad():
        logits, values = net(obs)
    actions = torch.randint(0, 2, (16,))
    logp = torch.distributions.Categorical(logits=logits).log_prob(actions)
    adv, ret = torch.randn(16), torch.randn(16)
    cfg = PPOConfig(ent_coef=0.0)
    loss, stats = T.ppo_loss(net, obs, actions, logp, adv, ret, cfg)
    # ratio = 1: the policy loss is -mean of normalised advantages = 0; the value loss is half the MSE
    assert stats["policy_loss"] == pytest.approx(0.0, abs=1e-6)
    assert stats["value_loss"] == pytest.approx(0.5 * ((values - ret) ** 2).mean().item(), rel=1e-5)
    # ratio pushed beyond the clip range in the advantage's direction (e > 1.2 where A > 0, 1/e < 0.8 where A < 0):
    # the clipped term wins everywhere and the policy gets no gradient
    adv = torch.arange(16.0) - 7.5
    net.zero_grad()
    loss, _ = T.ppo_loss(net, obs, actions, logp - torch.sign(adv), adv, values, cfg)
    loss.backward()
    assert all(p.grad is None or torch.all(p.grad == 0) for p in net.actor_head.parameters())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"observations have shape \(6,\)"):
        T.PPOAgent("Acrobot-v1", network=T.ActorCritic(4, 2))
    with pytest.raises(ValueError, match="has 3 actions, but the source network outputs 2"):
        T.PPOAgent("Acrobot-v1", network=T.ActorCritic(6, 2))
    with pytest.raises(ValueError, match="masspole=-0.1 makes the physics meaningless"):
        T.PPOAgent(variant={"masspole": -0.1})
    with pytest.raises(ValueError, match="less than one rollout"):
        T.PPOAgent().train(100, progress=False)
    net = T.new_heads(T.transfer_network(T.ActorCritic(6, 2), "frozen"), n_actions=3)
    assert net.actor_head.out_features == 3
    T.PPOAgent("Acrobot-v1", network=net)  # a new output layer of the right size fits
