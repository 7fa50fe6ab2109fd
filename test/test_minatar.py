"""MinAtar: the env as the program sees it, the torso, the replay's image path, a run end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from agents.config import parse_args
from agents.driver import train
from buffers import PrioritizedReplay, StreamWriter, decode_batch
from buffers.sequence import SequenceWriter, decode_sequences, make_sequence_replay
from envs import env_family, env_info, make_env
from envs.minatar import MAX_EPISODE_STEPS
from main import main
from networks import MinAtarTorso, QNetwork
from networks.recurrent import RecurrentQNetwork

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANNELS = {"Breakout": 4, "SpaceInvaders": 6, "Asterix": 4, "Freeway": 7, "Seaquest": 10}
ACTIONS = {"Breakout": 3, "SpaceInvaders": 4, "Asterix": 5, "Freeway": 3, "Seaquest": 6}   # minimal sets (-v1)


@pytest.mark.parametrize("game", sorted(CHANNELS))
def test_each_game_is_a_stack_of_one_channel_first_uint8_frame(game):
    name = f"MinAtar/{game}-v1"
    info = env_info(name)
    assert env_family(name) == "minatar" and info.image and info.discrete
    assert info.obs_shape == (1, CHANNELS[game], 10, 10) and info.obs_dtype == "uint8"
    assert info.num_actions == ACTIONS[game]
    env = make_env(name, seed=3)
    obs, _ = env.reset(seed=3)
    state = env.unwrapped.game.state()                        # the package's own channel-last bool image
    assert obs.dtype == np.uint8 and np.array_equal(obs[0], np.transpose(state, (2, 0, 1)).astype(np.uint8))
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS
    env.close()


def test_the_same_seed_plays_the_same_game():
    def play(seed):
        env = make_env("MinAtar/Breakout-v1", seed=seed)
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for a in [0, 1, 2] * 30:
            obs, _, term, trunc, _ = env.step(a)
            frames.append(obs)
            if term or trunc:
                break
        return np.stack(frames)

    assert np.array_equal(play(5), play(5))


def test_render_paints_each_occupied_cell_in_its_channels_colour():
    env = make_env("MinAtar/Breakout-v1", seed=0, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    rgb = env.render()
    assert rgb.shape == (160, 160, 3) and rgb.dtype == np.uint8
    occupied = obs[0].any(axis=0)                             # [10, 10]
    painted = rgb[::16, ::16].any(axis=-1)                    # one pixel per cell
    assert np.array_equal(occupied, painted)


def test_without_the_package_the_error_says_what_to_install():
    code = ("import sys; sys.modules['minatar'] = None; sys.argv = ['main.py', 'MinAtar/Breakout-v1']; "
            "import main; sys.exit(main.main())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install -e ".[minatar]"' in lines[0] and "MinAtar/Breakout-v1" in lines[0]


def test_the_torso_is_the_papers_network():
    """One 3x3 conv of 16 channels (no padding: 8x8 outputs), 128 hidden units: counted by hand."""
    net = QNetwork((1, 4, 10, 10), 3)
    assert isinstance(net.torso, MinAtarTorso)
    conv = 4 * 16 * 3 * 3 + 16
    fc = 16 * 8 * 8 * 128 + 128
    head = 128 * 3 + 3
    assert sum(p.numel() for p in net.parameters()) == conv + fc + head
    obs = torch.zeros(5, 1, 4, 10, 10, dtype=torch.uint8)
    obs[:, 0, 1, 4, 4] = 1
    assert net(obs).shape == (5, 3)
    # the channels are not an image stack: each reaches the conv as its own input channel
    assert net.torso.conv[0].in_channels == 4
    rnet = RecurrentQNetwork((1, 6, 10, 10), 4, hidden=32)
    q, _ = rnet(torch.zeros(2, 3, 1, 6, 10, 10, dtype=torch.uint8), torch.zeros(2, 3), torch.zeros(2, 3),
                rnet.initial_state(2))
    assert q.shape == (2, 3, 4) and isinstance(rnet.torso, MinAtarTorso)


def test_the_replays_image_path_returns_the_observations_played():
    """Random play through a writer into a pmdb replay: every sampled (obs, next_obs) is a pair the env
    showed, n or fewer steps apart within one episode; each frame is stored once."""
    env = make_env("MinAtar/SpaceInvaders-v1", seed=1)
    writer = StreamWriter(0, 3, 0.99, image=True, priorities=True)
    replay = PrioritizedReplay(5_000, (1, 6, 10, 10), seed=0)
    shown: dict[bytes, list[tuple[int, int]]] = {}   # frame -> (episode, step) where the env showed it
    rng = np.random.default_rng(0)
    episode, t = 0, 0
    obs, _ = env.reset(seed=1)
    writer.reset(obs)
    shown.setdefault(obs.tobytes(), []).append((episode, t))
    for _ in range(3_000):
        a = int(rng.integers(4))
        writer.act(0.0, 1.0)
        obs, r, term, trunc, _ = env.step(a)
        writer.step(a, r, obs, term, trunc)
        t += 1
        shown.setdefault(obs.tobytes(), []).append((episode, t))
        if term or trunc:
            obs, _ = env.reset()
            writer.reset(obs)
            episode, t = episode + 1, 0
            shown.setdefault(obs.tobytes(), []).append((episode, t))
        if writer.pending() >= 100:
            replay.add(writer.take())
    assert episode >= 5
    batch = decode_batch(replay.sample(256))
    assert batch.obs.shape == (256, 1, 6, 10, 10) and batch.obs.dtype == np.uint8
    assert batch.next_obs.shape == batch.obs.shape
    for o, n in zip(batch.obs, batch.next_obs):
        pairs = [(ea, ta, eb, tb) for ea, ta in shown[o.tobytes()] for eb, tb in shown[n.tobytes()]]
        assert any(ea == eb and 0 < tb - ta <= 3 for ea, ta, eb, tb in pairs)
    assert replay.frames.live / len(replay) < 1.1                 # one stored frame per transition
    assert replay.frames.blob_bytes / replay.frames.live < 100     # of 600 raw bytes


def test_r2d2_sequences_of_minatar_frames_come_back_as_played():
    """The sequence replay's image path with [1, C, 10, 10] frames: each sampled sequence's observations are
    consecutive observations of one episode, as the env showed them."""
    env = make_env("MinAtar/Breakout-v1", seed=2)
    writer = SequenceWriter(0, 10, 5, 0.99, image=True, state_size=4)
    replay = make_sequence_replay("pmdb", 500, (1, 4, 10, 10), 10, 4, seed=0)
    played, episode = [], []
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=2)
    writer.reset(obs)
    episode.append(obs)
    for _ in range(2_000):
        writer.act(np.zeros((2, 4), np.float32))
        a = int(rng.integers(3))
        obs, r, term, trunc, _ = env.step(a)
        writer.step(a, r, obs, term, trunc)
        episode.append(obs)
        if term or trunc:
            played.append(np.stack(episode))
            obs, _ = env.reset()
            writer.reset(obs)
            episode = [obs]
        if writer.pending():
            replay.add(writer.take())
    played.append(np.stack(episode))
    batch = decode_sequences(replay.sample(32))
    assert batch.obs.shape == (32, 11, 1, 4, 10, 10) and batch.obs.dtype == np.uint8
    for seq, n in zip(batch.obs, batch.length):
        n = int(n)
        hits = [ep for ep in played for t in range(len(ep) - n) if np.array_equal(ep[t:t + n + 1], seq[:n + 1])]
        assert hits, "a sequence that no episode played"


@pytest.mark.slow
def test_a_short_minatar_run_trains_and_its_checkpoint_plays(ray_session, tmp_path, capsys):
    flags = ["--buffer=pmdb", "--max_steps=3000", "--replay_start=500", "--eval_period=1500",
             "--eval_episodes=2", "--status_period=1", "--batch_size=16", "--save_period=50"]
    cfg, given = parse_args(["MinAtar/Breakout-v1", "--alg=DDQN", "--suffix=mini", f"--logdir={tmp_path}/logs",
                             f"--modeldir={tmp_path}/model", *flags])
    assert cfg.preset["family"] == "minatar"
    summary = train(cfg, given)
    assert summary["env_steps"] >= 3000 and summary["learner_steps"] > 0 and summary["dropped_pushes"] == 0
    assert summary["last_eval_return"] is not None and summary["last_eval_return"] >= 0
    code = main(["MinAtar/Breakout-v1", "--test", "--record", "--test_episodes=2", f"--resume={summary['checkpoint']}"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["episodes"] == 2
    gif = out.strip().splitlines()[-2].split("| gif ")[1]
    assert os.path.exists(gif) and os.path.getsize(gif) > 1_000
    os.remove(gif)
