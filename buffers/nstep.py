"""The n-step adder: one env's step stream in, n-step transitions out (Sutton & Barto 7.1).

For every step t it emits (s_t, a_t, R, discount, s_{t+m}) with R = sum_{k<m} gamma^k r_{t+k}:
m = n while the episode goes on, m < n for the last n-1 steps before the episode ends.
Termination bootstraps nothing (discount 0); truncation (a time limit) bootstraps from s_{t+m}
(discount gamma^m). Observations are opaque references (frame numbers), so the adder is pure.
"""
from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple


class NStepTransition(NamedTuple):
    obs: int            # reference to s_t
    action: Any
    ret: float          # sum_{k<m} gamma^k r_{t+k}
    discount: float     # gamma^m, or 0.0 when the episode terminated within the m steps
    next_obs: int       # reference to s_{t+m}
    steps: int          # m
    terminal: bool


def nstep_return(rewards: list[float], gamma: float) -> float:
    """sum_k gamma^k rewards[k]."""
    ret, scale = 0.0, 1.0
    for r in rewards:
        ret += scale * r
        scale *= gamma
    return ret


class NStepAdder:
    def __init__(self, n: int, gamma: float):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n, self.gamma = n, gamma
        self._pending: deque = deque()   # (obs_ref, action, reward), oldest first, at most n
        self._obs: int | None = None

    def reset(self, obs: int) -> None:
        """Start an episode at observation `obs`; pending steps of an unfinished episode are dropped."""
        self._pending.clear()
        self._obs = obs

    def step(self, action: Any, reward: float, next_obs: int, terminated: bool, truncated: bool
             ) -> list[NStepTransition]:
        """Record one step; return the transitions it completes (all pending ones when the episode ends)."""
        if self._obs is None:
            raise RuntimeError("NStepAdder.step before reset")
        self._pending.append((self._obs, action, float(reward)))
        self._obs = next_obs
        if terminated or truncated:
            out = [self._emit(next_obs, terminated) for _ in range(len(self._pending))]
            self._obs = None
            return out
        if len(self._pending) == self.n:
            return [self._emit(next_obs, False)]
        return []

    def _emit(self, next_obs: int, terminated: bool) -> NStepTransition:
        m = len(self._pending)
        obs, action, _ = self._pending[0]
        ret = nstep_return([r for _, _, r in self._pending], self.gamma)
        self._pending.popleft()
        discount = 0.0 if terminated else self.gamma ** m
        return NStepTransition(obs, action, ret, discount, next_obs, m, terminated)
