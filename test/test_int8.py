"""Agents' int8 copies of the Q network (networks/quantized.py): close to the float network, made anew for
each weight version, never used by the evaluator; on in DQN's and DDQN's Atari presets."""
import numpy as np
import pytest
import torch

from agents.config import parse_args
from agents.policies import QPolicy, acting_note
from envs import env_info
from envs.batch import make_env_batch
from networks import QNetwork
from networks.quantized import (
    CALIBRATION_OBS,
    RecentObservations,
    int8_copy,
    int8_unsupported,
    vnni,
)


def _pong_stacks(n: int, steps: int, seed: int) -> torch.Tensor:
    """n real Pong stacks [n, 4, 84, 84] after `steps` random steps of n games."""
    batch = make_env_batch("Pong", n, train=True, seed=seed)
    obs = batch.reset()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs = batch.step(rng.integers(0, 6, n))[0]
    return torch.as_tensor(np.asarray(obs))


@pytest.fixture(scope="module")
def pong():
    """Calibration stacks and, 40 steps later in other games, the stacks to compare on."""
    return _pong_stacks(16, 60, 0), _pong_stacks(16, 100, 1)


def _minatar(n: int, seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).random((n, 1, 4, 10, 10)) < 0.1).to(torch.uint8)


@pytest.mark.parametrize("kind,dueling,atoms", [("pong", True, 1), ("pong", False, 1), ("pong", True, 51),
                                                ("minatar", False, 1), ("minatar", True, 1)])
def test_the_int8_copy_gives_the_float_networks_values_to_within_a_few_per_cent(pong, kind, dueling, atoms):
    torch.manual_seed(0)
    if kind == "pong":
        (calibration, frames), shape = pong, (4, 84, 84)
    else:
        calibration, frames, shape = _minatar(32, 0), _minatar(32, 1), (1, 4, 10, 10)
    net = QNetwork(shape, 6, dueling=dueling, atoms=atoms).eval().requires_grad_(False)
    with torch.inference_mode():
        q, q8 = net(frames), int8_copy(net, calibration)(frames)
    assert q8.shape == q.shape and q8.dtype == torch.float32
    err = (q8 - q).abs().max()
    assert 0 < err <= 0.05 * q.abs().max()          # measured: 1 to 2 %; 0 would mean no quantisation
    if atoms == 1:   # greedy actions agree wherever the float network's best two differ by more than 2 x err
        top = q.topk(2, dim=1).values
        clear = top[:, 0] - top[:, 1] > 2 * err
        assert torch.equal(q8.argmax(1)[clear], q.argmax(1)[clear])


@pytest.mark.parametrize("kind", ["pong", "minatar"])
def test_frames_enter_the_int8_copy_as_their_own_bytes_exactly_as_quantising_them_would(pong, kind):
    """With 8-bit activations the copy wraps uint8 frames as quint8 at scale 1 and zero point 0, skipping the
    float copy and the quantisation pass: the values must be bit-identical to the quantising path's."""
    torch.manual_seed(0)
    if kind == "pong":
        (calibration, frames), shape = pong, (4, 84, 84)
    else:
        calibration, frames, shape = _minatar(32, 0), _minatar(32, 1), (1, 4, 10, 10)
    m = int8_copy(QNetwork(shape, 6, dueling=True).eval().requires_grad_(False), calibration)
    assert m.raw_input is vnni()   # 7-bit activations (no VNNI) keep the quantising path
    if m.raw_input:
        assert (m.quant.scale.item(), m.quant.zero_point.item()) == (1.0, 0)
    with torch.inference_mode():
        np.testing.assert_array_equal(m(frames).numpy(), m(frames.float()).numpy())


def test_networks_without_an_int8_copy_say_why():
    assert int8_unsupported(QNetwork((4, 84, 84), 6, dueling=True)) is None
    assert int8_unsupported(QNetwork((1, 4, 10, 10), 6)) is None
    assert "noisy" in int8_unsupported(QNetwork((4, 84, 84), 6, noisy=True))
    assert "GroupNorm" in int8_unsupported(QNetwork((4, 84, 84), 6, norm="gn"))
    assert "torso" in int8_unsupported(QNetwork((4,), 2))
    with pytest.raises(ValueError, match="noisy"):
        int8_copy(QNetwork((4, 84, 84), 6, noisy=True), torch.zeros(1, 4, 84, 84, dtype=torch.uint8))


def test_agents_act_on_an_int8_copy_of_each_new_version_and_the_evaluator_on_the_float_network(pong):
    cfg, _ = parse_args(["Pong", "--alg=DDQN"])
    info = env_info("Pong")
    agent = QPolicy(cfg, info, 0, 16, explore=True, seed=0)
    evaluator = QPolicy(cfg, info, 0, 16, explore=False, seed=0)
    assert agent.int8 and not evaluator.int8
    obs = list(pong[1].numpy())
    now = [0.0]
    agent.clock = lambda: now[0]
    for seed in (1, 2):   # two weight versions, far enough apart for a new copy (see the next test)
        now[0] += 1000.0
        torch.manual_seed(seed)
        net = QNetwork(info.obs_shape, info.num_actions, dueling=True).eval().requires_grad_(False)
        agent.load(net.state_dict())
        evaluator.load(net.state_dict())
        with torch.inference_mode():
            q = net(pong[1]).numpy()
            q_agent = agent.q_values(obs)
            made = agent._int8_net
            q_again = agent.q_values(obs)
            q_eval = evaluator.q_values(obs)
        np.testing.assert_array_equal(q_eval, q)                 # the evaluator: the float network itself
        assert not np.array_equal(q_agent, q)                    # the agent: its int8 copy of this version
        assert np.abs(q_agent - q).max() <= 0.05 * np.abs(q).max()
        assert agent._int8_net is made and np.array_equal(q_again, q_agent)   # one copy per version


def test_versions_that_come_faster_are_requantised_at_most_a_twentieth_of_the_agents_time(pong, monkeypatch):
    """A copy that took 0.1 s: a new version 1 s later is acted on through the previous version's copy, and
    re-quantised at the first step 2 s (0.1 / INT8_COPY_SHARE) after the copy; no new version, no new copy."""
    from agents import policies

    assert policies.INT8_COPY_SHARE == 0.05
    now = [0.0]
    real = policies.int8_copy

    def copy_taking_a_tenth_of_a_second(net, calibration):
        now[0] += 0.1
        return real(net, calibration)

    monkeypatch.setattr(policies, "int8_copy", copy_taking_a_tenth_of_a_second)
    cfg, _ = parse_args(["Pong", "--alg=DDQN"])
    info = env_info("Pong")
    agent = QPolicy(cfg, info, 0, 16, explore=True, seed=0)
    agent.clock = lambda: now[0]
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(QNetwork(info.obs_shape, info.num_actions, dueling=True).eval().requires_grad_(False))
    obs = list(pong[1].numpy())
    with torch.inference_mode():
        agent.load(nets[0].state_dict())
        q_first = agent.q_values(obs)                      # the first copy: made at once
        assert agent.int8_copies == 1
        agent.load(nets[1].state_dict())
        now[0] += 1.0                                      # 1 s after the copy: too soon
        np.testing.assert_array_equal(agent.q_values(obs), q_first)
        assert agent.int8_copies == 1
        now[0] += 1.5                                      # 2.5 s after: due
        q_second, q_float = agent.q_values(obs), nets[1](pong[1]).numpy()
        assert agent.int8_copies == 2
        assert np.abs(q_second - q_float).max() <= 0.05 * np.abs(q_float).max()
        now[0] += 100.0                                    # no new version: the same copy however long
        np.testing.assert_array_equal(agent.q_values(obs), q_second)
        assert agent.int8_copies == 2


@pytest.mark.parametrize("alg,on", [("DQN", True), ("DDQN", True), ("Rainbow", False), ("R2D2", False)])
def test_the_atari_presets_of_dqn_and_ddqn_turn_int8_agents_on(alg, on):
    assert parse_args(["Pong", f"--alg={alg}"])[0].run.agent_int8 is on
    assert not parse_args(["CartPole-v1", f"--alg={alg}"])[0].run.agent_int8
    assert not parse_args(["Pong", f"--alg={alg}", "--no-agent_int8"])[0].run.agent_int8


def test_the_run_says_how_its_agents_act():
    pong = env_info("Pong")
    assert "int8" in acting_note(parse_args(["Pong"])[0], pong)
    note = acting_note(parse_args(["Pong", "--alg=Rainbow", "--agent_int8"])[0], pong)
    assert "noisy layers" in note and note.endswith("agents act in float32")
    assert acting_note(parse_args(["CartPole-v1"])[0], env_info("CartPole-v1")) is None


def test_recent_observations_keep_the_newest_64_in_order():
    recent = RecentObservations(size=4)
    with pytest.raises(ValueError):
        recent.get()
    recent.add(torch.tensor([[0], [1]]))
    assert recent.get().flatten().tolist() == [0, 1]
    recent.add(torch.tensor([[2], [3], [4]]))
    assert recent.get().flatten().tolist() == [1, 2, 3, 4]
    recent.add(torch.arange(5, 11).unsqueeze(1))           # more than the ring holds
    assert recent.get().flatten().tolist() == [7, 8, 9, 10]
    recent.add(torch.tensor([[11]]))
    assert recent.get().flatten().tolist() == [8, 9, 10, 11]
    assert RecentObservations().size == CALIBRATION_OBS == 64


def test_a_one_env_agent_calibrates_on_its_last_observations_not_on_one():
    cfg, _ = parse_args(["Pong", "--alg=DDQN", "--envs_per_agent=1"])
    agent = QPolicy(cfg, env_info("Pong"), 0, 1, explore=True, seed=0)
    frames = list(_pong_stacks(8, 30, 3).numpy())
    with torch.inference_mode():
        for f in frames:
            agent.q_values([f])
            agent._int8_net = None     # as a new weight version does
        assert len(agent._recent.get()) == 8
        assert torch.equal(agent._recent.get()[-1], torch.as_tensor(frames[-1]))


def test_channel_last_frames_give_the_int8_copy_the_same_values_as_contiguous_ones(pong):
    calibration, frames = pong
    assert frames.is_contiguous(memory_format=torch.channels_last)   # as the agents' Atari batches give them
    for dueling in (True, False):
        net = QNetwork((4, 84, 84), 6, dueling=dueling).eval().requires_grad_(False)
        with torch.inference_mode():
            copy8 = int8_copy(net, calibration)
            assert torch.equal(copy8(frames), copy8(frames.contiguous()))


def test_a_linear_layer_with_its_columns_in_hwc_order_reads_the_hwc_flattening_as_before():
    from networks.quantized import _columns_to_hwc, _FlattenHWC

    torch.manual_seed(0)
    linear = torch.nn.Linear(3 * 4 * 5, 7)
    x = torch.randn(2, 3, 4, 5)
    before = linear(x.flatten(1))
    _columns_to_hwc(linear, channels=3, height=4, width=5)
    assert torch.allclose(linear(_FlattenHWC()(x)), before, atol=1e-6)
    assert torch.equal(_FlattenHWC()(x)[0, :3], x[0, :, 0, 0])   # (h, w, c): the channels of pixel (0, 0) first
