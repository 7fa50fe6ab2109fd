"""Replay memories: uniform (`mmdb`) and proportional prioritized (`pmdb`, Schaul et al. 2016).

Transitions live in a ring of `capacity` slots (the oldest is overwritten); their observations live in a
FrameStore (buffers/frames.py), each frame once. A transition's id counts insertions from 0, its slot is
id % capacity, so a priority update carrying an id whose slot has since been overwritten is ignored.
RingReplay and the Prioritized mixin know items, not transitions: buffers/sequence.py builds the R2D2
sequence replay on them.
The replay never compresses or decompresses: it moves bytes and updates trees. Plain and picklable:
a Ray actor hosts it.
"""
from __future__ import annotations

import contextlib
import json

import numpy as np

from buffers.frames import FrameStore
from buffers.records import Push, SampledBatch
from buffers.sum_tree import SumTree


def linear_schedule(step: float, start: float, end: float, duration: float) -> float:
    """`start` at step 0, `end` from step `duration` on, linear in between."""
    if duration <= 0:
        return end
    frac = min(max(step / duration, 0.0), 1.0)
    return start + frac * (end - start)


def importance_weights(probs: np.ndarray, size: int, beta: float) -> np.ndarray:
    """w_i = (size * P(i))^-beta, divided by the batch's largest weight so that every w_i <= 1."""
    w = (size * np.asarray(probs, dtype=np.float64)) ** (-beta)
    return (w / w.max()).astype(np.float32)


class RingReplay:
    """Items (transitions, sequences) in a ring of `capacity` slots, their observations in a FrameStore;
    uniform sampling. Subclasses name their per-item arrays (first axis `capacity`) in `fields`, those
    holding frame slots in `slot_fields`, and store items with `_insert`."""

    prioritized = False
    fields: tuple[str, ...] = ()
    slot_fields: tuple[str, ...] = ()

    def __init__(self, capacity: int, obs_shape: tuple, seed: int = 0, window: int = 32, frame_slots: int = 1024):
        if capacity < 1:
            raise ValueError("replay capacity must be at least 1")
        self.capacity = capacity
        self.obs_shape = tuple(obs_shape)
        image = len(self.obs_shape) >= 3   # [stack, *frame] uint8 frames; anything else is a vector
        self.frames = FrameStore(self.obs_shape[1:] if image else self.obs_shape, image=image,
                                 stack=self.obs_shape[0] if image else 1, window=window, initial_slots=frame_slots)
        self.tid = np.full(capacity, -1, dtype=np.int64)
        self.inserted = 0      # items ever added; the next item's id
        self.sampled = 0       # items ever sampled
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.inserted, self.capacity)

    def _config(self) -> dict:
        """What a saved state must match to be loaded."""
        return {"capacity": np.int64(self.capacity), "obs_shape": np.array(self.obs_shape, dtype=np.int64)}

    @property
    def nbytes(self) -> int:
        """Bytes held: compressed frames, frame and item arrays (Python object headers excluded)."""
        arrays = [getattr(self, f) for f in self.fields] + [self.tid, self.frames.prev, self.frames.depth,
                                                            self.frames.refs, self.frames.blob_len]
        extra = self.frames.data.nbytes if self.frames.data is not None else self.frames.blob_bytes
        return sum(a.nbytes for a in arrays) + extra

    def _insert(self, values: dict[str, np.ndarray], priority: np.ndarray | None) -> int:
        """Write new items (their frame slots already held) over the oldest ones, which give their frame
        references back; only the newest `capacity` of a too large batch stay. Return how many were added."""
        t = len(values[self.slot_fields[0]])
        if t == 0:
            return 0
        if t > self.capacity:
            self.frames.drop(*(values[f][:-self.capacity] for f in self.slot_fields))
            values = {k: v[t - self.capacity:] for k, v in values.items()}
            priority = None if priority is None else priority[t - self.capacity:]
            t = self.capacity
        ids = self.inserted + np.arange(t, dtype=np.int64)
        slots = ids % self.capacity
        old = slots[self.tid[slots] >= 0]
        if old.size:
            self.frames.drop(*(getattr(self, f)[old] for f in self.slot_fields))
        for k, v in values.items():
            getattr(self, k)[slots] = v
        self.tid[slots] = ids
        self._set_new_priorities(slots, priority)
        self.inserted += t
        return t

    def _set_new_priorities(self, slots: np.ndarray, priority: np.ndarray | None) -> None:
        pass

    def one_priority_write(self):
        """A context around one or several add calls (see Prioritized); nothing to gather here."""
        return contextlib.nullcontext()

    def _sample_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        self.last_probs = np.full(batch_size, 1.0 / len(self))
        return self.rng.integers(0, len(self), batch_size), np.ones(batch_size, dtype=np.float32)

    @property
    def mass(self) -> float:
        """What a sharded loader divides a batch by: the sum of sampling weights (uniform: the size)."""
        return float(len(self))

    beta = 1.0   # importance-sampling exponent (prioritized replay anneals it)

    def _drawn(self) -> dict:
        """How the last batch was drawn (records.Drawn), for loaders that merge several shards' batches."""
        return {"probs": self.last_probs, "mass": self.mass, "size": len(self), "beta": self.beta}

    def _sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Slots and importance weights of `batch_size` items drawn from a non-empty replay."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay")
        slots, weights = self._sample_slots(batch_size)
        self.sampled += batch_size
        return slots, weights

    def update_priorities(self, ids: np.ndarray, priority: np.ndarray, step: int | None = None) -> int:
        """Uniform replay ignores priorities; returns 0 updated."""
        return 0

    def new_generation(self) -> int:
        """The generation a (re)started writer stamps on its pushes (FrameStore.new_generation)."""
        return self.frames.new_generation()

    def stats(self) -> dict:
        return {"size": len(self), "inserted": self.inserted, "sampled": self.sampled,
                "bytes": self.nbytes, "frames": self.frames.live}

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {f"frames.{k}": v for k, v in self.frames.state_dict().items()}
        state.update({f: getattr(self, f) for f in self.fields})
        state.update(tid=self.tid, inserted=np.int64(self.inserted), sampled=np.int64(self.sampled),
                     rng=np.array(json.dumps(self.rng.bit_generator.state)), **self._config())
        return {k: np.array(v, copy=True) for k, v in state.items()}

    def load_state_dict(self, state: dict) -> None:
        mine = self._config()
        if any(k not in state or not np.array_equal(state[k], v) for k, v in mine.items()):
            def show(d):
                return ", ".join(f"{k} {tuple(d[k].tolist()) if np.ndim(d[k]) else int(d[k])}" for k in mine if k in d)
            raise ValueError(f"replay state is for {show(state)}, not {show(mine)}")
        self.frames.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("frames.")})
        for f in self.fields:
            setattr(self, f, state[f].copy())
        self.tid = state["tid"].copy()
        self.inserted, self.sampled = int(state["inserted"]), int(state["sampled"])
        self.rng.bit_generator.state = json.loads(str(state["rng"]))

    def save(self, path: str) -> None:
        """Write the whole replay to `path` (.npz, no pickled objects)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.load_state_dict({k: data[k] for k in data.files})


class Prioritized:
    """Mixin over a RingReplay: proportional prioritization with stratified sampling over a sum tree.

    P(i) = p_i^alpha / sum_k p_k^alpha; importance weights use beta annealed linearly from `beta0` to 1
    over `beta_steps` learner steps, which the learner's priority updates report (counting sample calls
    instead would anneal R times too fast with R learner replicas, and early with loaders sampling
    ahead); new items enter with their actor's priority or, lacking one, the largest priority seen so
    far. Updates for ids whose slot was overwritten since are ignored.
    """

    prioritized = True

    def _init_priorities(self, alpha: float, beta0: float, beta_steps: int, eps: float) -> None:
        self.alpha, self.beta0, self.beta_steps, self.eps = alpha, beta0, beta_steps, eps
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0
        self.learner_steps = 0   # the highest learner step a priority update has reported
        self._gathered: list | None = None   # within one_priority_write: (slots, tree values) of each push

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.tree.tree.nbytes

    @property
    def mass(self) -> float:
        return float(self.tree.total)

    @property
    def beta(self) -> float:
        return linear_schedule(self.learner_steps, self.beta0, 1.0, self.beta_steps)

    def _set_new_priorities(self, slots: np.ndarray, priority: np.ndarray | None) -> None:
        p = np.full(len(slots), np.nan) if priority is None else np.asarray(priority, dtype=np.float64)
        known = np.isfinite(p)
        if known.any():
            self.max_priority = max(self.max_priority, float(p[known].max()))
        p = np.where(known, p, self.max_priority)
        if np.any(p < 0):   # on this push, before the exponent would make it NaN
            raise ValueError("priorities must be non-negative")
        values = (p + self.eps) ** self.alpha
        if self._gathered is None:
            self.tree.update(slots, values)
        else:
            self._gathered.append((slots, values))

    @contextlib.contextmanager
    def one_priority_write(self):
        """Within: each push's priorities are computed as it is inserted (the running maximum included) but
        written to the sum tree once, at the end, in push order (a later push's value wins for a slot it
        overwrote): one walk up the tree for all the pushes of an add call (or of the replay actor's call, which
        wraps its add calls) instead of one per push. Nothing samples in between. Nested, the outermost writes."""
        if self._gathered is not None:
            yield
            return
        self._gathered = []
        try:
            yield
        finally:
            gathered, self._gathered = self._gathered, None
            if gathered:
                self.tree.update(np.concatenate([g[0] for g in gathered]), np.concatenate([g[1] for g in gathered]))

    def _sample_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        slots = self.tree.stratified(batch_size, self.rng)
        prio = self.tree.get(slots)
        while np.any(prio <= 0):   # float rounding at a boundary can land on an empty leaf: draw again
            bad = prio <= 0
            slots[bad] = self.tree.find(self.rng.random(int(bad.sum())) * self.tree.total)
            prio = self.tree.get(slots)
        self.last_probs = prio / self.tree.total
        weights = importance_weights(self.last_probs, len(self), self.beta)
        return slots, weights

    def update_priorities(self, ids: np.ndarray, priority: np.ndarray, step: int | None = None) -> int:
        """Set new priorities (|TD error|) for sampled ids; ids whose slot was overwritten are ignored.
        `step`, the learner's step count, moves the importance-sampling beta."""
        if step is not None:
            self.learner_steps = max(self.learner_steps, int(step))
        ids = np.asarray(ids, dtype=np.int64)
        priority = np.asarray(priority, dtype=np.float64)
        slots = ids % self.capacity
        live = self.tid[slots] == ids
        if live.any():
            self.max_priority = max(self.max_priority, float(priority[live].max()))
            self.tree.update(slots[live], (priority[live] + self.eps) ** self.alpha)
        return int(live.sum())

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(priorities=self.tree.priorities().copy(), max_priority=np.float64(self.max_priority),
                     learner_steps=np.int64(self.learner_steps))
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree = SumTree(self.capacity)
        self.tree.update(np.arange(self.capacity), state["priorities"])
        self.max_priority = float(state["max_priority"])
        self.learner_steps = int(state["learner_steps"] if "learner_steps" in state else 0)


class UniformReplay(RingReplay):
    """`mmdb`: uniform sampling over the stored transitions."""

    fields = ("obs_slot", "next_slot", "action", "ret", "discount")
    slot_fields = ("obs_slot", "next_slot")

    def __init__(self, capacity: int, obs_shape: tuple, action_shape: tuple = (), action_dtype=np.int64,
                 seed: int = 0, window: int = 32, frame_slots: int = 1024):
        super().__init__(capacity, obs_shape, seed, window, frame_slots)
        self.obs_slot = np.zeros(capacity, dtype=np.int32)
        self.next_slot = np.zeros(capacity, dtype=np.int32)
        self.action = np.zeros((capacity,) + tuple(action_shape), dtype=action_dtype)
        self.ret = np.zeros(capacity, dtype=np.float32)
        self.discount = np.zeros(capacity, dtype=np.float32)

    def add(self, pushes: Push | list[Push]) -> int:
        """Store the pushes' frames and transitions; return how many transitions were added."""
        pushes = [pushes] if isinstance(pushes, Push) else pushes
        added = 0
        with self.one_priority_write():
            for push in pushes:
                t = len(push.obs)
                if any(len(a) != t for a in (push.next_obs, push.action, push.ret, push.discount)) or \
                        (push.priority is not None and len(push.priority) != t):
                    raise ValueError(f"stream {push.stream}: the transition fields of a push differ in length")
                obs, next_obs = self.frames.add(push)
                added += self._insert({"obs_slot": obs, "next_slot": next_obs, "action": push.action,
                                       "ret": push.ret, "discount": push.discount}, push.priority)
        return added

    def sample(self, batch_size: int) -> SampledBatch:
        """A batch of `batch_size` transitions; image frames stay compressed for a loader to decode."""
        slots, weights = self._sample(batch_size)
        return SampledBatch(ids=self.tid[slots], weights=weights, action=self.action[slots],
                            ret=self.ret[slots], discount=self.discount[slots], **self._drawn(),
                            **self.frames.gather(self.obs_slot[slots], self.next_slot[slots]))


class PrioritizedReplay(Prioritized, UniformReplay):
    """`pmdb`: proportional prioritized replay of transitions (Schaul et al. 2016), see Prioritized."""

    def __init__(self, capacity: int, obs_shape: tuple, action_shape: tuple = (), action_dtype=np.int64,
                 seed: int = 0, window: int = 32, alpha: float = 0.6, beta0: float = 0.4,
                 beta_steps: int = 100_000, eps: float = 1e-6, frame_slots: int = 1024):
        UniformReplay.__init__(self, capacity, obs_shape, action_shape, action_dtype, seed, window, frame_slots)
        self._init_priorities(alpha, beta0, beta_steps, eps)


PRIORITY_ARGS = ("alpha", "beta0", "beta_steps", "eps")


def pick_replay(kind: str, uniform: type, prioritized: type, kwargs: dict) -> type:
    """The class for buffer `kind` (`mmdb` -> uniform, `pmdb` -> prioritized); drops the priority
    arguments from `kwargs` when the replay is uniform."""
    kinds = {"mmdb": uniform, "pmdb": prioritized}
    if kind not in kinds:
        raise ValueError(f"unknown buffer {kind!r}; choose mmdb or pmdb")
    if kind == "mmdb":
        for k in PRIORITY_ARGS:
            kwargs.pop(k, None)
    return kinds[kind]


def make_replay(kind: str, capacity: int, obs_shape: tuple, **kwargs) -> UniformReplay:
    """`mmdb` -> UniformReplay, `pmdb` -> PrioritizedReplay."""
    return pick_replay(kind, UniformReplay, PrioritizedReplay, kwargs)(capacity, obs_shape, **kwargs)
