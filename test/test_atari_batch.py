"""Agents' Atari games on ale-py's C++ vector env (envs/batch.py) against the Python wrappers of envs/atari.py:
the same seeds and actions must show the agent the same stacks, rewards and episode ends."""
import numpy as np
import pytest

from envs.atari import make_atari
from envs.batch import AtariBatch, EnvList, make_env_batch


def python_pipeline(game, train, sticky, seed):
    """make_atari with ALE's own seed set as the C++ env sets it (env j: seed + j); no no-ops on either side,
    because the two no-op RNGs cannot be aligned."""
    env = make_atari(game, train=train, sticky=sticky, noop_max=0)
    env.unwrapped.ale.setInt("random_seed", seed)
    env.unwrapped.load_game()
    return env


def compare(game, train, sticky, steps=1500, n=2, seed=7):
    """Steps both pipelines with the same random actions; returns counts of what matched."""
    batch = AtariBatch(game, n, train=train, sticky=sticky, seed=seed, noop_max=0)
    py = [python_pipeline(game, train, sticky, seed + j) for j in range(n)]
    b_obs = batch.reset()
    p_obs = [env.reset()[0] for env in py]
    assert all((p == b).all() for p, b in zip(p_obs, b_obs))
    ended = [False] * n
    actions = np.random.default_rng(99).integers(0, batch.num_actions, (steps, n))
    c = dict(steps=0, same=0, ends=0, same_at_ends=0, life_ends=0, games=0, mismatch=[])
    for t in range(steps):
        b_obs, b_r, b_te, b_tr, info = batch.step(actions[t])
        for j in range(n):
            assert not info["idle"][j]
            if ended[j]:   # the Python env resets where the C++ env restarts the game or resumes after a lost life
                p_o, _ = py[j].reset()
                p = (0.0, False, False, 0.0, False, True)
            else:
                p_o, p_r, p_te, p_tr, p_info = py[j].step(int(actions[t, j]))
                p = (p_r, p_te, p_tr, p_info["raw_reward"], p_info["game_over"], False)
            b = (b_r[j], b_te[j], b_tr[j], info["raw_reward"][j], info["game_over"][j], info["restart"][j])
            if tuple(map(float, p)) != tuple(map(float, b)):
                c["mismatch"].append((t, j, p, b))
            ended[j] = p[1] or p[2]
            same = bool((p_o == b_obs[j]).all())
            c["steps"] += 1
            c["same"] += same
            if p[4]:   # the step on which a game ended (the C++ env never captures the game's last frame)
                c["ends"] += 1
                c["same_at_ends"] += same
                c["games"] += 1
            elif p[1]:
                c["life_ends"] += 1
    return c


@pytest.mark.parametrize("game,train,sticky", [("Breakout", True, True), ("Breakout", True, False),
                                               ("Breakout", False, True), ("Pong", True, True)])
def test_the_cpp_batch_shows_the_agent_what_the_python_wrappers_show(game, train, sticky):
    c = compare(game, train, sticky)
    assert c["mismatch"] == []                         # rewards, ends, raw scores, restarts: all equal
    assert c["same"] >= c["steps"] - c["ends"]         # every stack equal except on the steps games ended
    if game == "Breakout":
        assert c["games"] >= 5 and (c["life_ends"] >= 20 if train else c["life_ends"] == 0)


def test_a_lost_life_resumes_after_one_noop_step_and_the_stack_restarts():
    batch = AtariBatch("Breakout", 1, train=True, seed=1, noop_max=0)
    batch.reset()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        obs, reward, term, trunc, info = batch.step(rng.integers(0, 4, 1))
        if term[0] and not info["game_over"][0]:
            break
    else:
        pytest.fail("no life was lost in 2000 steps")
    assert batch.noop_pending[0]
    obs, reward, term, trunc, info = batch.step([3])       # the action is replaced by NOOP
    assert info["restart"][0] and not term[0] and reward[0] == 0.0
    assert all((obs[0, k] == obs[0, -1]).all() for k in range(4))   # a new episode's stack: its first frame x4


def test_evaluation_games_are_reproducible_from_the_seed():
    def scores(seed):
        batch = AtariBatch("Pong", 1, train=False, seed=seed)
        out = []
        for _ in range(2):
            obs = batch.reset()
            for _ in range(60):
                obs, *_ = batch.step([2])
            out.append(int(obs.sum()))
        return out
    assert scores(5) == scores(5)
    assert scores(5) != scores(6)


def test_non_atari_envs_and_recording_take_the_list_of_single_envs():
    assert isinstance(make_env_batch("CartPole-v1", 3, train=True, seed=0), EnvList)
    assert isinstance(make_env_batch("Pong", 1, train=False, seed=0, render_mode="rgb_array"), EnvList)
    assert isinstance(make_env_batch("Pong", 2, train=True, seed=0), AtariBatch)
    envs = make_env_batch("CartPole-v1", 2, train=True, seed=0)
    obs = envs.reset()
    for _ in range(200):
        obs, r, term, trunc, info = envs.step([0, 0])
        assert not info["restart"].any()
        for j in np.flatnonzero(term | trunc):
            obs[j] = envs.reset_one(j)


def test_an_agent_on_the_cpp_batch_writes_one_transition_per_decision_and_a_new_episode_per_restart():
    """Breakout (life losses) through EnvRunner: restart steps write no transition; every life lost or game
    ended starts a new episode in the env's stream; whole games reach the statistics with raw scores."""
    from agents.config import parse_args
    from agents.roles import EnvRunner
    from envs import env_info

    cfg, _ = parse_args(["Breakout", "--buffer=mmdb", "--num_agents=2", "--envs_per_agent=3"])
    pushes = []
    runner = EnvRunner(1, cfg, env_info("Breakout"), send=lambda p: pushes.extend(p) or True)
    out = runner.run(3000)
    assert runner.envs.num_envs == 3 and isinstance(runner.envs, AtariBatch)
    transitions = sum(len(p.obs) for p in pushes)
    frames = sum(len(p.frames) for p in pushes)
    starts = sum(int(p.first.sum()) for p in pushes)
    assert out["steps"] == runner.steps and 2900 <= runner.steps <= 3000
    # each env stream: one frame per decision plus the first frame of each episode; n-step transitions
    # are all written by the end of an episode (each of 3 envs may hold up to n - 1 = 2 back; mmdb: no
    # transition waits for a priority)
    assert frames == runner.steps + starts
    assert runner.steps - 3 * 2 <= transitions <= runner.steps
    assert starts >= 3 + 20                               # the first episodes, then a lost life every ~50 steps
    assert len(out["returns"]) >= 3 and all(raw >= 0 for raw, _ in out["returns"])
    assert {p.stream for p in pushes} == {3, 4, 5}        # agent 1's envs are streams 3..5
    stats = out["stats"]
    assert stats["epsilon"] == pytest.approx(0.4 ** (1 + 7 * 1 / 5)) and stats["epsilon_min"] == pytest.approx(
        0.4 ** 8)   # agent 1 of 2, envs 0 and 2: actors 1 and 5 of 6


def test_stacks_reach_the_agent_channel_last_with_each_envs_newest_frame_apart():
    """The stacks are [E, 4, 84, 84] with channel-last strides (the int8 convolutions' own layout); `newest` is
    obs[:, -1] as a contiguous array (the frame the writers compress); a restarted game's stack is its first
    frame four times."""
    batch = AtariBatch("Breakout", 3, train=True, seed=3, noop_max=0)
    obs = batch.reset()
    assert obs.shape == (3, 4, 84, 84) and obs.strides == (84 * 84 * 4, 1, 84 * 4, 4)
    assert (obs == obs[:, :1]).all()
    rng = np.random.default_rng(0)
    history = [obs[:, -1].copy() for _ in range(4)]
    restarts = 0
    for _ in range(400):
        obs, _, _, _, info = batch.step(rng.integers(0, batch.num_actions, 3))
        newest = info["newest"]
        assert newest.flags.c_contiguous and np.array_equal(newest, obs[:, -1])
        history.append(newest.copy())
        for j in range(3):
            if info["restart"][j]:
                restarts += 1
                for h in history[-4:-1]:
                    h[j] = newest[j]
            assert np.array_equal(obs[j], np.stack([h[j] for h in history[-4:]]))
    assert restarts >= 3   # lost lives in Breakout restart the training episode's stack
