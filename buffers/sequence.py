"""Sequence replay for recurrent agents (R2D2, Kapturowski et al. 2019), on the same frame store as the
transition replay: every frame is stored once and overlapping sequences share it by reference.

Agent side, SequenceWriter: one per env stream. Sequences start at episode steps 0, P, 2P, ... with
period P = seq_len - overlap; a sequence closes after seq_len steps or at the episode's end (then it is
padded, see buffers/records.py). A sequence whose steps all lie inside the previous sequence of its
episode (an episode's tail of at most `overlap` steps) is not emitted. With a `priority_fn`, a closed
sequence waits in the writer until the agent's Q values of all its observations are known.

Replay side, SequenceReplay / PrioritizedSequenceReplay: a RingReplay (buffers/replay.py) of sequences;
each holds the stacks of its L+1 observations (padding repeats o_length) in the FrameStore. Loader side,
decode_sequences: each needed frame decoded once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from buffers.frames import COMPRESSION_LEVEL, KEYFRAME_INTERVAL, FrameDecoder
from buffers.records import SampledSequences, SequenceBatch, SequencePush
from buffers.replay import Prioritized, RingReplay, pick_replay
from buffers.writer import FrameWriter

PriorityFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]


def mixed_td_priority(q: np.ndarray, action: np.ndarray, reward: np.ndarray, discount: np.ndarray,
                      eta: float = 0.9) -> float:
    """R2D2's eta * max|d| + (1 - eta) * mean|d| over the 1-step TD errors
    d_t = r_t + discount_t * max_a q[t+1] - q[t, a_t] of a sequence (q [length+1, A])."""
    d = np.abs(reward + discount * q[1:].max(axis=1) - q[np.arange(len(action)), action])
    return float(eta * d.max() + (1 - eta) * d.mean())


@dataclass(eq=False)
class _Sequence:
    start: int                   # frame number of o_0
    state: np.ndarray            # [2, H]
    prev_action: int
    prev_reward: float
    length: int = 0
    terminal: bool = False
    action: np.ndarray | None = None     # [L] padded, set when the sequence closes
    reward: np.ndarray | None = None
    discount: np.ndarray | None = None
    priority: float = np.nan


class SequenceWriter(FrameWriter):
    """One env stream's sequences and their frames. Per step the agent calls act (state, Q), step, then
    value at a truncated episode's last observation, and take whenever it wants to push."""

    def __init__(self, stream: int, seq_len: int, overlap: int, gamma: float, image: bool, state_size: int,
                 priority_fn: PriorityFn | None = None, keyframe_interval: int = KEYFRAME_INTERVAL,
                 level: int = COMPRESSION_LEVEL, generation: int = 0):
        if seq_len < 1 or not 0 <= overlap < seq_len:
            raise ValueError("need seq_len >= 1 and 0 <= overlap < seq_len")
        super().__init__(stream, image, keyframe_interval, level, generation)
        self.seq_len, self.overlap, self.period = seq_len, overlap, seq_len - overlap
        self.gamma, self.state_size, self.priority_fn = gamma, state_size, priority_fn
        self._episode: int | None = None   # frame number of the running episode's first observation
        self._state: dict[int, np.ndarray] = {}             # frame -> state given to act() there
        self._q: dict[int, np.ndarray | None] = {}          # frame -> Q values there (None: not given)
        self._step: dict[int, tuple[int, float, float]] = {}  # frame -> (action, reward, discount) taken there
        self._low = 0                      # the dicts hold no frame below this
        self._open: list[_Sequence] = []
        self._waiting: list[_Sequence] = []   # closed, waiting for Q values
        self._ready: list[_Sequence] = []

    def reset(self, obs: np.ndarray) -> None:
        """An episode starts with observation `obs` (an unfinished episode's sequences close as truncated)."""
        if self._open:
            self._close(self._open, self.frame_no, terminal=False)
            self._open = []
        self._resolve(final=True)
        self._episode = self._add_frame(obs, first=True)

    def act(self, state: np.ndarray, q: np.ndarray | None = None) -> None:
        """The agent's recurrent state before it saw the latest observation, and its Q values there."""
        if self._episode is None:
            raise RuntimeError("SequenceWriter.act before reset")
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (2, self.state_size):
            raise ValueError(f"state has shape {state.shape}, expected (2, {self.state_size})")
        self._state[self.frame_no] = state.copy()
        if self.priority_fn is not None:
            self._q[self.frame_no] = None if q is None else np.array(q, dtype=np.float32)
            self._resolve(final=False)

    def value(self, q: np.ndarray) -> None:
        """Q values at the latest observation when no action is taken there (a truncated episode's last)."""
        if self.priority_fn is not None:
            self._q[self.frame_no] = np.array(q, dtype=np.float32)
            self._resolve(final=False)

    def step(self, action: int, reward: float, next_obs: np.ndarray, terminated: bool, truncated: bool,
             newest: np.ndarray | None = None) -> None:
        f = self.frame_no
        if self._episode is None or f not in self._state:
            raise RuntimeError("SequenceWriter.step needs reset and act first")
        if (f - self._episode) % self.period == 0:
            before = self._step.get(f - 1, (-1, 0.0, 0.0)) if f > self._episode else (-1, 0.0, 0.0)
            self._open.append(_Sequence(f, self._state[f], int(before[0]), before[1]))
        self._step[f] = (int(action), float(reward), 0.0 if terminated else self.gamma)
        g = self._add_frame(next_obs, first=False, newest=newest)
        end = terminated or truncated
        done = [end or g - s.start == self.seq_len for s in self._open]
        if any(done):
            self._close([s for s, d in zip(self._open, done) if d], g, terminated)
            self._open = [s for s, d in zip(self._open, done) if not d]
        if end:
            self._episode = None
        self._resolve(final=False)
        self._prune()

    def _close(self, seqs: list[_Sequence], last: int, terminal: bool) -> None:
        """Close sequences whose last observation is frame `last`; drop those inside their predecessor."""
        L = self.seq_len
        for s in seqs:
            n = last - s.start
            if n <= self.overlap and s.start != self._episode:
                continue   # no step outside the previous sequence of the episode
            steps = [self._step[s.start + t] for t in range(n)]
            s.length, s.terminal = n, terminal
            s.action = np.zeros(L, np.int64)
            s.reward, s.discount = np.zeros(L, np.float32), np.zeros(L, np.float32)
            s.action[:n], s.reward[:n], s.discount[:n] = zip(*steps)
            (self._waiting if self.priority_fn is not None else self._ready).append(s)

    def _resolve(self, final: bool) -> None:
        """Compute the priorities of waiting sequences whose Q values are known (at `final`, of all:
        a missing Q gives NaN, the replay's running maximum)."""
        still = []
        for s in self._waiting:
            last = s.start + s.length
            if not (s.terminal or last in self._q or final):
                still.append(s)
                continue
            qs = [self._q.get(f) for f in range(s.start, last)]
            if all(q is not None for q in qs):
                q_last = np.zeros_like(qs[0]) if s.terminal else self._q.get(last)
                if q_last is not None:
                    n = s.length
                    s.priority = float(self.priority_fn(np.stack(qs + [q_last]), s.action[:n], s.reward[:n],
                                                        s.discount[:n]))
            self._ready.append(s)
        self._waiting = still

    def _prune(self) -> None:
        horizon = min([s.start for s in self._open + self._waiting] + [self.frame_no]) - 1
        for f in range(self._low, horizon):
            for d in (self._state, self._q, self._step):
                d.pop(f, None)
        self._low = max(self._low, horizon)

    def pending(self) -> int:
        return len(self._ready)

    def take(self) -> SequencePush | None:
        """Everything new since the last take (frames and ready sequences), or None if there is nothing."""
        if not self._frames and not self._ready:
            return None
        seqs, L = self._ready, self.seq_len
        self._ready = []

        def rows(name, dtype, shape=(L,)):
            return np.array([getattr(s, name) for s in seqs], dtype=dtype).reshape((len(seqs),) + shape)

        return SequencePush(
            **self._take_frames(),
            start=rows("start", np.int64, ()), length=rows("length", np.int64, ()),
            action=rows("action", np.int64), reward=rows("reward", np.float32),
            discount=rows("discount", np.float32), state=rows("state", np.float32, (2, self.state_size)),
            prev_action=rows("prev_action", np.int64, ()), prev_reward=rows("prev_reward", np.float32, ()),
            priority=rows("priority", np.float32, ()) if self.priority_fn is not None else None)


class SequenceReplay(RingReplay):
    """Uniform replay of sequences; `capacity` counts sequences.

    `window` (stream frames kept referenced for records still to come) defaults to seq_len + 8: a
    sequence may reach the replay one step after its o_L (it waits for o_L's Q value), so with a push
    after every step the push starts at frame start + L + 1 while o_0's stack reaches back stack - 1
    frames before start: the window needs L + stack frames (L + 4 on Atari); 8 leaves slack.
    A push that reaches further back is refused (ValueError), never read from freed frames.
    """

    fields = ("obs_slot", "length", "action", "reward", "discount", "state", "prev_action", "prev_reward")
    slot_fields = ("obs_slot",)

    def __init__(self, capacity: int, obs_shape: tuple, seq_len: int, state_size: int, seed: int = 0,
                 window: int | None = None, frame_slots: int = 1024):
        super().__init__(capacity, obs_shape, seed, window or seq_len + 8, frame_slots)
        self.seq_len, self.state_size = seq_len, state_size
        L = seq_len
        self.obs_slot = np.zeros((capacity, L + 1), dtype=np.int32)   # newest-frame slot of o_0..o_L
        self.length = np.zeros(capacity, dtype=np.int64)
        self.action = np.zeros((capacity, L), dtype=np.int64)
        self.reward = np.zeros((capacity, L), dtype=np.float32)
        self.discount = np.zeros((capacity, L), dtype=np.float32)
        self.state = np.zeros((capacity, 2, state_size), dtype=np.float32)
        self.prev_action = np.zeros(capacity, dtype=np.int64)
        self.prev_reward = np.zeros(capacity, dtype=np.float32)

    def _config(self) -> dict:
        return {**super()._config(), "seq_len": np.int64(self.seq_len), "state_size": np.int64(self.state_size)}

    def add(self, pushes: SequencePush | list[SequencePush]) -> int:
        """Store the pushes' frames and sequences; return how many sequences were added."""
        pushes = [pushes] if isinstance(pushes, SequencePush) else pushes
        added, L = 0, self.seq_len
        with self.one_priority_write():
            for push in pushes:
                length = np.asarray(push.length, dtype=np.int64)
                if len(push) and (np.shape(push.action)[1:] != (L,) or length.min() < 1 or length.max() > L):
                    raise ValueError(f"sequences must have {L} steps and lengths within 1..{L}")
                numbers = np.asarray(push.start, np.int64)[:, None] + np.minimum(np.arange(L + 1), length[:, None])
                (slots,) = self.frames.add_frames(push, numbers)
                values = {"obs_slot": slots, "length": length, "prev_action": push.prev_action,
                          "prev_reward": push.prev_reward, "state": push.state}
                values.update({f: getattr(push, f) for f in ("action", "reward", "discount")})
                added += self._insert(values, push.priority)
        return added

    def sample(self, batch_size: int) -> SampledSequences:
        """`batch_size` sequences; image frames stay compressed for a loader to decode."""
        slots, weights = self._sample(batch_size)
        g = self.frames.gather_stacks(self.obs_slot[slots])
        if "index" in g:
            g["obs_index"] = g.pop("index")
        return SampledSequences(ids=self.tid[slots], weights=weights, length=self.length[slots],
                                action=self.action[slots], reward=self.reward[slots], discount=self.discount[slots],
                                state=self.state[slots], prev_action=self.prev_action[slots],
                                prev_reward=self.prev_reward[slots], **self._drawn(), **g)


class PrioritizedSequenceReplay(Prioritized, SequenceReplay):
    """Prioritized sequence replay (R2D2 defaults alpha 0.9, beta0 0.6), see replay.Prioritized."""

    def __init__(self, capacity: int, obs_shape: tuple, seq_len: int, state_size: int, seed: int = 0,
                 window: int | None = None, alpha: float = 0.9, beta0: float = 0.6, beta_steps: int = 100_000,
                 eps: float = 1e-6, frame_slots: int = 1024):
        SequenceReplay.__init__(self, capacity, obs_shape, seq_len, state_size, seed, window, frame_slots)
        self._init_priorities(alpha, beta0, beta_steps, eps)


def make_sequence_replay(kind: str, capacity: int, obs_shape: tuple, seq_len: int, state_size: int,
                         **kwargs) -> SequenceReplay:
    """`mmdb` -> SequenceReplay, `pmdb` -> PrioritizedSequenceReplay."""
    cls = pick_replay(kind, SequenceReplay, PrioritizedSequenceReplay, kwargs)
    return cls(capacity, obs_shape, seq_len, state_size, **kwargs)


def decode_sequences(ss: SampledSequences, decoder: FrameDecoder | None = None) -> SequenceBatch:
    """Decompress each needed frame once and stack: obs uint8 [B, L+1, S, H, W] (or float32 [B, L+1, D])."""
    if ss.blobs is None:
        obs = ss.obs
    else:
        frames = (decoder or FrameDecoder(ss.frame_shape))(ss.blobs, ss.blob_dict)   # [U, H, W]
        obs = frames[ss.obs_index]                                                   # [B, L+1, S, H, W]
    return SequenceBatch(obs=obs, action=ss.action, reward=ss.reward, discount=ss.discount, length=ss.length,
                         state=ss.state, prev_action=ss.prev_action, prev_reward=ss.prev_reward,
                         weights=ss.weights, ids=ss.ids)
