import copy

import numpy as np
import pytest
import torch
from torch import nn

from agents.ddpg import (
    DDPGLearner,
    GaussianNoise,
    OUNoise,
    act,
    agent_noise_scale,
    explore,
    make_actor,
    scale_action,
    unscale_action,
)
from agents.distributional import categorical_projection
from agents.optim import soft_update
from buffers.records import Batch
from networks.continuous import Actor, Critic

SUPPORT = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])


def test_categorical_projection_by_hand():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.25, 0.15],   # +1: every atom on an atom, the top two clipped onto 2
                          [0.2, 0.2, 0.2, 0.2, 0.2],      # 0.5 + 0.5 z: half-way atoms split, 0 and 1 exact hits
                          [0.2, 0.2, 0.2, 0.2, 0.2],      # terminal at 0.25
                          [0.1, 0.2, 0.3, 0.25, 0.15],    # terminal below v_min
                          [0.5, 0.0, 0.0, 0.0, 0.5]])     # -0.3 + 0.9 z: -2.1 clipped to -2, 1.5 split
    ret = torch.tensor([1.0, 0.5, 0.25, -7.0, -0.3])
    discount = torch.tensor([1.0, 0.5, 0.0, 0.0, 0.9])
    expected = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4],
                             [0.0, 0.1, 0.4, 0.4, 0.1],
                             [0.0, 0.0, 0.75, 0.25, 0.0],
                             [1.0, 0.0, 0.0, 0.0, 0.0],
                             [0.5, 0.0, 0.0, 0.25, 0.25]])
    out = categorical_projection(probs, ret, discount, SUPPORT)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(1), torch.ones(5))


def test_categorical_projection_rows_sum_to_one_and_keep_the_mean_inside_the_support():
    g = torch.Generator().manual_seed(0)
    support = torch.linspace(-10, 10, 51)
    probs = torch.rand(64, 51, generator=g).softmax(1)
    ret = torch.rand(64, generator=g) * 2 - 1
    discount = torch.rand(64, generator=g) * 0.5       # |ret + discount * z| <= 6: nothing clipped
    out = categorical_projection(probs, ret, discount, support)
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(1), torch.ones(64))
    torch.testing.assert_close((out * support).sum(1), ret + discount * (probs * support).sum(1), atol=1e-4, rtol=0)
    big = categorical_projection(probs, ret * 100, torch.ones(64), support)   # mostly clipped
    torch.testing.assert_close(big.sum(1), torch.ones(64))


def test_soft_update_by_hand():
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0, 2.0]])), online.bias.fill_(4.0)
        target.weight.copy_(torch.tensor([[3.0, 0.0]])), target.bias.fill_(0.0)
    soft_update(target, online, 0.25)
    torch.testing.assert_close(target.weight, torch.tensor([[2.5, 0.5]]))
    torch.testing.assert_close(target.bias, torch.tensor([1.0]))
    bn_online, bn_target = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    bn_online.running_mean.fill_(2.0), bn_online.num_batches_tracked.fill_(7)
    soft_update(bn_target, bn_online, 0.5)
    torch.testing.assert_close(bn_target.running_mean, torch.tensor([1.0, 1.0]))
    assert bn_target.num_batches_tracked.item() == 7


def test_action_scaling():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
    np.testing.assert_allclose(scale_action(np.array([-1.0, -1.0]), low, high), low)
    np.testing.assert_allclose(scale_action(np.array([1.0, 1.0]), low, high), high)
    np.testing.assert_allclose(scale_action(np.array([0.0, 0.0]), low, high), [0.0, 5.0])
    np.testing.assert_allclose(scale_action(np.array([0.5, -0.5]), low, high), [1.0, 2.5])
    np.testing.assert_allclose(scale_action(np.array([3.0, -7.0]), low, high), [2.0, 0.0])   # clipped
    np.testing.assert_allclose(scale_action(np.array([[3.0, 0.0], [-1.0, 1.0]]), low, high), [[2.0, 5.0], [-2.0, 10.0]])
    u = np.array([0.3, -0.8])
    np.testing.assert_allclose(unscale_action(scale_action(u, low, high), low, high), u)
    np.testing.assert_allclose(explore(np.array([0.9, -0.5, 0.0]), np.array([0.5, -0.7, 0.1])), [1.0, -1.0, 0.1])


def test_agent_noise_scale():
    assert agent_noise_scale(0, 5, 0.01, 1.0) == pytest.approx(1.0)
    assert agent_noise_scale(4, 5, 0.01, 1.0) == pytest.approx(0.01)
    scales = [agent_noise_scale(i, 5, 0.01, 1.0) for i in range(5)]
    np.testing.assert_allclose(np.array(scales[1:]) / scales[:-1], 0.01 ** 0.25)   # geometric spacing
    assert agent_noise_scale(0, 1, 0.04, 1.0) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        agent_noise_scale(0, 3, 0.0, 1.0)


def test_gaussian_and_ou_noise():
    gauss = GaussianNoise(3, 0.5, np.random.default_rng(0))
    g = np.stack([gauss.sample() for _ in range(4000)])
    assert g.shape == (4000, 3) and g.dtype == np.float32
    assert np.abs(g.mean(0)).max() < 0.05 and np.allclose(g.std(0), 0.5, atol=0.03)

    theta, sigma = 0.15, 0.2
    ou = OUNoise(2, sigma, np.random.default_rng(0), theta=theta)
    ou.x[:] = 10.0                                       # far from 0: reverts as 10 * (1 - theta)^t
    first = np.stack([ou.sample() for _ in range(30)])
    np.testing.assert_allclose(first[-1], 10 * (1 - theta) ** 30, atol=0.5)
    assert (np.diff(first[:10, 0]) < 0).all()
    ou.reset()
    np.testing.assert_array_equal(ou.x, 0.0)
    x = np.stack([ou.sample() for _ in range(20000)])[:, 0]
    assert abs(x.mean()) < 0.1
    assert x.var() == pytest.approx(sigma ** 2 / (2 * theta - theta ** 2), rel=0.15)      # stationary AR(1)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(1 - theta, abs=0.03)


def test_networks_shapes():
    actor = Actor(3, 2, hidden=(16, 16))
    a = actor(torch.randn(5, 3) * 100)
    assert a.shape == (5, 2) and (a.abs() <= 1).all()
    assert Critic(3, 2, hidden=(16,))(torch.randn(5, 3), a).shape == (5,)
    assert Critic(3, 2, hidden=(16,), num_atoms=11)(torch.randn(5, 3), a).shape == (5, 11)
    learner = DDPGLearner(3, 2, distributional=False, hidden=(16, 16))
    agent_actor = make_actor(3, 2, (16, 16))
    agent_actor.load_state_dict(learner.weights())
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(act(agent_actor, obs), act(learner.actor, obs))


def _batch(n=32, obs_dim=3, action_dim=2, seed=0, discount=0.9, ret=None):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32)
    if ret is None:
        ret = rng.normal(size=n).astype(np.float32)
    b = Batch(obs=obs, action=action, ret=ret, discount=np.full(n, discount, np.float32),
              next_obs=rng.normal(size=(n, obs_dim)).astype(np.float32),
              weights=rng.uniform(0.5, 1.0, n).astype(np.float32), ids=np.arange(n))
    for x in (b.obs, b.action, b.ret, b.next_obs):
        x.setflags(write=False)                          # as from Ray's object store
    return b


@pytest.mark.parametrize("distributional", [False, True])
def test_actor_loss_never_touches_the_critic(distributional):
    torch.manual_seed(0)
    kw = dict(distributional=distributional, hidden=(16, 16), actor_lr=1e-2, critic_lr=1e-2, v_min=-5, v_max=5,
              num_atoms=11)
    learner = DDPGLearner(3, 2, **kw)
    b = learner.to_device(_batch())
    assert b["action"].dtype == torch.float32
    # backward of the actor loss alone: the actor gets gradient, the critic none
    learner.actor_loss(b["obs"]).backward()
    assert all(p.grad is None for p in learner.critic.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.actor.parameters())
    learner.actor.zero_grad(set_to_none=True)
    # a full update moves the critic exactly as a critic-only step from the same state does
    reference = DDPGLearner(3, 2, **kw)
    reference.load_state_dict(copy.deepcopy(learner.state_dict()))
    critic_before = copy.deepcopy(learner.critic.state_dict())
    actor_before = copy.deepcopy(learner.actor.state_dict())
    stats, prio = learner.update(b)
    reference.critic_step(b)
    for (name, p), q in zip(learner.critic.named_parameters(), reference.critic.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=name)
        assert not torch.equal(p, critic_before[name])
    assert any(not torch.equal(p, actor_before[k]) for k, p in learner.actor.named_parameters())
    assert set(stats) == {"loss", "actor_loss", "mean_q"} and all(isinstance(v, float) for v in stats.values())
    assert prio.shape == (32,) and (prio >= 0).all() and np.isfinite(prio).all()
    assert learner.steps == 1


def test_targets_soft_and_hard():
    torch.manual_seed(0)
    soft = DDPGLearner(3, 2, distributional=False, hidden=(8,), tau=0.1)
    b = soft.to_device(_batch())
    old = {k: v.clone() for k, v in soft.critic_target.state_dict().items()}
    soft.update(b)
    for k, v in soft.critic_target.state_dict().items():
        torch.testing.assert_close(v, 0.9 * old[k] + 0.1 * soft.critic.state_dict()[k])
    assert all(not p.requires_grad for p in soft.critic_target.parameters())
    hard = DDPGLearner(3, 2, distributional=True, hidden=(8,), tau=0.0, target_period=2, v_min=-5, v_max=5)
    start = {k: v.clone() for k, v in hard.actor_target.state_dict().items()}
    hard.update(b)
    assert all(torch.equal(v, start[k]) for k, v in hard.actor_target.state_dict().items())
    hard.update(b)
    assert all(torch.equal(v, hard.actor.state_dict()[k]) for k, v in hard.actor_target.state_dict().items())
    with pytest.raises(ValueError):
        DDPGLearner(3, 2, distributional=False, tau=0.0, target_period=0)


@pytest.mark.parametrize("distributional", [False, True])
def test_critic_fits_a_fixed_batch(distributional):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    # terminal returns on the atoms (spacing 0.5), so the D4PG target is one-hot and CE can reach 0
    ret = (rng.integers(-6, 7, 64) * 0.5).astype(np.float32)
    learner = DDPGLearner(3, 2, distributional=distributional, hidden=(64, 64), critic_lr=3e-3,
                          num_atoms=41, v_min=-10, v_max=10)
    b = learner.to_device(_batch(n=64, discount=0.0, ret=ret))
    losses = [learner.update(b)[0]["loss"] for _ in range(300)]
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])
    stats, prio = learner.update(b)
    assert prio.shape == (64,) and (prio >= 0).all()
    assert stats["mean_q"] == pytest.approx(float(ret.mean()), abs=0.2)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = DDPGLearner(3, 2, distributional=True, hidden=(8,), v_min=-5, v_max=5)
    b = a.to_device(_batch())
    a.update(b)
    c = DDPGLearner(3, 2, distributional=True, hidden=(8,), v_min=-5, v_max=5)
    c.load_state_dict(copy.deepcopy(a.state_dict()))
    assert c.steps == 1
    sa, pa = a.update(b)
    sc, pc = c.update(b)
    assert sa == sc
    np.testing.assert_array_equal(pa, pc)
