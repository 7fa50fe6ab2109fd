import numpy as np
import pytest

from buffers.records import SequencePush
from buffers.sequence import (
    PrioritizedSequenceReplay,
    SequenceReplay,
    SequenceWriter,
    decode_sequences,
    make_sequence_replay,
    mixed_td_priority,
)
from envs import make_env
from test.replay_helpers import noise_env
from test.replay_model import expected_refs

H = 3   # recurrent state size in these tests


def obs_of(ep: int, t: int) -> np.ndarray:
    return np.array([ep, t], np.float32)


def drive(writer: SequenceWriter, episodes: list[tuple[int, str]], q_fn=None) -> tuple[list, dict]:
    """Scripted vector episodes, obs (episode, step), action t % 3, reward 100 * episode + t; the state
    given to act() at frame f is full of f. `end` is "term", "trunc" or "cut" (reset without an end)."""
    pushes, shown = [], {}
    for ep, (n, end) in enumerate(episodes):
        writer.reset(obs_of(ep, 0))
        shown[writer.frame_no] = obs_of(ep, 0)
        for t in range(n):
            f = writer.frame_no
            writer.act(np.full((2, H), f, np.float32), None if q_fn is None else q_fn(f))
            last = t == n - 1
            writer.step(t % 3, 100.0 * ep + t, obs_of(ep, t + 1), last and end == "term", last and end == "trunc")
            shown[writer.frame_no] = obs_of(ep, t + 1)
            if last and end == "trunc" and q_fn is not None:
                writer.value(q_fn(writer.frame_no))
            pushes.append(writer.take())
    return [p for p in pushes if p is not None], shown


def cat(pushes: list[SequencePush], field: str) -> np.ndarray:
    return np.concatenate([getattr(p, field) for p in pushes])


def test_episode_boundaries_padding_overlap_and_no_duplicate_tail():
    w = SequenceWriter(0, seq_len=4, overlap=2, gamma=0.9, image=False, state_size=H)
    pushes, shown = drive(w, [(7, "term"), (6, "trunc"), (1, "term")])
    # episode 0 (frames 0..7): starts at steps 0, 2, 4; the one at step 6 (1 step) lies inside step 4's
    # episode 1 (frames 8..14): steps 0, 2 full; step 4 has 2 steps = overlap, inside step 2's: dropped
    # episode 2 (frames 15, 16): one sequence of 1 step (an episode's first is always kept)
    assert cat(pushes, "start").tolist() == [0, 2, 4, 8, 10, 15]
    assert cat(pushes, "length").tolist() == [4, 4, 3, 4, 4, 1]
    g = 0.9
    np.testing.assert_allclose(cat(pushes, "discount"), [[g, g, g, g], [g, g, g, g], [g, g, 0, 0],
                                                         [g, g, g, g], [g, g, g, g], [0, 0, 0, 0]])
    reward, action = cat(pushes, "reward"), cat(pushes, "action")
    np.testing.assert_array_equal(reward[2], [4, 5, 6, 0])
    np.testing.assert_array_equal(reward[4], [102, 103, 104, 105])   # truncated: last discount is gamma
    np.testing.assert_array_equal(action[2, :3], [1, 2, 0])
    # through the replay: padding repeats o_length, the second sequence's o_0 is the first's o_P
    rp = SequenceReplay(100, (2,), 4, H)
    assert rp.add(pushes) == 6
    b = decode_sequences(rp.sample(200))
    for i, sid in enumerate(b.ids):
        s, n = cat(pushes, "start")[sid], cat(pushes, "length")[sid]
        np.testing.assert_array_equal(b.obs[i], [shown[s + min(t, n)] for t in range(5)])
        assert np.all(b.reward[i, n:] == 0) and np.all(b.discount[i, n:] == 0)
    obs = {int(i): o for i, o in zip(b.ids, b.obs)}
    np.testing.assert_array_equal(obs[1][0], obs[0][2])
    np.testing.assert_array_equal(obs[2][:], [obs_of(0, 4), obs_of(0, 5), obs_of(0, 6), obs_of(0, 7), obs_of(0, 7)])
    # the brief's example: seq_len 8, overlap 4, 6 steps -> one sequence of 6
    p, _ = drive(SequenceWriter(0, 8, 4, 0.9, image=False, state_size=H), [(6, "term")])
    assert cat(p, "length").tolist() == [6]
    # no overlap: every step in exactly one sequence; a reset mid-episode closes sequences as truncated
    p, _ = drive(SequenceWriter(0, 3, 0, 0.9, image=False, state_size=H), [(7, "cut"), (2, "term")])
    assert cat(p, "start").tolist() == [0, 3, 6, 8] and cat(p, "length").tolist() == [3, 3, 1, 2]
    assert cat(p, "discount")[2, 0] == pytest.approx(0.9)


def test_stored_state_and_previous_action_and_reward():
    w = SequenceWriter(0, seq_len=4, overlap=2, gamma=0.9, image=False, state_size=H)
    pushes, _ = drive(w, [(9, "term"), (5, "term")])
    start = cat(pushes, "start")
    assert start.tolist() == [0, 2, 4, 6, 10, 12]
    np.testing.assert_array_equal(cat(pushes, "state"), np.broadcast_to(start[:, None, None], (6, 2, H)))
    # step k of episode e: action k % 3, reward 100 e + k; o_0 at step j follows step j - 1
    assert cat(pushes, "prev_action").tolist() == [-1, 1, 0, 2, -1, 1]
    assert cat(pushes, "prev_reward").tolist() == [0, 1, 3, 5, 0, 101]
    rp = make_sequence_replay("pmdb", 10, (2,), 4, H)
    rp.add(pushes)
    b = decode_sequences(rp.sample(64))
    np.testing.assert_array_equal(b.state[:, 0, 0], start[b.ids])
    np.testing.assert_array_equal(b.prev_action, cat(pushes, "prev_action")[b.ids])


def test_priorities_wait_for_the_q_values_of_all_observations():
    calls = []

    def fn(q, action, reward, discount):
        calls.append((q.copy(), action.copy(), reward.copy(), discount.copy()))
        return float(q.sum())

    def q_of(f):
        return np.array([f, 10.0 * f], np.float32)

    w = SequenceWriter(0, seq_len=3, overlap=0, gamma=0.5, image=False, state_size=H, priority_fn=fn)
    w.reset(obs_of(0, 0))
    for t in range(3):
        w.act(np.zeros((2, H)), q_of(t))
        w.step(t, 1.0, obs_of(0, t + 1), False, False)
    assert len(w.take().start) == 0 and not calls   # o_3's Q is not known yet
    w.act(np.zeros((2, H)), q_of(3))
    p = w.take()
    assert p.start.tolist() == [0] and len(calls) == 1
    np.testing.assert_array_equal(calls[0][0], np.stack([q_of(f) for f in range(4)]))
    assert p.priority[0] == pytest.approx(sum(11.0 * f for f in range(4)))
    # terminal: the terminal observation's Q is irrelevant (zeros), no waiting
    w.step(3, 1.0, obs_of(0, 4), True, False)
    p = w.take()
    assert p.start.tolist() == [3] and p.length.tolist() == [1]
    np.testing.assert_array_equal(calls[1][0], [q_of(3), [0, 0]])
    np.testing.assert_array_equal(calls[1][3], [0.0])
    # truncated: waits for value(); a reset without it gives NaN (the replay's running maximum)
    pushes, _ = drive(w, [(2, "trunc")], q_fn=q_of)
    assert cat(pushes, "priority").tolist() == [sum(11.0 * f for f in (5, 6, 7))]
    w.reset(obs_of(1, 0))
    w.act(np.zeros((2, H)), q_of(8))
    w.step(0, 0.0, obs_of(1, 1), False, True)
    assert len(w.take().start) == 0
    w.reset(obs_of(2, 0))
    assert np.isnan(w.take().priority).tolist() == [True]
    # no priority_fn: no priorities
    pushes, _ = drive(SequenceWriter(0, 3, 0, 0.5, image=False, state_size=H), [(4, "term")])
    assert all(p.priority is None for p in pushes)
    q = np.array([[1.0, 2.0], [0.0, 3.0], [5.0, 0.0]])
    d = np.abs(np.array([1.0, 1.0]) + np.array([0.5, 0.0]) * np.array([3.0, 5.0]) - np.array([2.0, 0.0]))
    assert mixed_td_priority(q, np.array([1, 0]), np.ones(2), np.array([0.5, 0.0]), eta=0.9) == \
        pytest.approx(0.9 * d.max() + 0.1 * d.mean())


def fill(env, writer: SequenceWriter, replay, steps: int, seed: int, expected: list, push_every: int = 1,
         rng: np.random.Generator | None = None) -> None:
    """Random actions through `writer` into `replay`; append each pushed sequence's observations [L+1, ...]
    as the env showed them (padding repeats o_length), in insertion (= id) order."""
    shown, L = {}, writer.seq_len
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    writer.reset(obs)
    shown[writer.frame_no] = obs
    for t in range(steps):
        q = None if rng is None else rng.random(env.action_space.n).astype(np.float32)
        writer.act(np.full((2, writer.state_size), writer.frame_no, np.float32), q)
        a = env.action_space.sample()
        obs, r, term, trunc, _ = env.step(a)
        writer.step(a, r, obs, term, trunc)
        shown[writer.frame_no] = obs
        if term or trunc:
            if trunc and rng is not None:
                writer.value(rng.random(env.action_space.n).astype(np.float32))
            obs, _ = env.reset()
            writer.reset(obs)
            shown[writer.frame_no] = obs
        if (t + 1) % push_every == 0 or t == steps - 1:
            push = writer.take()
            if push is not None:
                expected += [np.stack([shown[s + min(i, n)] for i in range(L + 1)])
                             for s, n in zip(push.start, push.length)]
                replay.add(push)


def check(replay, expected: list, batch_size: int = 32) -> None:
    b = decode_sequences(replay.sample(batch_size))
    L = replay.seq_len
    assert b.obs.shape == (batch_size, L + 1) + replay.obs_shape
    assert b.obs.dtype == (np.uint8 if len(replay.obs_shape) == 3 else np.float32)
    for i, sid in enumerate(b.ids):
        np.testing.assert_array_equal(b.obs[i], expected[sid])


def test_round_trip_vector_env():
    env = make_env("CartPole-v1")
    rp = SequenceReplay(1000, env.observation_space.shape, seq_len=10, state_size=H)
    expected = []
    fill(env, SequenceWriter(0, 10, 5, 0.99, image=False, state_size=H), rp, 400, seed=0, expected=expected,
         push_every=7)
    assert rp.inserted == len(expected) > 40
    check(rp, expected, 128)


def test_round_trip_atari_and_frames_are_stored_once():
    rp = make_sequence_replay("pmdb", 1000, (4, 84, 84), seq_len=20, state_size=H)
    expected = []
    w = SequenceWriter(0, 20, 10, 0.99, image=True, state_size=H, priority_fn=mixed_td_priority)
    fill(make_env("Pong", train=True, seed=0), w, rp, 300, seed=0, expected=expected, rng=np.random.default_rng(0))
    check(rp, expected, 8)
    # every frame once: 301 frames pushed, each referenced by ~2 sequences of 21 observations
    assert rp.frames.live == w.frame_no + 1
    assert rp.frames.live < len(rp) * 21 / 1.5


def test_frames_shared_and_ring_overwrite_gives_every_reference_back():
    rp = SequenceReplay(10, (4, 84, 84), seq_len=8, state_size=H, seed=0)
    expected = []
    w = SequenceWriter(0, 8, 4, 0.99, image=True, state_size=H)
    fill(noise_env(), w, rp, 300, seed=1, expected=expected, push_every=3)
    assert rp.inserted == len(expected) > 30 and len(rp) == 10
    check(rp, expected, 64)
    fs = rp.frames
    np.testing.assert_array_equal(fs.refs, expected_refs(rp))
    assert fs.live == np.count_nonzero(fs.blob_len) and np.all(fs.refs[fs.blob_len > 0] > 0)
    assert np.all(fs.refs[fs.free[:fs.n_free]] == 0)
    # a restarted stream (frames from 0 again) drops the old window; its sequences overwrite all the old ones
    w2 = SequenceWriter(0, 8, 4, 0.99, image=True, state_size=H, generation=rp.new_generation())
    new = []
    fill(noise_env(), w2, rp, 120, seed=2, expected=new, push_every=5)
    assert len(new) >= 10 and rp.tid.min() >= rp.inserted - 10
    np.testing.assert_array_equal(fs.refs, expected_refs(rp))
    assert fs.live == np.count_nonzero(fs.blob_len)
    assert np.all(fs.refs[fs.blob_len > 0] > 0)
    # left: the new sequences' stacks, the new window and lz4 dictionary parents (< keyframe interval)
    assert fs.live <= 10 * (9 + 3) + fs.window + 8
    check(rp, [None] * (rp.inserted - len(new)) + new, 64)


def vector_push(base: int, n: int, priority=None, L: int = 2) -> SequencePush:
    """n one-step sequences over vector frames base..base+n, one episode starting at base."""
    first = np.zeros(n + 1, bool)
    first[0] = True
    return SequencePush(stream=0, frame_base=base, frames=np.arange(base, base + n + 1, dtype=np.float32)[:, None],
                        first=first, depth=np.zeros(n + 1, np.uint8), start=np.arange(base, base + n),
                        length=np.ones(n, np.int64), action=np.zeros((n, L), np.int64),
                        reward=np.zeros((n, L), np.float32), discount=np.zeros((n, L), np.float32),
                        state=np.zeros((n, 2, H), np.float32), prev_action=np.full(n, -1),
                        prev_reward=np.zeros(n, np.float32), priority=priority)


def test_prioritized_sampling_follows_priorities_and_ignores_stale_updates():
    rp = PrioritizedSequenceReplay(4, (1,), seq_len=2, state_size=H, alpha=1.0, beta0=0.5, beta_steps=10 ** 9,
                                   eps=0.0, seed=0)
    rp.add(vector_push(0, 4, np.array([1.0, 2.0, 3.0, 4.0], np.float32)))
    counts = np.zeros(4)
    for _ in range(50):
        sb = rp.sample(64)
        counts += np.bincount(sb.ids, minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.02)
    p = np.array([1.0, 2.0, 3.0, 4.0])[sb.ids]
    raw = (4 * p / 10.0) ** -0.5
    np.testing.assert_allclose(sb.weights, raw / raw.max(), rtol=1e-5)
    np.testing.assert_array_equal(decode_sequences(sb).obs[:, :, 0], np.stack([sb.ids, sb.ids + 1, sb.ids + 1], 1))
    rp.add(vector_push(5, 2, None))   # ids 4, 5 overwrite slots 0, 1 with the running max, 4
    assert rp.update_priorities(np.array([0, 1, 2, 3]), np.array([100.0, 100.0, 9.0, 9.0])) == 2
    np.testing.assert_array_equal(rp.tree.priorities(), [4.0, 4.0, 9.0, 9.0])
    assert set(rp.sample(64).ids) <= {2, 3, 4, 5}
    rp.update_priorities(np.array([4]), np.array([0.0]))
    assert set(rp.sample(64).ids) <= {2, 3, 5}
    mm = make_sequence_replay("mmdb", 4, (1,), 2, H, alpha=0.9)
    mm.add(vector_push(0, 4))
    assert mm.update_priorities(np.array([0]), np.array([5.0])) == 0
    with pytest.raises(ValueError, match="mmdb or pmdb"):
        make_sequence_replay("foo", 4, (1,), 2, H)


@pytest.mark.parametrize("kind", ["mmdb", "pmdb"])
def test_save_load_round_trip(tmp_path, kind):
    a = make_sequence_replay(kind, 30, (4, 84, 84), 8, H, seed=3)
    w = SequenceWriter(0, 8, 4, 0.99, image=True, state_size=H,
                       priority_fn=mixed_td_priority if kind == "pmdb" else None)
    env, rng = noise_env(), np.random.default_rng(0) if kind == "pmdb" else None
    fill(env, w, a, 200, seed=0, expected=[], push_every=4, rng=rng)
    if kind == "pmdb":
        sb = a.sample(16)
        a.update_priorities(sb.ids, np.linspace(0, 3, 16))
    path = tmp_path / "seq.npz"
    a.save(str(path))
    b = make_sequence_replay(kind, 30, (4, 84, 84), 8, H, seed=99)
    b.load(str(path))
    assert b.stats() == a.stats()
    for _ in range(2):
        x, y = decode_sequences(a.sample(16)), decode_sequences(b.sample(16))
        for f in ("obs", "action", "reward", "discount", "length", "state", "prev_action", "prev_reward",
                  "weights", "ids"):
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f), err_msg=f)
    for _ in range(20):   # the same stream goes on ...
        w.act(np.zeros((2, H)), np.ones(3))
        obs, r, term, trunc, _ = env.step(1)
        w.step(1, r, obs, term, trunc)
        if term or trunc:
            w.reset(env.reset()[0])
    push = w.take()
    assert a.add(push) == b.add(push) > 0   # ... into both identically
    sa, sb_ = a.state_dict(), b.state_dict()
    assert sa.keys() == sb_.keys()
    for k in sa:
        if k != "rng":
            np.testing.assert_array_equal(sa[k], sb_[k], err_msg=k)
    with pytest.raises(ValueError, match="seq_len"):
        make_sequence_replay(kind, 30, (4, 84, 84), 9, H).load(str(path))


def narrow_window_pushes(seq_len: int = 8) -> list[SequencePush]:
    """One sequence of frames 0..seq_len whose frames went out in a push before the one carrying it."""
    w, env = SequenceWriter(0, seq_len, 0, 0.99, image=True, state_size=H), noise_env()
    env.unwrapped.left = 10 ** 9
    w.reset(env.reset(seed=0)[0])
    env.unwrapped.left = 10 ** 9   # no episode end
    pushes = []
    for t in range(seq_len):
        w.act(np.zeros((2, H)))
        w.step(0, 0.0, env.step(0)[0], False, False)
        if t == seq_len - 4:
            pushes.append(w.take())
    pushes.append(w.take())
    assert [len(p) for p in pushes] == [0, 1] and pushes[1].frame_base == seq_len - 2
    return pushes


def test_a_too_narrow_window_is_refused_before_anything_changes():
    # the push carrying the sequence starts at frame 6; o_0's stack could reach back to frame 0 - 3
    ok = SequenceReplay(10, (4, 84, 84), seq_len=8, state_size=H, window=9)   # 6 - 9 = -3: fine
    assert ok.add(narrow_window_pushes()) == 1
    rp = SequenceReplay(10, (4, 84, 84), seq_len=8, state_size=H, window=8)
    first, second = narrow_window_pushes()
    rp.add(first)
    before = rp.state_dict()
    with pytest.raises(ValueError, match="stack of frame 0 reaches outside the stream window"):
        rp.add(second)
    after = rp.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
