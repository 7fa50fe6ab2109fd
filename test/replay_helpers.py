"""Shared helpers for replay tests: a tiny Atari-like env with short episodes, and a recorder that keeps
what the env showed the agent for every transition pushed, in insertion (= id) order."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from buffers.writer import StreamWriter
from envs.atari import FrameStack


class NoiseFrames(gym.Env):
    """84x84 frames of mostly-flat noise (each distinct), episodes of 1..12 steps, terminated or truncated."""

    observation_space = gym.spaces.Box(0, 255, (84, 84), dtype=np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = int(self.np_random.integers(1, 13))
        return self._frame(), {}

    def _frame(self):
        f = np.full((84, 84), 40, dtype=np.uint8)
        f[self.np_random.integers(0, 84, 30), self.np_random.integers(0, 84, 30)] = self.np_random.integers(0, 255, 30)
        return f

    def step(self, action):
        self.left -= 1
        end = self.left == 0
        term = end and bool(self.np_random.integers(0, 2))
        return self._frame(), float(self.np_random.normal()), term, end and not term, {}


def noise_env():
    return FrameStack(NoiseFrames())


def fill(env, writer: StreamWriter, replay, steps: int, push_every: int, seed: int, expected: list,
         priorities=None):
    """Step `env` with random actions through `writer` into `replay`; append (obs, next_obs) per transition."""
    shown = {}
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    writer.reset(obs)
    shown[writer.frame_no] = obs
    for t in range(steps):
        a = env.action_space.sample()
        if priorities is not None:
            writer.act(float(priorities.random()), float(priorities.random()))
        obs, r, term, trunc, _ = env.step(a)
        writer.step(a, r, obs, term, trunc)
        shown[writer.frame_no] = obs
        if term or trunc:
            obs, _ = env.reset()
            writer.reset(obs)
            shown[writer.frame_no] = obs
        if (t + 1) % push_every == 0 or t == steps - 1:
            push = writer.take()
            expected += [(shown[o], shown[n]) for o, n in zip(push.obs, push.next_obs)]
            replay.add(push)
