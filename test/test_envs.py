import numpy as np
import pytest

from envs import UnknownEnvError, env_info, make_env, resolve_env


def test_unknown_env_names_the_closest_valid_names():
    with pytest.raises(UnknownEnvError) as e:
        resolve_env("Pongg")
    msg = str(e.value)
    assert "Pong" in msg and "\n" not in msg
    with pytest.raises(UnknownEnvError, match="CartPole-v1"):
        resolve_env("CartPole-v9")
    with pytest.raises(UnknownEnvError, match="cannot import module"):
        resolve_env("no_such_module:Foo-v0")


def test_names_resolve_to_atari_pipeline_or_gymnasium():
    assert resolve_env("Pong") == ("atari", "Pong")
    assert resolve_env("WizardOfWor") == ("atari", "WizardOfWor")
    assert resolve_env("CartPole-v1") == ("gym", "CartPole-v1")
    assert resolve_env("ALE/Pong-v5") == ("gym", "ALE/Pong-v5")
    assert resolve_env("gymnasium.envs.classic_control.cartpole:CartPole-v1")[0] == "gym"
    info = env_info("Pendulum-v1")
    assert not info.discrete and info.obs_shape == (3,) and info.action_low == (-2.0,)
    env = make_env("gymnasium.envs.classic_control.cartpole:CartPole-v1", seed=0)
    assert env.reset()[0].dtype == np.float32


def test_atari_observations_and_training_wrappers():
    info = env_info("Asterix")
    assert info.atari and info.obs_shape == (4, 84, 84) and info.obs_dtype == "uint8" and info.discrete
    env = make_env("Breakout", train=True, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert all(np.array_equal(obs[0], obs[i]) for i in range(4))   # reset fills the stack with one frame
    lives_lost = raw_total = 0
    for _ in range(2000):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert r in (-1.0, 0.0, 1.0)
        raw_total += info["raw_reward"]
        if term or trunc:
            if info["game_over"]:
                break
            lives_lost += 1      # a lost life ends the learner's episode, the game goes on
            obs, _ = env.reset()
            assert all(np.array_equal(obs[0], obs[i]) for i in range(4))
    assert lives_lost >= 1 and info["game_over"]


def test_evaluation_sees_whole_games_and_raw_scores():
    env = make_env("Breakout", train=False, seed=1)
    env.reset()
    steps = 0
    while True:
        _, r, term, trunc, info = env.step(env.action_space.sample())
        steps += 1
        assert r == info["raw_reward"]
        if term or trunc:
            break
    assert info["game_over"] and env.unwrapped.ale.lives() == 0   # only the end of the game ends it


def test_sticky_actions_setting():
    assert make_env("Pong").unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    assert make_env("Pong", sticky=True).unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)


def test_noop_starts_vary_the_first_observation():
    firsts = {make_env("Pong", train=False, seed=s).reset()[0].tobytes() for s in range(6)}
    assert len(firsts) > 1


def test_time_limit_is_truncation_not_termination():
    from envs.atari import make_atari
    env = make_atari("Pong", train=True, max_episode_frames=400)
    env.reset(seed=0)
    for _ in range(200):
        _, _, term, trunc, info = env.step(0)
        if term or trunc:
            break
    assert trunc and not term and info["game_over"]


def test_an_env_whose_constructor_takes_no_render_mode_builds():
    """Regression: render_mode=None was passed to every gymnasium env, and a constructor without that
    argument raised TypeError. It is passed only when rendering."""
    name = "test.plain_env:PlainCounter-v0"
    info = env_info(name)
    assert info.discrete and info.obs_shape == (1,)
    env = make_env(name, seed=0)
    assert env.step(1)[0].tolist() == [1.0]
