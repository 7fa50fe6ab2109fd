"""MinAtar (Young and Tian 2019): five Atari-like games on 10x10 boolean images, learnable on a CPU.

The MinAtar package (`pip install -e ".[minatar]"`) registers `MinAtar/<Game>-v0` (all 6 actions) and
`MinAtar/<Game>-v1` (each game's minimal action set) with gymnasium. Its observations are channel-last
bool [10, 10, C] (one channel per kind of object); the program sees each as uint8 [1, C, 10, 10]: a stack
of one C x 10 x 10 frame. So the replay stores it through its image path (each frame once, lz4 against
its episode predecessor, as Atari frames), and the networks take it as they take an Atari stack
[4, 84, 84]. The games keep the package's own settings, those of the paper: sticky actions with
probability 0.1 and difficulty ramping. MinAtar has no time limit; episodes are cut (truncated, not
ended) at MAX_EPISODE_STEPS agent steps so that an evaluation of an agent that never loses still ends.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

MAX_EPISODE_STEPS = 10_000
INSTALL = 'pip install -e ".[minatar]"'
RENDER_SCALE = 16   # px per cell: 160 x 160 frames for --record


class MinAtarNotInstalled(ImportError):
    """The minatar package is missing."""


def register() -> None:
    """Register the MinAtar ids with gymnasium (once); MinAtarNotInstalled without the package."""
    if "MinAtar/Breakout-v1" in gym.registry:
        return
    try:
        import minatar.gym
    except ImportError as e:
        raise MinAtarNotInstalled(f"MinAtar games need the MinAtar package ({e}): {INSTALL}") from None
    minatar.gym.register_envs()


def palette(channels: int) -> np.ndarray:
    """uint8 [channels + 1, 3]: black background, then one distinct colour per channel."""
    hues = np.arange(channels) / max(channels, 1)
    rgb = np.stack([0.5 + 0.5 * np.cos(2 * np.pi * (hues + k / 3)) for k in range(3)], axis=1)
    return np.concatenate([np.zeros((1, 3)), 40 + 215 * rgb]).astype(np.uint8)


class MinAtarFrames(gym.ObservationWrapper):
    """bool [10, 10, C] channel-last -> uint8 [1, C, 10, 10]; rgb_array renders the observation itself
    (one colour per channel, the last channel on top), so recording needs no plotting package."""

    def __init__(self, env: gym.Env, render_mode: str | None = None):
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 1, (1, c, h, w), dtype=np.uint8)
        self._render_mode, self._colours, self._last = render_mode, palette(c), None

    @property
    def render_mode(self):
        return self._render_mode

    def observation(self, obs: np.ndarray) -> np.ndarray:
        self._last = obs
        return np.ascontiguousarray(np.transpose(obs, (2, 0, 1)), dtype=np.uint8)[None]

    def render(self):
        if self._render_mode != "rgb_array" or self._last is None:
            return None
        c = self._last.shape[-1]
        top = np.where(self._last.any(-1), c - np.argmax(self._last[..., ::-1], axis=-1), 0)   # 0: empty
        img = self._colours[top]
        return np.repeat(np.repeat(img, RENDER_SCALE, axis=0), RENDER_SCALE, axis=1)


def make_minatar(ident: str, render_mode: str | None = None) -> gym.Env:
    register()
    env = gym.make(ident, max_episode_steps=MAX_EPISODE_STEPS)
    return MinAtarFrames(env, render_mode=render_mode)
