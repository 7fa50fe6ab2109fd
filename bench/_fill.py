"""Shared by the replay benchmarks: random-policy pushes from a game through the project's own wrappers."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from buffers import StreamWriter  # noqa: E402
from envs import make_env  # noqa: E402


class FlatObs(gym.ObservationWrapper):
    """Any observation as a flat float32 vector: what the replay's vector path stores."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        size = int(np.prod(env.observation_space.shape))
        self.observation_space = gym.spaces.Box(0, 255, (size,), dtype=np.float32)

    def observation(self, obs):
        return np.asarray(obs, dtype=np.float32).ravel()


def random_pushes(game: str, transitions: int, seed: int = 0, stream: int = 0, push_every: int = 100,
                  nstep: int = 3, image: bool = True):
    """Yield Push records holding `transitions` n-step transitions of random play on `game`; `image=False`
    stores the observations through the replay's vector path (flattened float32 rows)."""
    env = make_env(game, train=True, seed=seed)
    if not image:
        env = FlatObs(env)
    writer = StreamWriter(stream, nstep, 0.99, image=image, priorities=True)
    obs, _ = env.reset()
    writer.reset(obs)
    made = 0
    rng = env.action_space
    while made < transitions:
        a = rng.sample()
        writer.act(0.0, 0.0)
        obs, r, term, trunc, _ = env.step(a)
        writer.step(a, r, obs, term, trunc)
        if term or trunc:
            obs, _ = env.reset()
            writer.reset(obs)
        if writer.pending() >= push_every:
            push = writer.take()
            made += len(push)
            yield push
    env.close()
