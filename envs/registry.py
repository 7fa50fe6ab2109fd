"""Resolve a user's env name and make the env.

`Pong`, `Asterix`, `WizardOfWor`, ... (short ALE names) -> the DeepMind Atari pipeline of envs/atari.py.
`MinAtar/Breakout-v1`, ... (with the minatar extra) -> envs/minatar.py: uint8 [1, C, 10, 10] frames.
`CartPole-v1`, `ALE/Pong-v5`, `module:EnvName-v0` -> gymnasium.make as is.
Anything else -> UnknownEnvError naming the closest valid names.
"""
from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np


class UnknownEnvError(ValueError):
    """The env name is neither a short Atari name nor a gymnasium id."""


@functools.lru_cache(maxsize=1)
def _atari_games() -> tuple[str, ...]:
    import ale_py

    gym.register_envs(ale_py)
    return tuple(sorted(k[4:-3] for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5")))


def resolve_env(name: str) -> tuple[str, str]:
    """Return ("atari", game), ("minatar", id) or ("gym", id); raise UnknownEnvError with the closest names."""
    games = _atari_games()  # also registers the ALE ids with gymnasium
    if name in games:
        return "atari", name
    if name.lower().startswith("minatar/"):
        from envs.minatar import MinAtarNotInstalled, register

        try:
            register()
        except MinAtarNotInstalled as e:
            raise UnknownEnvError(f"environment {name!r}: {e}") from None
        if name in gym.registry:
            return "minatar", name
    if ":" in name:  # `module:EnvName-v0`: importing the module registers the id
        module, _, ident = name.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UnknownEnvError(f"unknown environment {name!r}: cannot import module {module!r} ({e})") from None
        if ident not in gym.registry:
            close = difflib.get_close_matches(ident, list(gym.registry), n=3, cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise UnknownEnvError(f"unknown environment {name!r}: module {module!r} registers no {ident!r}{hint}")
        return "gym", name
    if name in gym.registry:
        return "gym", name
    candidates = list(games) + list(gym.registry)
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    if not close:  # case slips: 'pong' -> 'Pong'
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)]
    hint = f"; closest: {', '.join(close)}" if close else "; try an Atari game such as Pong or a gymnasium id such as CartPole-v1"
    raise UnknownEnvError(f"unknown environment {name!r}{hint}")


def env_family(name: str) -> str | None:
    """The preset family of the env `name`: atari, minatar, classic (gymnasium's classic control with discrete
    actions), continuous (any env with continuous actions), or None."""
    kind, ident = resolve_env(name)
    if kind in ("atari", "minatar"):
        return kind
    ident = ident.partition(":")[2] or ident
    entry = gym.spec(ident).entry_point
    entry = entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"
    if entry.startswith("ale_py"):
        return "atari"
    try:
        discrete = env_info(name).discrete
    except gym.error.DependencyNotInstalled as e:   # e.g. a MuJoCo task without the mujoco extra
        raise UnknownEnvError(f"environment {name!r} cannot be made: {str(e).strip()}") from None
    if not discrete:
        return "continuous"
    return "classic" if entry.startswith("gymnasium.envs.classic_control") else None


def make_env(name: str, *, train: bool = True, seed: int | None = None, sticky: bool = False,
             render_mode: str | None = None) -> gym.Env:
    """Make the env a user named. `train` adds episodic life and reward clipping on Atari only."""
    kind, ident = resolve_env(name)
    if kind == "atari":
        from envs.atari import make_atari

        env = make_atari(ident, train=train, sticky=sticky, render_mode=render_mode)
    elif kind == "minatar":   # sticky actions (p = 0.1) are always on, as in the paper
        from envs.minatar import make_minatar

        env = make_minatar(ident, render_mode=render_mode)
    else:
        # only when rendering: a third-party env whose constructor takes no render_mode must still build
        env = gym.make(ident, render_mode=render_mode) if render_mode is not None else gym.make(ident)
        if isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.dtype != np.float32:
            env = gym.wrappers.TransformObservation(
                env, lambda o: np.asarray(o, dtype=np.float32),
                gym.spaces.Box(env.observation_space.low.astype(np.float32),
                               env.observation_space.high.astype(np.float32), dtype=np.float32))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


@dataclass(frozen=True)
class EnvInfo:
    """What the rest of the program needs to know about an env before it makes networks and buffers."""
    name: str
    atari: bool
    obs_shape: tuple[int, ...]
    obs_dtype: str
    discrete: bool
    num_actions: int            # discrete: number of actions; continuous: action dimension
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()

    @property
    def image(self) -> bool:
        """Image observations: a stack [S, *frame] (Atari [4, 84, 84], MinAtar [1, C, 10, 10]) whose newest
        frame the replay stores once, compressed; anything else is a vector."""
        return len(self.obs_shape) >= 3


def env_info(name: str) -> EnvInfo:
    """Shapes and action space of the env `name`, made once and closed."""
    kind, _ = resolve_env(name)
    env = make_env(name, train=True)
    try:
        space = env.action_space
        discrete = isinstance(space, gym.spaces.Discrete)
        obs_space = env.observation_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise UnknownEnvError(f"environment {name!r} has a {type(obs_space).__name__} observation space; "
                                  "only Box observations (vectors or Atari frames) are supported")
        return EnvInfo(
            name=name, atari=kind == "atari", obs_shape=tuple(obs_space.shape), obs_dtype=str(obs_space.dtype),
            discrete=discrete, num_actions=int(space.n) if discrete else int(np.prod(space.shape)),
            action_low=() if discrete else tuple(float(x) for x in np.ravel(space.low)),
            action_high=() if discrete else tuple(float(x) for x in np.ravel(space.high)),
        )
    finally:
        env.close()
