"""An agent's envs as one batch: `reset()` then `step(actions)` for all of them at once.

Atari games run on ale-py's C++ `AtariVectorEnv` (`AtariBatch`), which does the DeepMind preprocessing of
envs/atari.py in C++ (no-op starts, action repeat 4 with a max over the last two frames, 84x84 grayscale by area
interpolation, the frame limit as truncation, sticky actions); what stays in Python is what the C++ env does
differently from the project's protocol: the 4-frame stack filled with the first frame at an episode start,
life loss ending the training episode without resetting the game, sign clipping beside the raw reward.
Everything else is a list of single gymnasium envs (`EnvList`).

`step` returns obs [E, ...], reward, terminated, truncated (arrays [E]) and info with arrays [E]:
- `raw_reward`, `game_over`: the unclipped reward and the real end of the game, for statistics;
- `restart`: obs[j] is the first observation of env j's next episode, reached without a decision (the C++ env
  spends the step after a game's end on the reset, and a training episode that a lost life ended resumes after
  one NOOP step, as envs/atari.py's EpisodicLife does): no transition, the caller starts a new episode there;
- `idle`: env j did nothing usable this step (the NOOP after a lost life ended the game; a restart follows);
- `newest` (`AtariBatch` only): [E, 84, 84], each env's newest frame (obs[j][-1]) as a contiguous array.
An `EnvList` resets an ended env at once: `reset_one(j)` returns its new first observation. An `AtariBatch`
returns None there, and the restart arrives with the next step.
"""
from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np

from envs.atari import ACTION_REPEAT, FRAME_SIZE, NOOP_MAX, STACK


def ale_rom(game: str) -> str:
    """ALE's ROM id of a short game name (`MsPacman` -> `ms_pacman`), as gymnasium's ALE/<game>-v5 names it."""
    from envs.registry import resolve_env

    resolve_env(game)   # registers the ALE ids
    return gym.spec(f"ALE/{game}-v5").kwargs["game"]


class AtariBatch:
    """E Atari games of one agent, stepped together in C++ on one thread."""

    def __init__(self, game: str, num_envs: int, *, train: bool, seed: int = 0, sticky: bool = False,
                 max_episode_frames: int = 108_000, noop_max: int = NOOP_MAX):
        from ale_py.vector_env import AtariVectorEnv

        self.num_envs, self.train, self.seed = num_envs, train, seed
        self.vec = AtariVectorEnv(
            ale_rom(game), num_envs, num_threads=1, autoreset_mode="NextStep", noop_max=noop_max,
            use_fire_reset=False, reward_clipping=False, episodic_life=False, life_loss_info=False, stack_num=1,
            repeat_action_probability=0.25 if sticky else 0.0, max_num_frames_per_episode=max_episode_frames,
            frameskip=ACTION_REPEAT, maxpool=True, grayscale=True, img_height=FRAME_SIZE, img_width=FRAME_SIZE)
        self.num_actions = int(self.vec.single_action_space.n)
        # the stacks channel-last, [E, 84, 84, 4]: each pixel's 4 frames are one little-endian uint32 (oldest in the
        # low byte), so pushing a frame in is a shift and an or; the agent sees them as [E, 4, 84, 84] with
        # channel-last strides, the layout PyTorch's int8 convolutions take without a conversion (a fifth of an
        # int8 forward pass at batch 32, measured)
        assert STACK == 4 and sys.byteorder == "little", "the uint32 stack needs 4 frames and a little-endian CPU"
        self.stacks = np.zeros((num_envs, FRAME_SIZE, FRAME_SIZE, STACK), np.uint8)
        self._pixels = self.stacks.view(np.uint32)[..., 0]   # [E, 84, 84]
        self._shifted = np.empty((num_envs, FRAME_SIZE, FRAME_SIZE), np.uint32)
        self.lives = np.zeros(num_envs, np.int64)
        self.reset_pending = np.zeros(num_envs, bool)   # the game ended: C++ resets it on the next step
        self.noop_pending = np.zeros(num_envs, bool)    # a life was lost: the next step is the NOOP that resumes
        self._seeded = False

    def reset(self) -> np.ndarray:
        """New games in every env (env j's first is seeded with seed + j; later ones continue its RNG)."""
        frames, info = self.vec.reset(seed=None if self._seeded else self.seed)
        self._seeded = True
        self._pixels[:] = frames[:, 0] * np.uint32(0x01010101)   # the stack starts filled with the first frame
        self.lives[:] = info["lives"]
        self.reset_pending[:] = False
        self.noop_pending[:] = False
        return self._obs()

    def _obs(self) -> np.ndarray:
        """A copy of the stacks as [E, 4, 84, 84] (channel-last strides)."""
        return self.stacks.copy().transpose(0, 3, 1, 2)

    def reset_one(self, j: int) -> None:
        """The game of env j restarts by itself on the next step (see `restart`)."""
        return None

    def step(self, actions):
        a = np.array(actions, dtype=np.int64)
        a[self.noop_pending] = 0
        frames, r, te, tr, info = self.vec.step(a)
        lives = np.asarray(info["lives"], np.int64)
        game_over = te | tr
        was_reset, was_noop = self.reset_pending.copy(), self.noop_pending.copy()
        restart = was_reset | (was_noop & ~game_over)
        idle = was_noop & game_over
        playing = ~(was_reset | was_noop)
        life_lost = playing & ~game_over & (0 < lives) & (lives < self.lives) if self.train else np.zeros_like(te)
        newest = frames[:, 0]
        np.right_shift(self._pixels, 8, out=self._pixels)        # drop the oldest frame
        self._shifted[:] = newest
        np.left_shift(self._shifted, 24, out=self._shifted)
        np.bitwise_or(self._pixels, self._shifted, out=self._pixels)
        self._pixels[restart] = newest[restart] * np.uint32(0x01010101)   # a new episode's stack: its first frame
        self.lives = lives
        self.reset_pending = (playing | was_noop) & game_over
        self.noop_pending = life_lost
        raw = np.where(restart, 0.0, r.astype(np.float64))
        terminated = playing & (te | life_lost)
        truncated = playing & tr & ~te
        reward = np.where(playing, np.sign(raw) if self.train else raw, 0.0)
        info = {"raw_reward": raw, "game_over": (playing | idle) & game_over, "restart": restart, "idle": idle,
                "lives": lives, "newest": newest}
        return self._obs(), reward, terminated, truncated, info

    def close(self) -> None:
        self.vec.close()


class EnvList:
    """E single envs of any kind, stepped one after the other; an ended env is reset by `reset_one`."""

    def __init__(self, envs: list[gym.Env]):
        self.envs = envs
        self.num_envs = len(envs)

    def reset(self) -> list:
        return [env.reset()[0] for env in self.envs]

    def reset_one(self, j: int):
        return self.envs[j].reset()[0]

    def step(self, actions):
        e = self.num_envs
        obs, reward = [None] * e, np.zeros(e)
        term, trunc, raw, over = np.zeros(e, bool), np.zeros(e, bool), np.zeros(e), np.zeros(e, bool)
        for j, (env, a) in enumerate(zip(self.envs, actions)):
            obs[j], reward[j], term[j], trunc[j], info = env.step(a)
            raw[j] = info.get("raw_reward", reward[j])
            over[j] = info.get("game_over", term[j] or trunc[j])
        none = np.zeros(e, bool)
        return obs, reward, term, trunc, {"raw_reward": raw, "game_over": over, "restart": none, "idle": none}

    def render(self):
        return self.envs[0].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_env_batch(name: str, num_envs: int, *, train: bool, seed: int, sticky: bool = False,
                   render_mode: str | None = None):
    """One agent's `num_envs` envs: Atari games on the C++ vector env (unless rendering, which only the
    gymnasium pipeline can: its frames are the same, see test/test_atari_batch.py), anything else as a list."""
    from envs.registry import make_env, resolve_env

    kind, game = resolve_env(name)
    if kind == "atari" and render_mode is None:
        return AtariBatch(game, num_envs, train=train, seed=seed, sticky=sticky)
    return EnvList([make_env(name, train=train, seed=seed + j, sticky=sticky, render_mode=render_mode)
                    for j in range(num_envs)])
