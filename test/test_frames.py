import numpy as np
import pytest

from buffers import PrioritizedReplay, StreamWriter, UniformReplay, decode_batch
from buffers.frames import FrameEncoder, StalePush, decode_frames
from envs import make_env
from test.replay_helpers import fill, noise_env


def check_sample(replay, expected, batch_size=128):
    b = decode_batch(replay.sample(batch_size))
    assert b.obs.dtype == np.uint8 and b.obs.shape == (batch_size, 4, 84, 84)
    for i, tid in enumerate(b.ids):
        obs, nxt = expected[tid]
        np.testing.assert_array_equal(b.obs[i], obs)
        np.testing.assert_array_equal(b.next_obs[i], nxt)
    return b


def test_encoder_chain_roundtrip():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 4, (84, 84), dtype=np.uint8) * 60 for _ in range(20)]
    enc = FrameEncoder(keyframe_interval=4)
    coded = [enc.encode(f, first=(i == 0 or i == 10)) for i, f in enumerate(frames)]
    assert [d for _, d in coded] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    parents = np.array([-1 if d == 0 else i - 1 for i, (_, d) in enumerate(coded)], dtype=np.int32)
    out = decode_frames([b for b, _ in coded], parents, (84, 84))
    np.testing.assert_array_equal(out, np.stack(frames))


def test_stacks_rebuild_what_the_wrapper_showed_across_episode_boundaries():
    replay = UniformReplay(10_000, (4, 84, 84), seed=0)
    expected = []
    fill(noise_env(), StreamWriter(0, 3, 0.99, image=True), replay, 600, push_every=7, seed=1, expected=expected)
    assert len(replay) == len(expected)
    for _ in range(5):
        check_sample(replay, expected)


def test_stacks_on_a_real_atari_game_with_life_loss():
    replay = PrioritizedReplay(5_000, (4, 84, 84), seed=0)
    expected = []
    env = make_env("Breakout", train=True)   # 5 lives: random play loses them within tens of steps
    fill(env, StreamWriter(3, 3, 0.99, image=True), replay, 400, push_every=50, seed=2, expected=expected)
    check_sample(replay, expected, 256)


def test_ring_overwrite_frees_frames_and_keeps_stacks_exact():
    replay = UniformReplay(300, (4, 84, 84), seed=0)
    expected = []
    writers = [StreamWriter(s, 3, 0.99, image=True) for s in range(2)]
    envs = [noise_env(), noise_env()]
    for rnd in range(6):   # two streams interleaving pushes
        for s in range(2):
            fill_part = []
            fill(envs[s], writers[s], replay, 200, push_every=13, seed=10 * rnd + s, expected=fill_part)
            expected += fill_part
    assert replay.inserted == len(expected) and len(replay) == 300
    b = check_sample(replay, expected, 256)
    assert b.ids.min() >= replay.inserted - 300
    # frames held: those of the 300 live transitions' stacks plus the two streams' windows, nothing leaked
    assert replay.frames.live <= 300 + 2 * (4 + 3) + 2 * replay.frames.window
    refs = replay.frames.refs[:replay.frames.slots]
    assert refs.min() >= 0


def test_restarted_stream_and_out_of_order_push():
    replay = UniformReplay(1000, (4, 84, 84))
    w = StreamWriter(0, 3, 0.99, image=True)
    fill(noise_env(), w, replay, 50, 10, seed=0, expected=[])
    w.step(0, 0.0, np.zeros((4, 84, 84), np.uint8), False, False)
    late = w.take()
    w2 = StreamWriter(0, 3, 0.99, image=True, generation=replay.new_generation())   # a restarted agent
    expected = []
    fill(noise_env(), w2, replay, 50, 10, seed=1, expected=expected)
    with pytest.raises(StalePush, match="generation 0 after generation 1"):
        replay.add(late)                         # the dead agent's last push, arriving late
    again = StreamWriter(0, 3, 0.99, image=True, generation=1)
    fill(noise_env(), again, UniformReplay(100, (4, 84, 84)), 5, 5, seed=0, expected=[])
    again.step(0, 0.0, np.zeros((4, 84, 84), np.uint8), False, False)
    with pytest.raises(ValueError, match=r"stream 0: push starts at frame 6, expected \d+"):
        replay.add(again.take())                 # same generation, frames out of order: a bug, not a late push
    b = decode_batch(replay.sample(64))
    new = b.ids >= replay.inserted - len(expected)
    for i in np.flatnonzero(new):
        np.testing.assert_array_equal(b.obs[i], expected[b.ids[i] - (replay.inserted - len(expected))][0])
    w3 = StreamWriter(5, 3, 0.99, image=True)
    fill(noise_env(), w3, UniformReplay(100, (4, 84, 84)), 5, 5, seed=0, expected=[])
    w3.step(0, 0.0, np.zeros((4, 84, 84), np.uint8), False, False)
    with pytest.raises(ValueError, match="stream 5"):
        replay.add(w3.take())   # this replay never saw stream 5's earlier frames


def test_vector_observations_through_the_same_interface():
    env = make_env("CartPole-v1")
    replay = UniformReplay(1000, env.observation_space.shape, seed=0)
    expected = []
    fill(env, StreamWriter(0, 3, 0.99, image=False), replay, 300, 16, seed=0, expected=expected)
    b = decode_batch(replay.sample(64))
    assert b.obs.dtype == np.float32 and b.obs.shape == (64, 4)
    for i, tid in enumerate(b.ids):
        np.testing.assert_array_equal(b.obs[i], expected[tid][0])
        np.testing.assert_array_equal(b.next_obs[i], expected[tid][1])


def test_a_writer_given_the_newest_frame_apart_writes_what_it_takes_from_the_stack():
    from buffers import StreamWriter

    rng = np.random.default_rng(0)
    stacks = rng.integers(0, 4, (30, 84, 84, 4), dtype=np.uint8).transpose(0, 3, 1, 2)   # channel-last, as Atari's
    a, b = (StreamWriter(0, 3, 0.99, image=True) for _ in range(2))
    a.reset(stacks[0])
    b.reset(stacks[0])
    for t in range(1, 30):
        a.step(1, 1.0, stacks[t], t == 29, False)
        b.step(1, 1.0, stacks[t], t == 29, False, np.ascontiguousarray(stacks[t][-1]))
    pa, pb = a.take(), b.take()
    assert pa.frames == pb.frames and len(pa.frames) == 30
    assert all(np.array_equal(getattr(pa, k), getattr(pb, k)) for k in ("obs", "next_obs", "ret", "discount"))
