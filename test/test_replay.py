import numpy as np
import pytest
import torch

from buffers import (PrioritizedReplay, Push, StreamWriter, decode_batch, importance_weights,
                     linear_schedule, make_replay, td_priority)
from test.replay_helpers import fill, noise_env


def vector_push(stream, base, n, first=True, priority=None):
    """n transitions over n+1 vector frames numbered base..base+n, one episode starting at base."""
    frames = np.arange(base, base + n + 1, dtype=np.float32)[:, None].repeat(2, 1)
    f = np.zeros(n + 1, bool)
    f[0] = first
    return Push(stream=stream, frame_base=base, frames=frames, first=f, depth=np.zeros(n + 1, np.uint8),
                obs=np.arange(base, base + n), next_obs=np.arange(base + 1, base + n + 1),
                action=np.arange(n), ret=np.ones(n, np.float32), discount=np.full(n, 0.9, np.float32),
                priority=priority)


def test_importance_weight_formula_by_hand():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    w = importance_weights(probs, size=4, beta=0.5)
    raw = np.array([(4 * 0.1) ** -0.5, (4 * 0.2) ** -0.5, (4 * 0.3) ** -0.5, (4 * 0.4) ** -0.5])
    np.testing.assert_allclose(w, raw / raw[0], rtol=1e-6)
    assert w.max() == 1.0


def test_beta_anneals_from_04_to_1_and_never_above():
    assert linear_schedule(0, 0.4, 1.0, 100) == 0.4
    assert linear_schedule(50, 0.4, 1.0, 100) == pytest.approx(0.7)
    assert linear_schedule(10 ** 9, 0.4, 1.0, 100) == 1.0
    rp = PrioritizedReplay(100, (2,), beta_steps=4)
    rp.add(vector_push(0, 0, 10))
    betas = []
    for step in range(7):                  # beta follows the learner steps its priority updates report
        sb = rp.sample(4)
        betas.append(sb.beta)
        rp.update_priorities(sb.ids, np.ones(4), step=step + 1)
    assert betas == pytest.approx([0.4, 0.55, 0.7, 0.85, 1.0, 1.0, 1.0])


def test_sampled_weights_follow_priorities():
    rp = PrioritizedReplay(8, (2,), alpha=1.0, beta0=0.5, beta_steps=10 ** 9, eps=0.0, seed=0)
    rp.add(vector_push(0, 0, 4, priority=np.array([1.0, 2.0, 3.0, 4.0], np.float32)))
    sb = rp.sample(64)
    p = np.array([1.0, 2.0, 3.0, 4.0])[sb.ids]
    raw = (4 * p / 10.0) ** -0.5
    np.testing.assert_allclose(sb.weights, raw / raw.max(), rtol=1e-5)
    assert rp.max_priority == 4.0


def test_new_transitions_without_priority_get_the_running_max():
    rp = PrioritizedReplay(16, (2,), alpha=1.0, eps=0.0)
    rp.add(vector_push(0, 0, 2, priority=np.array([5.0, np.nan], np.float32)))
    rp.update_priorities(np.array([0]), np.array([7.0]))
    rp.add(vector_push(0, 3, 2, priority=None))
    np.testing.assert_array_equal(rp.tree.priorities()[:4], [7.0, 5.0, 7.0, 7.0])


def test_ring_overwrite_and_stale_priority_update_is_ignored():
    rp = PrioritizedReplay(4, (2,), alpha=1.0, eps=0.0)
    rp.add(vector_push(0, 0, 4, priority=np.ones(4, np.float32)))
    ids = np.array([0, 1, 2, 3])
    rp.add(vector_push(0, 5, 2, priority=np.full(2, 3.0, np.float32)))   # ids 4, 5 overwrite slots 0, 1
    assert len(rp) == 4 and sorted(rp.tid) == [2, 3, 4, 5]
    updated = rp.update_priorities(ids, np.array([100.0, 100.0, 9.0, 9.0]))
    assert updated == 2
    np.testing.assert_array_equal(rp.tree.priorities(), [3.0, 3.0, 9.0, 9.0])
    b = decode_batch(rp.sample(32))
    assert set(b.ids) <= {2, 3, 4, 5}
    np.testing.assert_array_equal(b.obs[:, 0], b.ids + np.where(b.ids >= 4, 1, 0))  # ids 4,5 are frames 5,6


def test_one_add_call_writes_the_priorities_that_push_by_push_adds_write():
    """An add call (and the replay actor's call around several) writes the sum tree once: the same leaves, sums
    and running maximum as adding its pushes one by one, with unknown priorities taking the maximum seen up to
    their own push, and later pushes overwriting earlier ones' slots in the same call."""
    def pushes():
        return [vector_push(0, 0, 3, priority=np.array([2.0, np.nan, 1.0], np.float32)),
                vector_push(1, 0, 2, priority=np.array([9.0, 3.0], np.float32)),
                vector_push(0, 4, 2, first=True, priority=None),                   # the maximum so far: 9
                vector_push(1, 3, 3, priority=np.array([np.nan, 0.5, 4.0], np.float32))]   # slots 7, 0, 1: wraps
    one, each = (PrioritizedReplay(8, (2,), alpha=0.6, eps=1e-6) for _ in range(2))
    assert one.add(pushes()) == each.add(pushes()[0]) + sum(each.add(p) for p in pushes()[1:]) == 10
    nested = PrioritizedReplay(8, (2,), alpha=0.6, eps=1e-6)
    with nested.one_priority_write():
        for p in pushes():
            nested.add(p)
        assert nested.tree.total == 0.0   # nothing written before the outermost context ends
    for rp in (one, nested):
        np.testing.assert_array_equal(rp.tree.tree, each.tree.tree)
        assert rp.max_priority == each.max_priority == 9.0
    np.testing.assert_allclose(each.tree.priorities()[5:7], (9.0 + 1e-6) ** 0.6)   # push 3: the max by then
    with pytest.raises(ValueError):   # a bad priority fails on its own push; the pushes before it are written
        one.add([vector_push(2, 0, 1, priority=np.array([1.0], np.float32)),
                 vector_push(3, 0, 1, priority=np.array([-5.0], np.float32))])
    assert one.tree.get(np.array([2]))[0] == pytest.approx((1.0 + 1e-6) ** 0.6)


def test_mmdb_ignores_priorities_and_samples_uniformly():
    rp = make_replay("mmdb", 100, (2,), alpha=0.6, seed=0)
    rp.add(vector_push(0, 0, 10))
    assert rp.update_priorities(np.array([1]), np.array([5.0])) == 0
    counts = np.bincount(rp.sample(20_000).ids, minlength=10)
    assert counts.min() > 1700 and counts.max() < 2300
    with pytest.raises(ValueError, match="mmdb or pmdb"):
        make_replay("foo", 10, (2,))


def test_writer_priorities_are_td_errors_from_the_agents_estimates():
    w = StreamWriter(0, 2, 0.5, image=False, priorities=True)
    w.reset(np.zeros(2))
    w.act(q_taken=1.0, value=1.5)            # frame 0
    w.step(0, 1.0, np.ones(2), False, False)
    w.act(q_taken=2.0, value=2.5)            # frame 1
    w.step(1, 2.0, np.ones(2) * 2, False, False)
    assert w.take().priority.size == 0       # transition 0 needs V(frame 2)
    w.act(q_taken=3.0, value=4.0)            # frame 2
    w.step(0, 0.0, np.ones(2) * 3, True, False)
    p = w.take()
    # t0: R = 1 + .5*2 = 2, bootstrap .25 * V(f2)=4 -> |2 + 1 - 1| = 2; t1: R = 2 + 0 = 2, terminal -> |2 - 2| = 0
    # t2: R = 0, terminal -> |0 - 3| = 3
    assert list(zip(p.obs, p.priority)) == [(0, 2.0), (1, 0.0), (2, 3.0)]
    np.testing.assert_allclose(td_priority(np.array([1.0]), np.array([2.0]), np.array([0.25]), np.array([4.0])), [2.0])


@pytest.mark.parametrize("kind", ["mmdb", "pmdb"])
def test_state_round_trip_through_a_file(tmp_path, kind):
    a = make_replay(kind, 500, (4, 84, 84), seed=3)
    w = StreamWriter(0, 3, 0.99, image=True, priorities=kind == "pmdb")
    env = noise_env()
    expected = []
    fill(env, w, a, 700, 11, seed=0, expected=expected, priorities=np.random.default_rng(0))
    if kind == "pmdb":
        sb = a.sample(32)
        a.update_priorities(sb.ids, np.linspace(0, 3, 32))
    path = tmp_path / "replay.npz"
    a.save(str(path))
    b = make_replay(kind, 500, (4, 84, 84), seed=99)
    b.load(str(path))
    assert b.stats() == a.stats()
    for _ in range(3):
        x, y = decode_batch(a.sample(64)), decode_batch(b.sample(64))
        for f in ("obs", "next_obs", "action", "ret", "discount", "weights", "ids"):
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))
    # both keep going identically: the same stream continues into the original and the restored replay
    for step in range(30):
        w.act(0.5, 1.0)
        obs, r, term, trunc, _ = env.step(1)
        w.step(1, r, obs, term, trunc)
        if term or trunc:
            w.reset(env.reset()[0])
    push = w.take()
    assert a.add(push) == b.add(push) > 0
    sa, sb_ = a.state_dict(), b.state_dict()
    assert sa.keys() == sb_.keys()
    for k in sa:
        if k != "rng":
            np.testing.assert_array_equal(sa[k], sb_[k], err_msg=k)
    with pytest.raises(ValueError, match="capacity"):
        make_replay(kind, 400, (4, 84, 84)).load(str(path))


def test_batch_arrays_go_to_torch_without_a_copy():
    rp = PrioritizedReplay(1000, (4, 84, 84))
    fill(noise_env(), StreamWriter(0, 3, 0.99, image=True), rp, 200, 20, seed=0, expected=[])
    b = decode_batch(rp.sample(32))
    assert b.obs.shape == (32, 4, 84, 84) and b.obs.dtype == np.uint8
    for f in ("obs", "next_obs", "action", "ret", "discount", "weights", "ids"):
        arr = getattr(b, f)
        assert arr.flags.c_contiguous and arr.flags.writeable, f
        t = torch.from_numpy(arr)
        assert t.data_ptr() == arr.ctypes.data, f
    assert b.action.dtype == np.int64 and b.ret.dtype == np.float32 and b.weights.dtype == np.float32
