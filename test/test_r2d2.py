import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.r2d2 import (R2D2Learner, inverse_value_rescale, nstep_rescaled_targets, r2d2_loss_and_priorities,
                         sequence_inputs, sequence_priority, value_rescale)
from buffers.records import SequenceBatch
from networks.recurrent import RecurrentQNetwork
from test.memory_env import CueMemory

EPS = 1e-3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small nets: one intra-op thread is fastest, and far faster when the cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def h(x: float) -> float:
    return float(np.sign(x) * (np.sqrt(abs(x) + 1) - 1) + EPS * x)


def hinv(x: float) -> float:
    return float(inverse_value_rescale(torch.tensor(x, dtype=torch.float64), EPS))


def random_batch(B: int, L: int, obs_shape: tuple, A: int, H: int, rng: np.random.Generator) -> SequenceBatch:
    length = rng.integers(1, L + 1, B)
    pad = np.arange(L)[None] >= length[:, None]
    if len(obs_shape) == 3:
        obs = rng.integers(0, 256, (B, L + 1, *obs_shape), dtype=np.uint8)
    else:
        obs = rng.standard_normal((B, L + 1, *obs_shape)).astype(np.float32)
    discount = np.where(pad, 0.0, 0.99).astype(np.float32)
    discount[0, length[0] - 1] = 0.0   # the first sequence ends by termination
    batch = SequenceBatch(obs=obs, action=np.where(pad, 0, rng.integers(0, A, (B, L))),
                          reward=np.where(pad, 0.0, rng.standard_normal((B, L))).astype(np.float32),
                          discount=discount, length=length.astype(np.int64),
                          state=rng.standard_normal((B, 2, H)).astype(np.float32) * 0.1,
                          prev_action=rng.integers(-1, A, B), prev_reward=rng.standard_normal(B).astype(np.float32),
                          weights=rng.uniform(0.5, 1.0, B).astype(np.float32), ids=np.arange(B))
    for arr in (batch.obs, batch.action, batch.reward):   # as from Ray's object store
        arr.flags.writeable = False
    return batch


# --- pure functions ------------------------------------------------------------------------------
def test_value_rescale_round_trip_and_values():
    x = torch.cat([torch.linspace(-1e5, 1e5, 20001, dtype=torch.float64),
                   torch.logspace(-8, 5, 500, dtype=torch.float64), -torch.logspace(-8, 5, 500, dtype=torch.float64),
                   torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(inverse_value_rescale(value_rescale(x)), x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(value_rescale(inverse_value_rescale(x)), x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(value_rescale(torch.tensor([3.0, -8.0, 0.0], dtype=torch.float64)),
                               torch.tensor([1.0 + 3e-3, -2.0 - 8e-3, 0.0], dtype=torch.float64))
    assert value_rescale(torch.tensor(3.0, dtype=torch.float64), eps=0.0).item() == pytest.approx(1.0)


def test_sequence_inputs():
    b = {"prev_action": torch.tensor([-1, 2]), "prev_reward": torch.tensor([0.0, 0.5]),
         "action": torch.tensor([[1, 0], [2, 1]]), "reward": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    pa, pr = sequence_inputs(b)
    assert pa.tolist() == [[-1, 1, 0], [2, 2, 1]] and pa.dtype == torch.int64
    assert pr.tolist() == [[0.0, 1.0, 2.0], [0.5, 3.0, 4.0]]


def test_nstep_rescaled_targets_by_hand():
    g = 0.9
    reward = torch.tensor([[1.0, 2.0, 3.0, 0.0],     # terminal at step 2 (length 3)
                           [1.0, -2.0, 0.0, 0.0],    # short (padded) sequence cut by truncation: bootstraps o_2
                           [1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)   # full; m < n near the end
    discount = torch.tensor([[g, g, 0, 0], [g, g, 0, 0], [g, g, g, g]], dtype=torch.float64)
    length = torch.tensor([3, 2, 4])
    boot = torch.tensor([[0.5, 1.0, 1.5, 2.0, 2.5], [3.0, -1.0, 2.0, 2.0, 2.0],
                         [-0.5, 0.3, 0.7, 1.1, -1.3]], dtype=torch.float64)
    y = nstep_rescaled_targets(reward, discount, length, boot, n=3, eps=EPS)
    v = boot.tolist()
    expected = {
        (0, 0): 1 + g * 2 + g * g * 3,   # m = 3, the bootstrap is multiplied by the terminal 0
        (0, 1): 2 + g * 3,
        (0, 2): 3.0,
        (1, 0): 1 + g * -2 + g * g * hinv(v[1][2]),
        (1, 1): -2 + g * hinv(v[1][2]),
        (2, 0): 1 + g * 2 + g ** 2 * 3 + g ** 3 * hinv(v[2][3]),
        (2, 1): 2 + g * 3 + g ** 2 * 4 + g ** 3 * hinv(v[2][4]),
        (2, 2): 3 + g * 4 + g ** 2 * hinv(v[2][4]),   # m = 2
        (2, 3): 4 + g * hinv(v[2][4]),                # m = 1
    }
    for (i, t), ret in expected.items():
        assert y[i, t].item() == pytest.approx(h(ret), rel=1e-9, abs=1e-12), (i, t)
    assert torch.isfinite(y).all()


def test_sequence_priority_by_hand():
    td = torch.tensor([[1.0, -3.0, 2.0, 100.0], [0.5, 0.5, 0.5, 0.5], [7.0, 7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    p = sequence_priority(td.abs(), mask, eta=0.9)
    torch.testing.assert_close(p, torch.tensor([0.9 * 3 + 0.1 * 2.0, 0.5, 0.0]))


def test_loss_and_priorities_on_a_two_step_sequence_by_hand():
    q_online = torch.tensor([[[1.0, 2.0], [0.5, 3.0], [4.0, 1.0]]], requires_grad=True)   # [1, 3, 2]
    q_target = torch.tensor([[[9.0, 9.0], [0.2, 1.5], [2.0, -7.0]]])
    action, reward = torch.tensor([[0, 1]]), torch.tensor([[1.0, 2.0]])
    discount, length, weights = torch.tensor([[0.9, 0.0]]), torch.tensor([2]), torch.tensor([0.5])
    y0 = h(1 + 0.9 * hinv(1.5))   # n = 1: online argmax at o_1 is action 1; the target net values it at 1.5
    y1 = h(2.0)                   # terminal
    d0, d1 = y0 - 1.0, y1 - 3.0
    loss, prio, td = r2d2_loss_and_priorities(q_online, q_target, action, reward, discount, length, weights,
                                              burn_in=0, n=1, eta=0.9, eps=EPS)
    assert loss.item() == pytest.approx(0.5 * 0.5 * (d0 ** 2 + d1 ** 2) / 2, rel=1e-5)
    assert prio.item() == pytest.approx(0.9 * max(abs(d0), abs(d1)) + 0.1 * (abs(d0) + abs(d1)) / 2, rel=1e-5)
    torch.testing.assert_close(td, torch.tensor([[d0, d1]]), rtol=1e-4, atol=1e-5)
    loss.backward()
    torch.testing.assert_close(q_online.grad, torch.tensor([[[-0.5 * d0 / 2, 0.0], [0.0, -0.5 * d1 / 2], [0, 0]]]),
                               rtol=1e-4, atol=1e-5)
    # n = 5: step 0 runs to the terminal, o_2's value does not count
    _, _, td = r2d2_loss_and_priorities(q_online, q_target, action, reward, discount, length, weights,
                                        burn_in=0, n=5, eta=0.9, eps=EPS)
    torch.testing.assert_close(td, torch.tensor([[h(1 + 0.9 * 2) - 1.0, d1]]), rtol=1e-4, atol=1e-5)
    # burn-in of one step: only step 1 is trained and counted
    q_online.grad = None
    loss, prio, td = r2d2_loss_and_priorities(q_online, q_target, action, reward, discount, length, weights,
                                              burn_in=1, n=5, eta=0.9, eps=EPS)
    assert loss.item() == pytest.approx(0.5 * 0.5 * d1 ** 2, rel=1e-5)
    assert prio.item() == pytest.approx(abs(d1), rel=1e-5)
    assert td[0, 0].item() == 0.0
    loss.backward()
    assert q_online.grad[0, 0].abs().sum().item() == 0.0
    # nothing trained (length <= burn_in): zero loss, zero priority
    loss, prio, _ = r2d2_loss_and_priorities(q_online, q_target, action, reward, discount, torch.tensor([1]),
                                             weights, burn_in=1, n=5, eta=0.9, eps=EPS)
    assert loss.item() == 0.0 and prio.item() == 0.0


# --- network -------------------------------------------------------------------------------------
@pytest.mark.parametrize("obs_shape,hidden", [((3,), 16), ((4, 84, 84), 32)])
def test_recurrent_network_step_by_step_equals_sequence(obs_shape, hidden):
    torch.manual_seed(0)
    net = RecurrentQNetwork(obs_shape, 3, hidden=hidden)
    B, T = 2, 5
    obs = torch.randint(0, 256, (B, T, *obs_shape), dtype=torch.uint8) if len(obs_shape) == 3 \
        else torch.randn(B, T, *obs_shape)
    pa, pr = torch.tensor([[-1, 0, 2, 1, 1], [2, 1, 0, 0, 2]]), torch.randn(B, T)
    state = (torch.randn(B, hidden) * 0.1, torch.randn(B, hidden) * 0.1)
    with torch.no_grad():
        q_seq, (h_seq, c_seq) = net(obs, pa, pr, state)
        s, qs = state, []
        for t in range(T):
            q, s = net(obs[:, t:t + 1], pa[:, t:t + 1], pr[:, t:t + 1], s)
            qs.append(q)
    assert q_seq.shape == (B, T, 3) and net.state_size == hidden
    torch.testing.assert_close(torch.cat(qs, 1), q_seq, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s[0], h_seq, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s[1], c_seq, rtol=1e-5, atol=1e-5)
    h0, c0 = net.initial_state(4, "cpu")
    assert h0.shape == (4, hidden) and not h0.any() and not c0.any()


def test_previous_action_minus_one_is_all_zeros():
    net = RecurrentQNetwork((3,), 2, hidden=8, dueling=False)
    x = torch.randn(1, 1, 3)
    with torch.no_grad():
        net.lstm.weight_ih_l0[:, 256:258] = 5.0   # make the one-hot columns count
        q_none, _ = net(x, torch.tensor([[-1]]), torch.zeros(1, 1), net.initial_state(1))
        q_zero, _ = net(x, torch.tensor([[0]]), torch.zeros(1, 1), net.initial_state(1))
        net.lstm.weight_ih_l0[:, 256:258] = 0.0
        q_ref, _ = net(x, torch.tensor([[0]]), torch.zeros(1, 1), net.initial_state(1))
    torch.testing.assert_close(q_none, q_ref)
    assert not torch.allclose(q_none, q_zero)


# --- learner -------------------------------------------------------------------------------------
def test_burn_in_steps_get_no_gradient():
    rng = np.random.default_rng(1)
    batch = random_batch(3, 6, (3,), 2, 16, rng)
    batch.length[:] = 6
    for burn_in in (2, 0):
        torch.manual_seed(0)
        learner = R2D2Learner((3,), 2, hidden=16, burn_in=burn_in, nstep=3)
        b = learner.to_device(batch)
        b["obs"] = b["obs"].clone().requires_grad_(True)
        b["state"] = b["state"].clone().requires_grad_(True)
        learner.update(b)
        if burn_in:
            assert b["state"].grad is None   # the stored state only feeds the no-grad burn-in and the target
            assert b["obs"].grad[:, :burn_in].abs().sum().item() == 0.0
        else:   # without burn-in the first observation gets gradient
            assert b["obs"].grad[:, 0].abs().sum().item() > 0
        assert b["obs"].grad[:, burn_in:].abs().sum().item() > 0


@pytest.mark.parametrize("obs_shape,B,L,hidden,burn_in", [((3,), 4, 6, 16, 2), ((4, 84, 84), 2, 4, 32, 1)])
def test_learner_update_runs(obs_shape, B, L, hidden, burn_in):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    learner = R2D2Learner(obs_shape, 3, hidden=hidden, burn_in=burn_in, nstep=2, target_period=2)
    batch = random_batch(B, L, obs_shape, 3, hidden, rng)
    batch.length[:] = np.maximum(batch.length, burn_in + 1)
    for _ in range(2):
        stats, prio = learner.update(learner.to_device(batch))
    assert set(stats) == {"loss", "mean_q"} and np.isfinite(stats["loss"]) and np.isfinite(stats["mean_q"])
    assert prio.shape == (B,) and (prio >= 0).all() and np.isfinite(prio).all() and prio.dtype == np.float32
    assert learner.steps == 2
    for k, v in learner.target.state_dict().items():   # copied at step 2
        torch.testing.assert_close(v, learner.net.state_dict()[k])
    w = learner.weights()
    assert all(t.device.type == "cpu" for t in w.values())
    other = R2D2Learner(obs_shape, 3, hidden=hidden, burn_in=burn_in, nstep=2, target_period=2)
    other.load_state_dict(learner.state_dict())
    assert other.steps == 2
    for k, v in other.net.state_dict().items():
        torch.testing.assert_close(v, w[k])


def test_learner_remembers_the_cue():
    """Sequences of random play on CueMemory (one episode each, from the zero state); greedy play after
    training must answer the cue it saw at the first step."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    T, B, H = 4, 32, 32
    learner = R2D2Learner((3,), 2, hidden=H, lr=2e-3, burn_in=0, nstep=5, target_period=25)
    env = CueMemory(length=T)

    def episodes(n):
        obs = np.zeros((n, T + 1, 3), np.float32)
        action = rng.integers(0, 2, (n, T))
        reward = np.zeros((n, T), np.float32)
        for i in range(n):
            obs[i, 0], _ = env.reset(seed=int(rng.integers(1 << 30)))
            for t in range(T):
                obs[i, t + 1], reward[i, t], *_ = env.step(action[i, t])
        discount = np.full((n, T), 0.9, np.float32)
        discount[:, -1] = 0.0
        return SequenceBatch(obs=obs, action=action, reward=reward, discount=discount,
                             length=np.full(n, T), state=np.zeros((n, 2, H), np.float32),
                             prev_action=np.full(n, -1), prev_reward=np.zeros(n, np.float32),
                             weights=np.ones(n, np.float32), ids=np.arange(n))

    for _ in range(300):
        learner.update(learner.to_device(episodes(B)))
    net, total = learner.net, 0.0
    for ep in range(40):
        o, _ = env.reset(seed=1000 + ep)
        s, pa, pr, done = net.initial_state(1), -1, 0.0, False
        while not done:
            with torch.no_grad():
                q, s = net(torch.as_tensor(o)[None, None], torch.tensor([[pa]]), torch.tensor([[pr]]), s)
            pa = int(q[0, 0].argmax())
            o, pr, done, _, _ = env.step(pa)
            total += pr
    assert total / 40 > 0.9


# --- memory env ----------------------------------------------------------------------------------
def test_cue_memory_env():
    env = gym.make("test.memory_env:CueMemory-v0", length=5)
    assert env.observation_space.shape == (3,) and env.action_space.n == 2
    seen = set()
    for seed in range(20):
        o, info = env.reset(seed=seed)
        cue = info["cue"]
        seen.add(cue)
        assert o.dtype == np.float32 and o.tolist() == [float(cue == 0), float(cue == 1), 0.0]
        for t in range(1, 5):
            o, r, term, trunc, _ = env.step(1 - cue)   # wrong answers on the way cost nothing
            assert r == 0.0 and not term and not trunc
            assert o.tolist() == [0.0, 0.0, float(t == 4)]
        o, r, term, trunc, _ = env.step(cue if seed % 2 else 1 - cue)
        assert r == (1.0 if seed % 2 else -1.0) and term and not trunc
        assert env.reset(seed=seed)[1]["cue"] == cue   # seeded
    assert seen == {0, 1}
    with pytest.raises(ValueError):
        CueMemory(length=1)
