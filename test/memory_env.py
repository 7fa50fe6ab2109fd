"""CueMemory-v0: a tiny task that needs memory, for recurrent agents (R2D2).

An episode has `length` steps (default 8). Observations are float32 [3]: (cue_0, cue_1, answer_now).
o_0 shows the cue as a one-hot in the first two entries, drawn uniformly from {0, 1}; it is never shown
again. o_{length-1} sets answer_now = 1; every other observation is all zeros. There are 2 actions.
The action taken at the last step earns +1 if it equals the cue and -1 otherwise; every other step
earns 0; the episode terminates after the last step. Without memory the answer is a coin flip (expected
return 0); with memory the return is 1. Importing this module registers the id, so the program's env
resolver accepts `test.memory_env:CueMemory-v0`.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class CueMemory(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, length: int = 8, render_mode: str | None = None):
        if length < 2:
            raise ValueError("CueMemory needs length >= 2 (the cue and the answer on different steps)")
        self.length, self.render_mode = int(length), render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.cue, self.t = 0, 0

    def _obs(self) -> np.ndarray:
        o = np.zeros(3, dtype=np.float32)
        if self.t == 0:
            o[self.cue] = 1.0
        if self.t == self.length - 1:
            o[2] = 1.0
        return o

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self._obs(), {"cue": self.cue}

    def step(self, action):
        last = self.t == self.length - 1
        reward = (1.0 if int(action) == self.cue else -1.0) if last else 0.0
        self.t += 1
        obs = np.zeros(3, dtype=np.float32) if last else self._obs()
        return obs, reward, last, False, {"cue": self.cue}


if "CueMemory-v0" not in gym.registry:
    gym.register(id="CueMemory-v0", entry_point="test.memory_env:CueMemory")
