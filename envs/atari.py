"""Atari input as DeepMind preprocesses it (Mnih et al. 2015; Machado et al. 2018 for sticky actions).

Stack, from the ALE outwards: no-op starts, action repeat 4 with a max over the last two frames,
84x84 grayscale, (training only) episodic life and sign reward clipping, frame stack 4.
The raw reward and the end of the real game travel in `info` so that statistics always see whole
games and raw scores, whatever the training wrappers did.
"""
from __future__ import annotations

from collections import deque

import cv2
import gymnasium as gym
import numpy as np

FRAME_SIZE = 84
STACK = 4
NOOP_MAX = 30
ACTION_REPEAT = 4


class NoopReset(gym.Wrapper):
    """On reset, take a random number (0..noop_max - 1) of no-op frames, as ALE's C++ vector env does."""

    def __init__(self, env: gym.Env, noop_max: int = NOOP_MAX):
        super().__init__(env)
        self.noop_max = noop_max
        assert env.unwrapped.get_action_meanings()[0] == "NOOP"

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.np_random.integers(0, self.noop_max))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat the action `skip` times, sum rewards, observe the max of the last two frames (flicker)."""

    def __init__(self, env: gym.Env, skip: int = ACTION_REPEAT):
        super().__init__(env)
        self.skip = skip

    def step(self, action):
        total, last_two = 0.0, deque(maxlen=2)
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            last_two.append(obs)
            total += float(reward)
            if terminated or truncated:
                break
        return np.max(np.stack(last_two), axis=0), total, terminated, truncated, info


class RawReward(gym.Wrapper):
    """Record the unclipped reward and the real end of the game in `info` before any training wrapper."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["raw_reward"] = float(reward)
        info["game_over"] = bool(terminated or truncated)
        return obs, reward, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """A lost life ends the learner's episode (terminated) but not the game; reset then only no-ops."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class ClipReward(gym.RewardWrapper):
    """Sign of the reward: -1, 0 or +1."""

    def reward(self, reward):
        return float(np.sign(reward))


class Resize(gym.ObservationWrapper):
    """Grayscale 210x160 -> 84x84 uint8 by area interpolation."""

    def __init__(self, env: gym.Env, size: int = FRAME_SIZE):
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size), dtype=np.uint8)

    def observation(self, obs):
        return cv2.resize(obs, (self.size, self.size), interpolation=cv2.INTER_AREA)


class FrameStack(gym.Wrapper):
    """Stack the last `k` frames as [k, 84, 84]; at reset the stack is filled with the first frame.

    The replay rebuilds stacks the same way (a frame's predecessor at an episode start is itself),
    so a sampled observation is exactly what this wrapper showed the agent.
    """

    def __init__(self, env: gym.Env, k: int = STACK):
        super().__init__(env)
        self.k = k
        self.frames: deque = deque(maxlen=k)
        shape = (k,) + env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, shape, dtype=np.uint8)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.k):
            self.frames.append(obs)
        return np.stack(self.frames), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(obs)
        return np.stack(self.frames), reward, terminated, truncated, info


def make_atari(game: str, *, train: bool, sticky: bool = False, render_mode: str | None = None,
               max_episode_frames: int = 108_000, noop_max: int = NOOP_MAX) -> gym.Env:
    """The DeepMind Atari pipeline for a short game name such as `Pong`.

    Observations are uint8 [4, 84, 84]. With `train`, a lost life terminates the learner's episode and
    rewards are clipped to their sign; evaluation sees whole games and raw scores. Time limits (ALE's
    108,000 frames, 30 minutes of play) end an episode by truncation.
    """
    env = gym.make(
        f"ALE/{game}-v5",
        obs_type="grayscale",
        frameskip=1,
        repeat_action_probability=0.25 if sticky else 0.0,
        full_action_space=False,
        max_num_frames_per_episode=max_episode_frames,
        render_mode=render_mode,
    )
    if noop_max > 0:
        env = NoopReset(env, noop_max)
    env = MaxAndSkip(env)
    env = RawReward(env)
    if train:
        env = EpisodicLife(env)
        env = ClipReward(env)
    env = Resize(env)
    return FrameStack(env)
