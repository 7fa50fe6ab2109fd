"""Rainbow's parts: the categorical double-Q target and loss by hand, noisy layers, agents and learner, runs."""
import json
import math
import os

import numpy as np
import pytest
import torch

from agents.config import parse_args
from agents.distributional import categorical_loss, categorical_priority, categorical_q_target, expected_value
from agents.dqn import DQNLearner
from agents.driver import train
from agents.policies import QPolicy
from buffers.records import Batch
from envs import env_info
from main import main
from networks import QNetwork
from networks.noisy import NoisyLinear, reset_noise, scaled_noise, set_noise

ATOMS = torch.tensor([0.0, 1.0, 2.0])
LOG0 = float("-inf")


def _logits(*probs):
    return torch.tensor(probs).log()


def test_categorical_double_q_target_by_hand():
    """Two transitions, two actions, atoms 0, 1, 2.
    1: ret 1, discount 0.5. The online net's means are 0 (a0) and 2 (a1), so double Q takes a1, where the target
       net has [0.5, 0.5, 0]: 1 + 0.5 z puts 0.5 on atom 1 and 0.5 at 1.5 (split 0.25 / 0.25) -> [0, 0.75, 0.25].
       Plain C51 takes the target net's best mean, a0 ([0, 0, 1], mean 2): 1 + 0.5 * 2 = 2 -> [0, 0, 1].
    2: terminal (discount 0) with ret 0.5: all mass at 0.5, split -> [0.5, 0.5, 0]."""
    target_next = torch.stack([_logits([0.0, 0.0, 1.0], [0.5, 0.5, 0.0]),
                               _logits([0.2, 0.3, 0.5], [0.6, 0.2, 0.2])])               # [B=2, A=2, K=3]
    online_next = torch.stack([_logits([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]),
                               _logits([1.0, 0.0, 0.0], [0.0, 0.0, 1.0])])
    ret, discount = torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.0])
    double = categorical_q_target(target_next, ret, discount, ATOMS, online_next)
    torch.testing.assert_close(double, torch.tensor([[0.0, 0.75, 0.25], [0.5, 0.5, 0.0]]))
    plain = categorical_q_target(target_next, ret, discount, ATOMS)
    torch.testing.assert_close(plain, torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]]))


def test_categorical_loss_and_expected_value_by_hand():
    logits = torch.stack([torch.zeros(3), _logits(0.2, 0.3, 0.5)])
    target = torch.tensor([[0.0, 0.75, 0.25], [0.0, 0.75, 0.25]])
    expected = torch.tensor([math.log(3), -(0.75 * math.log(0.3) + 0.25 * math.log(0.5))])
    torch.testing.assert_close(categorical_loss(logits, target), expected)
    torch.testing.assert_close(expected_value(logits, ATOMS), torch.tensor([1.0, 0.3 + 1.0]))


def test_an_agents_priority_is_the_cross_entropy_to_its_own_projected_target():
    # uniform logits: the cross-entropy to any target is log 3
    assert categorical_priority(np.zeros(3), 1.0, 0.5, np.zeros(3), ATOMS) == pytest.approx(math.log(3))
    # terminal: the next logits do not matter; the target is [0.5, 0.5, 0] at ret 0.5
    logp = np.log([0.2, 0.3, 0.5])
    want = -(0.5 * math.log(0.2) + 0.5 * math.log(0.3))
    assert categorical_priority(logp, 0.5, 0.0, None, ATOMS) == pytest.approx(want)


def test_the_learner_minimises_the_weighted_cross_entropy_and_returns_it_as_priorities():
    torch.manual_seed(0)
    learner = DQNLearner((4,), 2, double=True, dueling=True, norm="none", lr=1e-3, atoms=3, v_min=0.0, v_max=2.0)
    rng = np.random.default_rng(0)
    batch = Batch(obs=rng.normal(size=(2, 4)).astype(np.float32), action=np.array([0, 1]),
                  ret=np.array([1.0, 0.5], np.float32), discount=np.array([0.5, 0.0], np.float32),
                  next_obs=rng.normal(size=(2, 4)).astype(np.float32), weights=np.array([1.0, 0.5], np.float32),
                  ids=np.arange(2))
    b = learner.to_device(batch)
    with torch.no_grad():
        logits = learner.net(b["obs"])[torch.arange(2), b["action"]]
        target = categorical_q_target(learner.target(b["next_obs"]), b["ret"], b["discount"], learner.support,
                                      learner.net(b["next_obs"]))
        ce = categorical_loss(logits, target)
    stats, priorities = learner.launch(b)
    torch.testing.assert_close(priorities, ce)
    torch.testing.assert_close(stats["loss"], (b["weights"] * ce).mean())
    after = categorical_loss(learner.net(b["obs"])[torch.arange(2), b["action"]], target).detach()
    assert (b["weights"] * after).mean() < (b["weights"] * ce).mean()   # one Adam step lowers it


def test_factorised_noise_has_the_papers_statistics():
    g = torch.Generator().manual_seed(0)
    f = scaled_noise(400_000, g)                       # f(x) = sign(x) sqrt(|x|), x ~ N(0, 1)
    assert abs(float(f.mean())) < 0.01
    assert float(f.pow(2).mean()) == pytest.approx(math.sqrt(2 / math.pi), abs=0.01)   # E f(x)^2 = E|x|
    layer = NoisyLinear(64, 32)
    bound = 1 / 8
    with torch.no_grad():
        assert float(layer.weight_mu.abs().max()) <= bound
        assert torch.allclose(layer.weight_sigma, torch.tensor(0.5 * bound))
    noise = torch.outer(layer.eps_out, layer.eps_in)   # one draw of the weight noise: rank 1
    assert torch.linalg.matrix_rank(noise) == 1
    layer.reset_noise(g)
    assert not torch.equal(torch.outer(layer.eps_out, layer.eps_in), noise)


def test_noise_off_is_the_mean_weights_and_gradients_are_finite():
    torch.manual_seed(1)
    layer = NoisyLinear(5, 3)
    x = torch.randn(8, 5)
    set_noise(layer, False)
    torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    set_noise(layer, True)
    noisy = layer(x)
    assert not torch.allclose(noisy, x @ layer.weight_mu.T + layer.bias_mu)
    noisy.pow(2).sum().backward()
    for p in (layer.weight_mu, layer.weight_sigma, layer.bias_mu, layer.bias_sigma):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_agents_explore_by_the_noise_and_the_evaluator_acts_on_the_mean():
    cfg, _ = parse_args(["CartPole-v1", "--alg=Rainbow"])
    info = env_info("CartPole-v1")
    agent = QPolicy(cfg, info, 0, 1, explore=True, seed=0)
    evaluator = QPolicy(cfg, info, 0, 1, explore=False, seed=0)
    evaluator.load(agent.net.state_dict())
    assert agent.epsilon(10) == 0.0 and cfg.alg.noisy and cfg.alg.dueling and cfg.alg.atoms == 51
    obs = [np.array([0.01, 0.2, -0.03, 0.1], np.float32)]
    a1, a2 = agent._forward(obs)[0], agent._forward(obs)[0]
    e1, e2 = evaluator._forward(obs)[0], evaluator._forward(obs)[0]
    assert not np.array_equal(a1, a2)        # new noise every step
    assert np.array_equal(e1, e2)            # the mean weights
    with torch.no_grad():
        set_noise(agent.net, False)
        mean_q = expected_value(agent.net(torch.as_tensor(np.stack(obs))), agent.support).numpy()
    np.testing.assert_allclose(e1, mean_q, rtol=1e-6)
    cfg_eps, _ = parse_args(["CartPole-v1", "--alg=Rainbow", "--noisy_eps"])
    assert QPolicy(cfg_eps, info, 0, 2, explore=True, seed=0).epsilon(10) == pytest.approx(0.4)
    net = QNetwork((4,), 2, dueling=True, atoms=51, noisy=True)
    reset_noise(net)
    assert net(torch.zeros(3, 4)).shape == (3, 2, 51)


@pytest.mark.slow
def test_a_short_rainbow_pong_run_trains_and_its_checkpoint_plays(ray_session, tmp_path, capsys):
    """(CartPole end to end: test_learning.py's Rainbow learning test.)"""
    env = "Pong"
    flags = ["--max_steps=2000", "--replay_start=500", "--eval_period=2000", "--eval_episodes=1", "--batch_size=32",
             "--status_period=1", "--save_period=50", "--replay_size=5000", "--envs_per_agent=1"]
    cfg, given = parse_args([env, "--alg=Rainbow", "--suffix=rb", f"--logdir={tmp_path}/logs",
                             f"--modeldir={tmp_path}/model", *flags])
    assert cfg.alg.noisy and cfg.alg.dueling and cfg.replay.buffer == "pmdb" and cfg.alg.nstep == 3
    summary = train(cfg, given)
    assert summary["env_steps"] >= 2000 and summary["learner_steps"] > 0 and summary["dropped_pushes"] == 0
    assert summary["last_eval_return"] is not None
    assert os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(summary["checkpoint"])))) == \
        "Rainbow_dueling_noisy"
    code = main([env, "--test", "--test_episodes=1", f"--resume={summary['checkpoint']}"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["episodes"] == 1
    # another algorithm's checkpoint is refused in one line
    code = main([env, "--alg=DDQN", "--test", f"--resume={summary['checkpoint']}"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Rainbow" in err


def test_r2d2_takes_noisy_nets_too():
    from agents.policies import R2D2Policy
    from agents.r2d2 import R2D2Learner
    from networks.noisy import has_noise

    cfg, _ = parse_args(["CartPole-v1", "--alg=R2D2", "--noisy"])
    info = env_info("CartPole-v1")
    agent = R2D2Policy(cfg, info, 0, 1, explore=True, seed=0)
    evaluator = R2D2Policy(cfg, info, 0, 1, explore=False, seed=0)
    evaluator.load(agent.net.state_dict())
    assert has_noise(agent.net) and agent.epsilon(10) == 0.0
    obs = [np.array([0.01, 0.2, -0.03, 0.1], np.float32)]
    assert not np.array_equal(agent._step(obs, [0])[0], agent._step(obs, [0])[0])
    np.testing.assert_array_equal(evaluator._step(obs, [0])[0], evaluator._step(obs, [0])[0])
    learner = R2D2Learner(info.obs_shape, info.num_actions, hidden=cfg.alg.lstm, noisy=True)
    assert has_noise(learner.net) and has_noise(learner.target)
    agent.load(learner.net.state_dict())   # the noise is not part of the weights agents pull
