"""Agent side of the replay: one StreamWriter per env stream numbers its frames, compresses them where
they are produced, runs the n-step adder and hands out Push records for the replay actor. The frame
part (FrameWriter) is shared with the sequence writer of buffers/sequence.py.

With `priorities`, each transition's initial priority is |R + discount * V(s_{t+m}) - Q(s_t, a_t)|
from the agent's own estimates: the agent reports Q(s_t, a_t) and V(s_t) as it acts (`act`), and a
transition waits in the writer until the value of its s_{t+m} is known (or its discount is 0).
"""
from __future__ import annotations

import numpy as np

from buffers.frames import COMPRESSION_LEVEL, KEYFRAME_INTERVAL, FrameEncoder
from buffers.nstep import NStepAdder, NStepTransition
from buffers.records import Push


def td_priority(q_taken: np.ndarray, ret: np.ndarray, discount: np.ndarray, next_value: np.ndarray) -> np.ndarray:
    """|R + discount * V(s_{t+m}) - Q(s_t, a_t)|, the n-step TD error's magnitude."""
    return np.abs(ret + discount * next_value - q_taken)


class FrameWriter:
    """One env stream's frames on the agent side: numbered from 0, compressed against their episode
    predecessor (images) or kept as float32 rows (vectors), handed out once each by `_take_frames`."""

    def __init__(self, stream: int, image: bool, keyframe_interval: int = KEYFRAME_INTERVAL,
                 level: int = COMPRESSION_LEVEL, generation: int = 0):
        self.stream, self.image, self.generation = stream, image, generation
        self.encoder = FrameEncoder(keyframe_interval, level) if image else None
        self.frame_no = -1                 # number of the latest frame
        self._base = 0                     # number of the first frame not yet pushed
        self._frames, self._first, self._depth = [], [], []
        self._shape: tuple = ()

    def _add_frame(self, obs: np.ndarray, first: bool, newest: np.ndarray | None = None) -> int:
        """`newest`: obs[-1] as a contiguous array, where the caller has one (a channel-last stack's obs[-1] is
        strided, and gathering it costs several times the copy)."""
        self.frame_no += 1
        self._shape = tuple(np.shape(obs))
        if self.image:   # only the newest frame of the stack is new
            blob, depth = self.encoder.encode(obs[-1] if newest is None else newest, first)
            self._frames.append(blob)
            self._depth.append(depth)
        else:
            self._frames.append(np.asarray(obs, dtype=np.float32))
            self._depth.append(0)
        self._first.append(first)
        return self.frame_no

    def _take_frames(self) -> dict:
        """The frame fields of a push (stream, generation, frame_base, frames, first, depth) for the frames added
        since the last call; the next call starts after them."""
        if self.image:
            frames = self._frames
        elif self._frames:
            frames = np.stack(self._frames)
        else:
            frames = np.zeros((0,) + self._shape, np.float32)
        out = {"stream": self.stream, "generation": self.generation, "frame_base": self._base, "frames": frames,
               "first": np.array(self._first, dtype=bool), "depth": np.array(self._depth, dtype=np.uint8)}
        self._base = self.frame_no + 1
        self._frames, self._first, self._depth = [], [], []
        return out


class StreamWriter(FrameWriter):
    """One env stream's n-step transitions and their frames."""

    def __init__(self, stream: int, nstep: int, gamma: float, image: bool, priorities: bool = False,
                 keyframe_interval: int = KEYFRAME_INTERVAL, level: int = COMPRESSION_LEVEL, generation: int = 0,
                 priority_fn=None):
        super().__init__(stream, image, keyframe_interval, level, generation)
        self.priorities = priorities
        # (estimate at s_t, R, discount, estimate at s_{t+m} or None when discount is 0) -> priority; the
        # estimates are what the agent reports by `act`/`value`: Q(s_t, a_t) and V (td_priority), or for a
        # distributional agent the logits of the action taken and of the greedy action
        self.priority_fn = priority_fn or (lambda q, ret, d, v: td_priority(q, ret, d, 0.0 if v is None else v))
        self.adder = NStepAdder(nstep, gamma)
        self._ready: list[tuple[NStepTransition, float]] = []
        self._waiting: list[NStepTransition] = []
        self._q: dict = {}     # frame number -> Q(s, a) of the action taken there (or its logits)
        self._v: dict = {}     # frame number -> V(s) (or the greedy action's logits)

    def reset(self, obs: np.ndarray) -> None:
        """An episode starts with observation `obs`."""
        self._resolve_waiting(final=True)
        self.adder.reset(self._add_frame(obs, first=True))

    def act(self, q_taken, value) -> None:
        """The agent's estimates at the latest frame: Q of the action it took, and V (max_a Q)."""
        self._q[self.frame_no] = q_taken
        self._v[self.frame_no] = value

    def value(self, value) -> None:
        """V of the latest frame when no action is taken there (a truncated episode's last observation)."""
        self._v[self.frame_no] = value

    def step(self, action, reward: float, next_obs: np.ndarray, terminated: bool, truncated: bool,
             newest: np.ndarray | None = None) -> None:
        ref = self._add_frame(next_obs, first=False, newest=newest)
        for tr in self.adder.step(action, reward, ref, terminated, truncated):
            if self.priorities:
                self._waiting.append(tr)
            else:
                self._ready.append((tr, np.nan))
        self._resolve_waiting(final=False)

    def _resolve_waiting(self, final: bool) -> None:
        """Move transitions whose priority can now be computed (or, at `final`, all) to the ready list."""
        still = []
        for tr in self._waiting:
            if tr.discount == 0.0 or tr.next_obs in self._v:
                q = self._q.get(tr.obs)
                p = np.nan if q is None else float(self.priority_fn(q, tr.ret, tr.discount, self._v.get(tr.next_obs)))
                self._ready.append((tr, p))
            elif final:
                self._ready.append((tr, np.nan))    # never valued: the replay uses its running maximum
            else:
                still.append(tr)
        self._waiting = still
        horizon = self.frame_no - self.adder.n - 1
        for d in (self._q, self._v):   # keys are frame numbers, inserted in increasing order: drop the oldest
            while d:
                f = next(iter(d))
                if f >= horizon:
                    break
                del d[f]

    def pending(self) -> int:
        return len(self._ready)

    def take(self) -> Push | None:
        """Everything new since the last take, or None if there is nothing."""
        if not self._frames and not self._ready:
            return None
        trs = [t for t, _ in self._ready]
        prio = np.array([p for _, p in self._ready], dtype=np.float32)
        push = Push(
            **self._take_frames(),
            obs=np.array([t.obs for t in trs], dtype=np.int64),
            next_obs=np.array([t.next_obs for t in trs], dtype=np.int64),
            action=np.array([t.action for t in trs]),
            ret=np.array([t.ret for t in trs], dtype=np.float32),
            discount=np.array([t.discount for t in trs], dtype=np.float32),
            priority=prio if self.priorities else None,
        )
        self._ready = []
        return push
