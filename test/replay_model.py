"""The replay against a reference model: a naive replay and a harness that drives both side by side.

ReferenceReplay is the replay as a user pictures it: every item kept whole under its id (full observation
stacks, plain arrays), the newest `capacity` ids live, each with its raw priority. Harness plays env
streams (random frames, episodes of random length ending in termination or truncation), writes them with
the real agent-side writers (StreamWriter, SequenceWriter), and applies operations to the real replay
shards and to the model alike: env steps, pushes of any size, samples (merged across shards as a loader
does), priority updates (stale ids too), save and load, and agent restarts whose dead predecessor's
last push arrives late. After every replay operation it checks the invariants (`check_invariants`),
and every sampled item must equal the model's entry for its id.

Used by test/test_replay_model.py (hypothesis: a failure shrinks to a short list of operations) and by
bench/replay_soak.py (long seeded runs).
"""
from __future__ import annotations

import os
import tempfile
from collections import deque
from dataclasses import dataclass

import numpy as np

from buffers import decode_batch, importance_weights, make_replay
from buffers.frames import StalePush
from buffers.records import PriorityUpdate
from buffers.sequence import SequenceWriter, decode_sequences, make_sequence_replay, mixed_td_priority
from buffers.shards import global_ids, reweight, route_update, split_counts
from buffers.writer import StreamWriter

NUM_ACTIONS = 3


@dataclass(frozen=True)
class Case:
    """One configuration of replay and streams."""
    sequences: bool = False      # R2D2 sequences, else n-step transitions
    image: bool = True           # lz4 image frames in stacks, else float vectors
    buffer: str = "mmdb"         # mmdb or pmdb
    capacity: int = 50           # items per shard
    streams: int = 2             # env streams, stream s writes to shard s % shards
    shards: int = 1
    frame_slots: int = 16        # the frame store's first size: small ones grow often
    writer_priorities: bool = True   # the writers compute initial priorities (pmdb)
    stack: int = 4
    frame: tuple = (4, 5)        # image frame shape
    dim: int = 3                 # vector size
    nstep: int = 3
    seq_len: int = 5
    overlap: int = 2
    state_size: int = 2
    p_term: float = 0.05
    p_trunc: float = 0.03
    keyframe_interval: int = 4
    seed: int = 0

    @property
    def obs_shape(self) -> tuple:
        return (self.stack, *self.frame) if self.image else (self.dim,)

    def make_replay(self, shard: int):
        kw = dict(seed=self.seed + shard, frame_slots=self.frame_slots)
        if self.buffer == "pmdb":
            kw.update(alpha=0.7, beta0=0.4, beta_steps=50, eps=1e-3)
        if self.sequences:
            return make_sequence_replay(self.buffer, self.capacity, self.obs_shape, self.seq_len, self.state_size,
                                        **kw)
        return make_replay(self.buffer, self.capacity, self.obs_shape, window=max(32, self.nstep + 8), **kw)


class ReferenceReplay:
    """The naive replay: whole items by id, the newest `capacity` live, raw priorities."""

    def __init__(self, capacity: int, alpha: float = 0.7, eps: float = 1e-3):
        self.capacity, self.alpha, self.eps = capacity, alpha, eps
        self.items: dict[int, dict] = {}
        self.priority: dict[int, float] = {}
        self.inserted = 0
        self.max_priority = 1.0
        self.steps = 0

    def add(self, items: list[dict], priorities: np.ndarray | None) -> None:
        """Items get the next ids; of a push larger than the ring only the newest `capacity` are kept
        (numbered, and their priorities counted towards the running maximum)."""
        p = np.full(len(items), np.nan) if priorities is None else np.asarray(priorities, np.float64)
        items, p = items[-self.capacity:], p[-self.capacity:]
        if np.isfinite(p).any():
            self.max_priority = max(self.max_priority, float(p[np.isfinite(p)].max()))
        for item, pi in zip(items, p):
            self.items[self.inserted] = item
            self.priority[self.inserted] = float(pi) if np.isfinite(pi) else self.max_priority
            self.inserted += 1
        for old in range(self.inserted - len(items) - self.capacity, self.inserted - self.capacity):
            self.items.pop(old, None)
            self.priority.pop(old, None)

    def live(self, ids: np.ndarray) -> np.ndarray:
        return np.array([int(i) in self.items for i in ids], dtype=bool)

    def update(self, ids: np.ndarray, priority: np.ndarray, step: int) -> int:
        self.steps = max(self.steps, step)
        live = self.live(ids)
        if live.any():
            self.max_priority = max(self.max_priority, float(np.max(priority[live])))
        for i, p, ok in zip(ids.tolist(), priority.tolist(), live.tolist()):
            if ok:
                self.priority[i] = p
        return int(live.sum())

    def leaf(self, ids) -> np.ndarray:
        """Sum-tree leaf values (p + eps)^alpha of live ids."""
        return (np.array([self.priority[int(i)] for i in ids]) + self.eps) ** self.alpha

    @property
    def mass(self) -> float:
        return float(self.leaf(list(self.items)).sum()) if self.items else 0.0


class Stream:
    """One env stream: random frames with short episodes, written by the real agent-side writer."""

    def __init__(self, case: Case, index: int, generation: int, rng: np.random.Generator):
        self.case, self.index, self.rng = case, index, rng
        c = case
        if c.sequences:
            self.writer = SequenceWriter(index, c.seq_len, c.overlap, 0.9, c.image, c.state_size,
                                         priority_fn=mixed_td_priority if self._prio else None,
                                         keyframe_interval=c.keyframe_interval, level=0, generation=generation)
        else:
            self.writer = StreamWriter(index, c.nstep, 0.9, c.image, priorities=self._prio,
                                       keyframe_interval=c.keyframe_interval, level=0, generation=generation)
        self.shown: dict[int, np.ndarray] = {}   # frame number -> the observation the agent saw
        self.stack: deque = deque(maxlen=c.stack)
        self._reset()

    @property
    def _prio(self) -> bool:
        return self.case.buffer == "pmdb" and self.case.writer_priorities

    def _frame(self, first: bool) -> np.ndarray:
        c, rng = self.case, self.rng
        if not c.image:
            return rng.normal(size=c.dim).astype(np.float32)
        if first or not self.stack:
            return rng.integers(0, 256, c.frame, dtype=np.uint8)
        f = self.stack[-1].copy()   # like a game: mostly the previous frame, a few pixels changed
        f.flat[rng.integers(0, f.size, 3)] = rng.integers(0, 256, 3)
        return f

    def _observe(self, first: bool) -> np.ndarray:
        f = self._frame(first)
        if not self.case.image:
            return f
        if first:
            self.stack.extend([f] * self.case.stack)
        else:
            self.stack.append(f)
        return np.stack(self.stack)

    def _reset(self) -> None:
        obs = self._observe(first=True)
        self.writer.reset(obs)
        self.shown[self.writer.frame_no] = obs

    def _q(self) -> np.ndarray:
        return self.rng.normal(size=NUM_ACTIONS).astype(np.float32)

    def step(self) -> None:
        c, rng, w = self.case, self.rng, self.writer
        action = int(rng.integers(NUM_ACTIONS))
        if c.sequences:
            w.act(rng.normal(size=(2, c.state_size)).astype(np.float32), self._q())
        elif self._prio:
            q = self._q()
            w.act(q[action], q.max())
        term = bool(rng.random() < c.p_term)
        trunc = not term and bool(rng.random() < c.p_trunc)
        obs = self._observe(first=False)
        w.step(action, float(rng.normal()), obs, term, trunc)
        self.shown[w.frame_no] = obs
        if trunc:
            w.value(self._q() if c.sequences else float(self._q().max()))
        if term or trunc:
            self._reset()

    def take(self):
        """The writer's push (None if nothing is new) and the model's items for it."""
        push = self.writer.take()
        if push is None:
            return None, []
        shown, c = self.shown, self.case
        if c.sequences:
            items = []
            for j in range(len(push)):
                n, s = int(push.length[j]), int(push.start[j])
                items.append({"obs": np.stack([shown[s + min(t, n)] for t in range(c.seq_len + 1)]),
                              "length": n, "action": push.action[j], "reward": push.reward[j],
                              "discount": push.discount[j], "state": push.state[j],
                              "prev_action": push.prev_action[j], "prev_reward": push.prev_reward[j]})
        else:
            items = [{"obs": shown[int(o)], "next_obs": shown[int(n)], "action": a, "ret": r, "discount": d}
                     for o, n, a, r, d in zip(push.obs, push.next_obs, push.action, push.ret, push.discount)]
        horizon = push.frame_base + len(push.first) - 64   # nothing older is referenced again
        for f in [f for f in shown if f < horizon]:
            del shown[f]
        return push, items


def expected_refs(replay) -> np.ndarray:
    """Reference counts rebuilt from scratch: every live item's stacks, the stream windows, and one per
    stored lz4 dictionary child (a frame holds its parent)."""
    fs = replay.frames
    refs = np.zeros(fs.slots, np.int64)
    for f in replay.slot_fields:
        np.add.at(refs, fs.stacks(getattr(replay, f)[replay.tid >= 0]).ravel(), 1)
    for window in fs.windows.values():
        np.add.at(refs, window[window >= 0], 1)
    if fs.image:
        stored = np.flatnonzero(fs.blob_len[:fs.slots] > 0)
        np.add.at(refs, fs.prev[stored[fs.depth[stored] > 0]], 1)
    return refs


def check_invariants(replay, full: bool = True) -> None:
    """The frame store's and the sum tree's invariants; `full` also rebuilds every reference count."""
    fs = replay.frames
    refs = fs.refs[:fs.slots]
    assert refs.min(initial=0) >= 0, f"negative reference count at slots {np.flatnonzero(refs < 0)[:8]}"
    free = fs.free[:fs.n_free]
    assert len(np.unique(free)) == fs.n_free, "a slot is on the free stack twice"
    assert np.all(refs[free] == 0), "a referenced slot is on the free stack"
    assert fs.n_free + np.count_nonzero(refs) == fs.slots, \
        f"free {fs.n_free} + live {np.count_nonzero(refs)} slots != all {fs.slots}"
    if fs.image:
        assert all(fs.blobs[i] is not None for i in np.flatnonzero(refs)), "a live frame has no data"
    n = len(replay)
    live_ids = np.sort(replay.tid[replay.tid >= 0])
    assert np.array_equal(live_ids, np.arange(replay.inserted - n, replay.inserted)), "ring ids are not the newest"
    if replay.prioritized:
        t = replay.tree.tree
        leaves = replay.tree.priorities()
        assert np.all(leaves[replay.tid < 0] == 0), "an empty slot has a priority"
        np.testing.assert_allclose(t[1], leaves.sum(), rtol=1e-9, atol=1e-12,
                                   err_msg="the sum tree's total is not the sum of its leaves")
        inner = np.arange(1, replay.tree.leaves)
        np.testing.assert_allclose(t[inner], t[2 * inner] + t[2 * inner + 1], rtol=1e-9, atol=1e-12)
    if not full:
        return
    expected = expected_refs(replay)
    bad = np.flatnonzero(expected != refs)
    assert bad.size == 0, f"reference counts differ from a recount at slots {bad[:8]}: " \
                          f"{refs[bad[:8]].tolist()} != {expected[bad[:8]].tolist()}"


class Harness:
    """Drives `case.shards` real replays and their reference models with the same operations."""

    FIELDS = {False: ("action", "ret", "discount"),
              True: ("length", "action", "reward", "discount", "state", "prev_action", "prev_reward")}

    def __init__(self, case: Case, full_checks: bool = True):
        self.case, self.full_checks = case, full_checks
        self.rng = np.random.default_rng(case.seed)
        self.replays = [case.make_replay(k) for k in range(case.shards)]
        self.models = [ReferenceReplay(case.capacity) for _ in range(case.shards)]
        self.streams = [Stream(case, s, self.replays[s % case.shards].new_generation(), self._child())
                        for s in range(case.streams)]
        self.sampled_ids: list[int] = []
        self.learner_step = 0   # reported with priority updates
        self.counts = {"operations": 0, "pushes": 0, "samples": 0, "items_checked": 0, "updates": 0,
                       "saves": 0, "restarts": 0, "stale_pushes": 0}

    def _child(self) -> np.random.Generator:
        return np.random.default_rng(self.rng.integers(2 ** 63))

    def _shard(self, stream: int) -> int:
        return stream % self.case.shards

    # --- operations ------------------------------------------------------------------------------
    def run(self, ops: list[tuple]) -> None:
        for op in ops:
            getattr(self, op[0])(*op[1:])

    def steps(self, stream: int, n: int) -> None:
        for _ in range(n):
            self.streams[stream % len(self.streams)].step()
        self.counts["operations"] += n

    def push(self, stream: int) -> None:
        s = stream % len(self.streams)
        push, items = self.streams[s].take()
        self.counts["operations"] += 1
        if push is None:
            return
        k = self._shard(s)
        added = self.replays[k].add(push)
        self.models[k].add(items, push.priority)
        assert added == min(len(items), self.case.capacity)
        self.counts["pushes"] += 1
        self.check(k)

    def restart(self, stream: int, steps: int) -> None:
        """Agent `stream` dies and is restarted: its successor (a new generation) pushes, then the dead
        agent's last push arrives; it must be refused as stale and change nothing."""
        s = stream % len(self.streams)
        k = self._shard(s)
        self.streams[s].step()
        late, _ = self.streams[s].take()
        self.streams[s] = Stream(self.case, s, self.replays[k].new_generation(), self._child())
        self.steps(s, steps)
        self.push(s)
        self.counts["restarts"] += 1
        if late is None:
            return
        before = self.replays[k].state_dict() if self.full_checks else None
        try:
            self.replays[k].add(late)
        except StalePush:
            self.counts["stale_pushes"] += 1
        else:
            raise AssertionError("a dead writer's late push was accepted")
        if before is not None:
            after = self.replays[k].state_dict()
            assert before.keys() == after.keys()
            for key in before:
                assert np.array_equal(before[key], after[key]), f"a refused push changed the replay's {key}"
        self.check(k)

    def sample(self, batch_size: int) -> None:
        """One batch drawn across the shards as a loader draws it, checked item by item against the models."""
        self.counts["operations"] += 1
        K = self.case.shards
        masses = [r.mass for r in self.replays]
        if sum(masses) <= 0:
            for r in self.replays:
                try:
                    r.sample(1)
                except ValueError:
                    continue
                raise AssertionError("an empty replay handed out a batch")
            return
        counts = split_counts(batch_size, masses, self.rng)
        parts = {k: self.replays[k].sample(int(c)) for k, c in enumerate(counts) if c > 0}
        merged = reweight(parts, K, self.case.buffer == "pmdb") if K > 1 else list(parts.values())
        decode = decode_sequences if self.case.sequences else decode_batch
        all_ids, all_weights = [], []
        for part in merged:
            batch = decode(part)
            ids = np.asarray(part.ids)
            for i, gid in enumerate(ids.tolist()):
                k, local = (gid % K, gid // K) if K > 1 else (0, gid)
                assert local in self.models[k].items, f"sampled id {local} of shard {k} is not live"
                self._compare(batch, i, self.models[k].items[local], local)
            all_ids.append(ids if K > 1 else global_ids(ids, 0, 1))
            all_weights.append(part.weights)
        ids, weights = np.concatenate(all_ids), np.concatenate(all_weights)
        self._check_weights(ids, weights, parts)
        self.sampled_ids.extend(ids.tolist())
        del self.sampled_ids[:-2000]
        self.counts["samples"] += 1
        self.counts["items_checked"] += len(ids)
        for k in parts:
            self.check(k)

    def _compare(self, batch, i: int, item: dict, tid: int) -> None:
        np.testing.assert_array_equal(batch.obs[i], item["obs"], err_msg=f"obs of id {tid}")
        if not self.case.sequences:
            np.testing.assert_array_equal(batch.next_obs[i], item["next_obs"], err_msg=f"next_obs of id {tid}")
        for f in self.FIELDS[self.case.sequences]:
            np.testing.assert_array_equal(getattr(batch, f)[i], item[f], err_msg=f"{f} of id {tid}")

    def _check_weights(self, ids: np.ndarray, weights: np.ndarray, parts: dict) -> None:
        if self.case.buffer != "pmdb":
            assert np.all(weights == 1)
            return
        K = self.case.shards
        leaf = np.concatenate([self.models[g % K].leaf([g // K]) for g in ids.tolist()])
        total = sum(m.mass for m in self.models)
        size = sum(len(m.items) for m in self.models)
        beta = min(1.0, 0.4 + 0.6 * max(self.models[k].steps for k in parts) / 50)   # Case's beta0, beta_steps
        assert abs(max(p.beta for p in parts.values()) - beta) < 1e-12, "beta does not follow the learner's steps"
        np.testing.assert_allclose(weights, importance_weights(leaf / total, size, beta), rtol=1e-4)

    def update(self, count: int, scale: float = 1.0) -> None:
        """A learner step's priority update for `count` ids sampled so far (some since overwritten)."""
        self.counts["operations"] += 1
        if not self.sampled_ids:
            return
        K = self.case.shards
        pick = self.rng.choice(len(self.sampled_ids), min(count, len(self.sampled_ids)), replace=False)
        ids = np.array(self.sampled_ids, np.int64)[np.sort(pick)]
        prio = (self.rng.random(len(ids)) * scale).astype(np.float32)
        self.learner_step += 1
        for k, part in route_update(PriorityUpdate(ids, prio, self.learner_step), K).items():
            got = self.replays[k].update_priorities(part.ids, part.priority, part.step)
            want = self.models[k].update(part.ids, part.priority.astype(np.float64), part.step)
            if self.case.buffer == "pmdb":
                assert got == want, f"{got} priorities updated, expected {want} (stale ids are ignored)"
            self.check(k)
        self.counts["updates"] += 1

    def save(self) -> None:
        """Save every shard and continue with replays loaded from the files."""
        self.counts["operations"] += 1
        with tempfile.TemporaryDirectory() as d:
            for k, r in enumerate(self.replays):
                path = os.path.join(d, f"replay{k}.npz")
                r.save(path)
                fresh = self.case.make_replay(k)
                fresh.load(path)
                self.replays[k] = fresh
                self.check(k)
        self.counts["saves"] += 1

    # --- checks ------------------------------------------------------------------------------------
    def check(self, k: int) -> None:
        replay, model = self.replays[k], self.models[k]
        check_invariants(replay, self.full_checks)
        assert replay.inserted == model.inserted and len(replay) == len(model.items)
        if self.case.buffer == "pmdb":
            slots = replay.tid[replay.tid >= 0]
            got = replay.tree.priorities()[slots % replay.capacity]
            np.testing.assert_allclose(got, model.leaf(slots), rtol=1e-6, err_msg="sum-tree leaves")
            assert replay.max_priority == model.max_priority


def random_ops(rng: np.random.Generator, case: Case, n: int) -> list[tuple]:
    """`n` random operations for the soak: mostly env steps and pushes of any size, with samples,
    priority updates, agent restarts and save/load mixed in."""
    ops = []
    for _ in range(n):
        u = rng.random()
        s = int(rng.integers(case.streams))
        if u < 0.45:
            ops.append(("steps", s, int(rng.geometric(0.08))))
        elif u < 0.75:
            ops.append(("push", s))
        elif u < 0.90:
            ops.append(("sample", int(rng.integers(1, 65))))
        elif u < 0.985:
            ops.append(("update", int(rng.integers(1, 33)), float(rng.choice([0.1, 1.0, 10.0]))))
        elif u < 0.995:
            ops.append(("restart", s, int(rng.integers(1, 20))))
        else:
            ops.append(("save",))
    return ops
