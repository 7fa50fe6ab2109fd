"""PlainCounter-v0: a third-party style env whose constructor takes no arguments at all (no render_mode),
as many older or hand-written envs do. Importing this module registers the id, so the program accepts
`test.plain_env:PlainCounter-v0`."""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class PlainCounter(gym.Env):
    observation_space = gym.spaces.Box(0.0, 10.0, (1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):   # deliberately no render_mode or **kwargs
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), float(action), self.t >= 10, False, {}


if "PlainCounter-v0" not in gym.registry:
    gym.register("PlainCounter-v0", entry_point=PlainCounter)
