import numpy as np
import pytest
import torch

from agents.dqn import (DQNLearner, agent_epsilon, apex_epsilon, env_epsilons, epsilon_greedy, q_targets,
                        weighted_huber_loss)
from buffers.records import Batch
from networks import QNetwork


def test_apex_epsilons_by_hand():
    assert apex_epsilon(0, 4) == pytest.approx(0.4)
    assert apex_epsilon(3, 4) == pytest.approx(0.4 ** 8)
    assert apex_epsilon(1, 3) == pytest.approx(0.4 ** 4.5)
    with pytest.raises(ValueError):
        apex_epsilon(0, 1)
    assert agent_epsilon(0, 1, 0, 1000, 0.01) == 1.0
    assert agent_epsilon(0, 1, 500, 1000, 0.01) == pytest.approx(0.505)
    assert agent_epsilon(0, 1, 10 ** 6, 1000, 0.01) == pytest.approx(0.01)
    assert agent_epsilon(1, 2, 0, 1000, 0.01) == pytest.approx(0.4 ** 8)


def test_each_env_of_each_agent_is_one_apex_actor_interleaved_across_agents():
    # agent 0 of 2 with 3 envs: actors 0, 2 and 4 of 6 -> 0.4^(1 + 7 * k / 5)
    assert env_epsilons(0, 2, 3, 0, 1000, 0.01) == pytest.approx([0.4, 0.4 ** 3.8, 0.4 ** 6.6])
    assert env_epsilons(1, 2, 3, 0, 1000, 0.01) == pytest.approx([0.4 ** 2.4, 0.4 ** 5.2, 0.4 ** 8])
    assert env_epsilons(1, 2, 1, 0, 1000, 0.01) == pytest.approx([0.4 ** 8])          # one env each: as before
    assert env_epsilons(0, 1, 1, 500, 1000, 0.01) == pytest.approx([0.505])           # a lone env anneals
    assert env_epsilons(0, 1, 2, 500, 1000, 0.01) == pytest.approx([0.4, 0.4 ** 8])   # one agent, two actors


def test_epsilon_greedy_takes_one_epsilon_per_env():
    rng = np.random.default_rng(0)
    q = np.array([[0.0, 1.0, 0.5]] * 20_000)
    eps = np.where(np.arange(20_000) % 2 == 0, 0.0, 0.6)
    random = epsilon_greedy(q, eps, rng) != 1
    assert not random[0::2].any() and np.mean(random[1::2]) == pytest.approx(0.6 * 2 / 3, abs=0.02)


def test_epsilon_greedy():
    rng = np.random.default_rng(0)
    q = np.array([[0.0, 1.0, 0.5]] * 10_000)
    assert np.all(epsilon_greedy(q, 0.0, rng) == 1)
    frac_random = np.mean(epsilon_greedy(q, 0.3, rng) != 1)
    assert frac_random == pytest.approx(0.3 * 2 / 3, abs=0.02)


def test_dqn_and_double_dqn_targets_by_hand():
    ret = torch.tensor([1.0, 0.5])
    disc = torch.tensor([0.9, 0.0])
    next_target = torch.tensor([[1.0, 3.0], [5.0, 2.0]])
    next_online = torch.tensor([[2.0, 1.0], [0.0, 9.0]])
    torch.testing.assert_close(q_targets(ret, disc, next_target), torch.tensor([1 + 0.9 * 3.0, 0.5]))
    # double: online picks action 0 for the first row -> target's 1.0
    torch.testing.assert_close(q_targets(ret, disc, next_target, next_online), torch.tensor([1 + 0.9 * 1.0, 0.5]))


def test_weighted_huber_by_hand():
    q = torch.tensor([0.0, 0.0, 0.0])
    target = torch.tensor([0.5, 2.0, -3.0])
    w = torch.tensor([1.0, 0.5, 0.25])
    expected = (1.0 * 0.5 * 0.25 + 0.5 * (2.0 - 0.5) + 0.25 * (3.0 - 0.5)) / 3
    assert weighted_huber_loss(q, target, w).item() == pytest.approx(expected)


def _batch(obs_shape, n=32, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n,) + obs_shape).astype(np.float32)
    return Batch(obs=obs, action=rng.integers(0, 2, n), ret=rng.normal(size=n).astype(np.float32),
                 discount=np.full(n, 0.9, np.float32), next_obs=obs[::-1].copy(),
                 weights=np.ones(n, np.float32), ids=np.arange(n))


def test_learner_step_reduces_loss_and_copies_target_on_period():
    torch.manual_seed(0)
    learner = DQNLearner((4,), 2, double=True, dueling=True, norm="none", lr=1e-3, target_period=5)
    b = learner.to_device(_batch((4,)))
    first, prio = learner.update(b)
    assert prio.shape == (32,) and np.all(prio >= 0)
    for _ in range(3):
        learner.update(b)
    assert any(not torch.equal(p, q) for p, q in zip(learner.net.parameters(), learner.target.parameters()))
    learner.update(b)   # 5th update: target copied
    assert all(torch.equal(p, q) for p, q in zip(learner.net.parameters(), learner.target.parameters()))
    for _ in range(50):
        last, _ = learner.update(b)
    assert last["loss"] < first["loss"]


def test_soft_target_updates_by_hand():
    """--tau for the DQN family: after each update target' = tau * online + (1 - tau) * target, and no
    periodic copy; tau = 0 keeps the copy every target_period updates (checked above)."""
    torch.manual_seed(0)
    learner = DQNLearner((4,), 2, double=True, dueling=False, norm="none", lr=1e-2, target_period=1, tau=0.25)
    b = learner.to_device(_batch((4,)))
    old = [p.detach().clone() for p in learner.target.parameters()]
    learner.update(b)
    for t, o, before in zip(learner.target.parameters(), learner.net.parameters(), old):
        torch.testing.assert_close(t, 0.25 * o.detach() + 0.75 * before)
    assert any(not torch.equal(t, o) for t, o in zip(learner.target.parameters(), learner.net.parameters()))


def test_tau_defaults_by_algorithm():
    from agents.config import parse_args

    assert parse_args(["Pong", "--alg=DDQN"])[0].alg.tau == 0.0                # hard copies, as in DQN
    assert parse_args(["CartPole-v1", "--alg=DDQN"])[0].alg.tau == 0.01        # the classic-control preset
    assert parse_args(["Pendulum-v1", "--alg=DDPG"])[0].alg.tau == 0.005
    assert parse_args(["CartPole-v1", "--alg=R2D2", "--tau=0.01"])[0].alg.tau == 0.01


def test_networks_shapes():
    for dueling in (False, True):
        for norm in ("none", "gn"):
            net = QNetwork((4, 84, 84), 6, dueling, norm)
            assert net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in QNetwork((4, 84, 84), 6, False, "gn").modules())
    assert QNetwork((3,), 5, True)(torch.zeros(7, 3)).shape == (7, 5)


def test_train_staged_does_other_work_between_launch_and_readback():
    """LearnerLoop queues the update, runs `meanwhile` (the next batch's fetch and copy), then reads the
    results back: the same stats and priorities as a plain `update` of an identical learner."""
    from agents.config import parse_args
    from agents.roles import LearnerLoop
    from envs import env_info

    cfg, _ = parse_args(["CartPole-v1", "--alg=DDQN", "--batch_size=32"])
    info = env_info("CartPole-v1")
    loop, twin = LearnerLoop(cfg, info), LearnerLoop(cfg, info)
    twin.learner.load_state_dict(loop.learner.state_dict())
    order = []
    launch = loop.learner.launch
    loop.learner.launch = lambda b: order.append("launch") or launch(b)
    batch = _batch((4,))
    stats, update = loop.train_staged(loop.stage(batch), lambda: order.append("meanwhile"))
    assert order == ["launch", "meanwhile"]
    expected_stats, expected_prio = twin.learner.update(twin.learner.to_device(batch))
    assert stats == expected_stats and all(isinstance(v, float) for v in stats.values())
    assert isinstance(update.priority, np.ndarray) and np.array_equal(update.priority, expected_prio)
    assert np.array_equal(update.ids, batch.ids)


def test_planned_learner_steps_by_hand():
    from agents.config import parse_args, planned_learner_steps

    cfg, _ = parse_args(["CartPole-v1", "--max_steps=50000", "--replay_start=1000", "--speed=32", "--batch_size=64"])
    assert planned_learner_steps(cfg) == (50_000 - 1_000) * 32 // 64                      # 24,500
    cfg, _ = parse_args(["CartPole-v1", "--alg=R2D2", "--max_steps=100000", "--replay_start=2000", "--speed=2",
                         "--batch_size=16", "--seq_len=20", "--overlap=10"])
    assert planned_learner_steps(cfg) == round((100_000 - 2_000) / 10 * 2 / 16)            # sequences: 1,225


def test_lr_scale_holds_until_the_decay_starts_then_falls_linearly_to_zero():
    from agents.optim import lr_scale

    assert [lr_scale(k, 0, 100) for k in (0, 25, 50, 100, 150)] == [1.0, 0.75, 0.5, 0.0, 0.0]
    assert [lr_scale(k, 60, 100) for k in (0, 59, 60, 70, 90, 100, 120)] == [1.0, 1.0, 1.0, 0.75, 0.25, 0.0, 0.0]


def test_lr_decay_start_holds_the_rate_for_that_fraction_of_the_planned_steps():
    from agents.config import parse_args
    from agents.roles import LearnerLoop
    from envs import env_info

    cfg, _ = parse_args(["CartPole-v1", "--alg=DDQN", "--lr_decay", "--lr_decay_start=0.5", "--max_steps=1010",
                         "--replay_start=10", "--speed=4", "--batch_size=8", "--lr=0.1"])
    loop = LearnerLoop(cfg, env_info("CartPole-v1"))
    assert (loop.lr_decay_from, loop.lr_decay_steps) == (250, 500)
    batch = _batch((4,))
    for _ in range(100):
        loop.train_on(batch)
    assert [g["lr"] for opt in loop.learner.optimizers() for g in opt.param_groups] == [0.1]
    loop.learner.steps = 375   # halfway through the decay: the next update runs at half the rate
    loop.train_on(batch)
    assert [g["lr"] for opt in loop.learner.optimizers() for g in opt.param_groups] == pytest.approx([0.05])


def test_lr_decay_falls_linearly_to_zero_over_the_planned_steps_for_every_optimizer():
    """--lr_decay: before update k of K planned, each optimizer's lr is its initial lr x (1 - k / K); the
    initial lr survives a checkpoint round trip (it is kept in the optimizer's state)."""
    from agents.config import parse_args
    from agents.roles import LearnerLoop
    from envs import env_info

    for env, alg in (("CartPole-v1", "DDQN"), ("Pendulum-v1", "DDPG")):
        cfg, _ = parse_args([env, f"--alg={alg}", "--lr_decay", "--max_steps=1010", "--replay_start=10",
                             "--speed=4", "--batch_size=8", "--lr=0.1", "--actor_lr=0.2"])
        loop = LearnerLoop(cfg, env_info(env))
        assert loop.lr_decay_steps == 500
        initial = [g["lr"] for opt in loop.learner.optimizers() for g in opt.param_groups]
        assert sorted(initial) == ([0.1] if alg == "DDQN" else [0.1, 0.2])
        batch = _batch((4,)) if alg == "DDQN" else _continuous_batch()
        for _ in range(100):
            loop.train_on(batch)
        lrs = [g["lr"] for opt in loop.learner.optimizers() for g in opt.param_groups]
        assert lrs == pytest.approx([lr * (1 - 99 / 500) for lr in initial])   # the 100th update used k = 99
        twin = LearnerLoop(cfg, env_info(env))
        twin.learner.load_state_dict(loop.learner.state_dict())
        twin.train_on(batch)
        assert [g["lr"] for opt in twin.learner.optimizers() for g in opt.param_groups] == pytest.approx(
            [lr * (1 - 100 / 500) for lr in initial])


def _continuous_batch(b: int = 8) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(obs=rng.normal(size=(b, 3)).astype(np.float32), action=rng.uniform(-1, 1, (b, 1)).astype(np.float32),
                 ret=rng.normal(size=b).astype(np.float32), discount=np.full(b, 0.9, np.float32),
                 next_obs=rng.normal(size=(b, 3)).astype(np.float32), weights=np.ones(b, np.float32),
                 ids=np.arange(b))


@pytest.mark.parametrize("double", [False, True])
def test_the_learner_finds_the_true_q_values_of_a_tiny_chain(double):
    """A hand-solved MDP: states 0-1-2 (one-hot), left/right; right from 2 ends the episode with reward 1,
    left from 0 stays at 0, everything else moves one state for reward 0; gamma 0.9. Q* by hand:
    right: 0.81, 0.9, 1; left: 0.729, 0.729, 0.81. Every (s, a) in every batch, importance weights not
    all 1 (they scale the loss, not the fixed point), target copies every 25 updates."""
    torch.manual_seed(0)
    eye = np.eye(3, dtype=np.float32)
    obs, action, ret, discount, nxt = [], [], [], [], []
    for s in range(3):
        for a, s2 in ((0, max(s - 1, 0)), (1, s + 1)):
            terminal = s == 2 and a == 1
            obs.append(eye[s]), action.append(a), ret.append(1.0 if terminal else 0.0)
            discount.append(0.0 if terminal else 0.9), nxt.append(eye[min(s2, 2)])
    batch = Batch(obs=np.array(obs), action=np.array(action), ret=np.array(ret, np.float32),
                  discount=np.array(discount, np.float32), next_obs=np.array(nxt),
                  weights=np.array([1.0, 0.5, 0.8, 1.0, 0.6, 0.9], np.float32), ids=np.arange(6))
    learner = DQNLearner((3,), 2, double=double, dueling=False, norm="none", lr=1e-3, target_period=25)
    b = learner.to_device(batch)
    for _ in range(3000):
        learner.update(b)
    with torch.no_grad():
        q = learner.net(torch.as_tensor(eye)).numpy()
    expected = np.array([[0.729, 0.81], [0.729, 0.9], [0.81, 1.0]])
    np.testing.assert_allclose(q, expected, atol=0.02)
