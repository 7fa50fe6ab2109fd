"""Frames: encoded once where they are produced, stored once in the replay, decoded where batches are made.

Image frames (84x84 uint8) are lz4-compressed in high-compression mode against the previous frame of the
same episode as a dictionary, with a keyframe (no dictionary) every `keyframe_interval` frames so that a
decode never walks a long chain. On Atari this stores a frame in a third of what plain per-frame lz4 needs.

The replay keeps each frame once in a slot and links it to its predecessor in the episode (`prev`; an
episode's first frame is its own predecessor), so a stack [f-3, f-2, f-1, f] is rebuilt by following
links, and padding at an episode start repeats the first frame, exactly as envs.atari.FrameStack does.
Slots are reference-counted: a transition holds the frames of its two stacks (a sequence those of its
L+1 stacks), a frame holds its lz4 dictionary parent, and a stream holds its last `window` frames (so
a record still to come can reference them and their stacks). A frame is freed when its count falls to
zero.
Vector observations go through the same store as plain float32 rows (stack 1, no compression).
"""
from __future__ import annotations

import lz4.block
import numpy as np

from buffers.records import Push, SequencePush


class StalePush(Exception):
    """A push of an older generation of its stream: a dead writer's last push that arrived after its
    restarted successor's first. The only push a replay may drop; nothing was changed by it."""

KEYFRAME_INTERVAL = 8
COMPRESSION_LEVEL = 4   # lz4 HC level: ~40 us per 84x84 frame; 0 uses the fast default mode


class FrameEncoder:
    """Agent side: compress one stream's frames, each against its predecessor in the episode."""

    def __init__(self, keyframe_interval: int = KEYFRAME_INTERVAL, level: int = COMPRESSION_LEVEL):
        if not 1 <= keyframe_interval <= 255:
            raise ValueError("keyframe_interval must be within 1..255")
        self.keyframe_interval, self.level = keyframe_interval, level
        self._prev: bytes | None = None
        self._depth = 0

    def encode(self, frame: np.ndarray, first: bool) -> tuple[bytes, int]:
        """Return (lz4 block, depth in the dictionary chain; 0 is a keyframe)."""
        raw = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
        kwargs = {"mode": "high_compression", "compression": self.level} if self.level > 0 else {}
        if first or self._prev is None or self._depth + 1 >= self.keyframe_interval:
            self._depth = 0
            blob = lz4.block.compress(raw, store_size=False, **kwargs)
        else:
            self._depth += 1
            blob = lz4.block.compress(raw, store_size=False, dict=self._prev, **kwargs)
        self._prev = raw
        return blob, self._depth


class FrameDecoder:
    """Loader side: decompress a batch's blobs (dictionary parents first) into a reused workspace.

    Reusing the workspace spares the page faults of a fresh 20 MB buffer per batch; the returned view
    is valid until the next call, so callers gather what they keep out of it.
    """

    def __init__(self, frame_shape: tuple = (84, 84)):
        self.frame_shape = tuple(frame_shape)
        self.size = int(np.prod(frame_shape))
        self._work = np.empty((0, self.size), dtype=np.uint8)

    def __call__(self, blobs: list, blob_dict: np.ndarray) -> np.ndarray:
        n, size = len(blobs), self.size
        if len(self._work) < n:
            self._work = np.empty((max(n, int(len(self._work) * 1.5)), size), dtype=np.uint8)
        view = memoryview(self._work).cast("B")
        decompress = lz4.block.decompress
        for i, (blob, d) in enumerate(zip(blobs, blob_dict.tolist())):
            if d < 0:
                raw = decompress(blob, uncompressed_size=size)
            else:
                raw = decompress(blob, uncompressed_size=size, dict=view[d * size:(d + 1) * size])
            view[i * size:(i + 1) * size] = raw
        return self._work[:n].reshape((n,) + self.frame_shape)


def decode_frames(blobs: list, blob_dict: np.ndarray, frame_shape: tuple) -> np.ndarray:
    """Decompress blobs (dictionary parents first) into a new uint8 [U, *frame_shape] array."""
    return FrameDecoder(frame_shape)(blobs, blob_dict).copy()


class FrameStore:
    """Replay side: frames in reference-counted slots, addressed by slot number."""

    def __init__(self, frame_shape: tuple, image: bool, stack: int = 1, window: int = 32,
                 initial_slots: int = 1024):
        self.frame_shape, self.image = tuple(frame_shape), image
        self.stack = stack if image else 1
        self.window = window
        self.slots = 0
        self.blobs = np.empty(0, dtype=object) if image else None
        self.data = None if image else np.zeros((0,) + self.frame_shape, dtype=np.float32)
        self.prev = np.zeros(0, dtype=np.int32)
        self.depth = np.zeros(0, dtype=np.uint8)
        self.refs = np.zeros(0, dtype=np.int32)
        self.blob_len = np.zeros(0, dtype=np.int32)
        self.free = np.zeros(0, dtype=np.int32)   # stack of free slots, top at n_free - 1
        self.n_free = 0
        self.blob_bytes = 0
        self.windows: dict[int, np.ndarray] = {}  # stream -> [window] slot of frame number f at f % window
        self.next_frame: dict[int, int] = {}      # stream -> the frame number its next push must start at
        self.generation: dict[int, int] = {}      # stream -> the generation of the writer that fills it
        self.issued = 0                           # the highest generation handed out by new_generation
        self._grow(initial_slots)

    # --- slots -------------------------------------------------------------------------------
    def _grow(self, new_slots: int) -> None:
        old = self.slots
        extra = new_slots - old

        def ext(a, fill=0):
            return np.concatenate([a, np.full((extra,) + a.shape[1:], fill, dtype=a.dtype)])

        if self.image:
            self.blobs = np.concatenate([self.blobs, np.empty(extra, dtype=object)])
        else:
            self.data = ext(self.data)
        self.prev, self.depth, self.refs, self.blob_len = (ext(self.prev), ext(self.depth), ext(self.refs),
                                                           ext(self.blob_len))
        # the free stack has room for every slot: all of them can be free at once
        free = np.empty(new_slots, dtype=np.int32)
        free[:self.n_free] = self.free[:self.n_free]
        free[self.n_free:self.n_free + extra] = np.arange(new_slots - 1, old - 1, -1, dtype=np.int32)
        self.free = free
        self.n_free += extra
        self.slots = new_slots

    def _alloc(self, k: int) -> np.ndarray:
        if self.n_free < k:
            self._grow(max(self.slots + k, int(self.slots * 1.25) + 1024))
        self.n_free -= k
        return self.free[self.n_free:self.n_free + k][::-1].copy()

    @property
    def live(self) -> int:
        return self.slots - self.n_free

    def acquire(self, slots: np.ndarray) -> None:
        np.add.at(self.refs, slots.ravel(), 1)

    def release(self, slots: np.ndarray) -> None:
        """Drop one reference from each slot; free those that reach zero, then their dictionary parents."""
        slots = slots.ravel()
        while slots.size:
            np.subtract.at(self.refs, slots, 1)
            cand = np.unique(slots)
            dead = cand[self.refs[cand] == 0]
            if dead.size == 0:
                return
            if self.image:
                self.blobs[dead] = None
                self.blob_bytes -= int(self.blob_len[dead].sum())
            self.blob_len[dead] = 0
            self.free[self.n_free:self.n_free + dead.size] = dead
            self.n_free += dead.size
            slots = self.prev[dead][self.depth[dead] > 0]

    # --- frames in ---------------------------------------------------------------------------
    def add(self, push: Push) -> tuple[np.ndarray, np.ndarray]:
        """Store a push's frames and let its transitions hold their stacks; return their obs/next_obs slots."""
        obs, next_obs = self.add_frames(push, push.obs, push.next_obs)
        return obs, next_obs

    def add_frames(self, push: Push | SequencePush, *numbers: np.ndarray) -> list[np.ndarray]:
        """Store a push's frames; map each array of stream frame numbers (any shape) to slots whose
        stacks are held (one reference per entry), and return those slot arrays.

        Everything is checked before anything changes: a push of an older generation of its stream
        raises StalePush, any other inconsistency ValueError, and the store is then as it was."""
        stream, base, k = push.stream, int(push.frame_base), len(push.first)
        restart = self._admit(push)
        self._check(stream, base, k, numbers)
        if len(push.frames) != k or len(push.depth) != k:
            raise ValueError(f"stream {stream}: a push of {k} frames has {len(push.frames)} frame payloads "
                             f"and {len(push.depth)} depths")
        if base == 0 and k and not push.first[0]:
            raise ValueError(f"stream {stream}: frame 0 must start an episode")
        if restart:   # a new generation of the stream (a restarted agent) starts a fresh window
            if stream in self.windows:
                self._drop_stream(stream)
            self.windows[stream] = np.full(self.window, -1, dtype=np.int32)
            self.next_frame[stream] = 0
            self.generation[stream] = int(push.generation)
        first = np.asarray(push.first, dtype=bool)
        slots = self._alloc(k)
        if self.image:
            self.blobs[slots] = push.frames if isinstance(push.frames, list) else list(push.frames)
            lens = np.fromiter(map(len, push.frames), dtype=np.int32, count=k)
            self.blob_len[slots] = lens
            self.blob_bytes += int(lens.sum())
            self.depth[slots] = push.depth
        else:
            self.data[slots] = push.frames
        lookup = self._lookup(stream, base, slots)
        prev = slots.copy()
        prev[~first] = lookup(base + np.flatnonzero(~first) - 1)
        self.prev[slots] = prev
        if self.image:   # a frame holds its dictionary parent
            self.acquire(prev[self.depth[slots] > 0])
        self.acquire(slots)  # the stream window's hold, dropped by _slide for frames that leave it
        found = [lookup(n) for n in numbers]
        self.hold(*found)
        self._slide(stream, base, slots)
        return found

    def new_generation(self) -> int:
        """A generation number above every one this store has seen or handed out: a (re)started writer
        takes one, so that pushes of its stream's earlier writer are recognised as stale."""
        self.issued = max([self.issued, *self.generation.values()]) + 1
        return self.issued

    def _admit(self, push: Push | SequencePush) -> bool:
        """Place a push in its stream's history without changing anything: True if it starts a new
        generation of the stream. Raises StalePush for a push of an older generation (a dead writer's
        last push arriving after its successor's first), ValueError for any other out-of-order push."""
        stream, base, gen = push.stream, int(push.frame_base), int(push.generation)
        current = self.generation.get(stream)
        if current is not None and gen < current:
            raise StalePush(f"stream {stream}: a push of generation {gen} after generation {current} began")
        if current is None or gen > current:
            if base != 0:
                raise ValueError(f"stream {stream}: generation {gen} starts at frame {base}, expected 0")
            return True
        if base != self.next_frame[stream]:
            raise ValueError(f"stream {stream}: push starts at frame {base}, expected {self.next_frame[stream]}")
        return False

    def hold(self, *slots: np.ndarray) -> None:
        """Records take a reference on every frame of the stacks ending at these slots (arrays of any shape)."""
        self.acquire(np.concatenate([self.stacks(s).ravel() for s in slots]))

    def drop(self, *slots: np.ndarray) -> None:
        """Evicted records give back what `hold` took for the same slot arrays."""
        self.release(np.concatenate([self.stacks(s).ravel() for s in slots]))

    def _check(self, stream: int, base: int, k: int, numbers: tuple) -> None:
        """Refuse (before anything changes) frame numbers not yet pushed, or whose stacks may reach frames
        that left the stream window and may be freed."""
        flat = np.concatenate([np.asarray(n, dtype=np.int64).ravel() for n in numbers] + [np.zeros(0, np.int64)])
        if flat.size == 0:
            return
        lo, low, high = base - self.window, int(flat.min()), int(flat.max())
        if high >= base + k:
            raise ValueError(f"stream {stream}: frame {high} is not pushed yet (push ends at {base + k - 1})")
        if low < max(lo, 0):
            raise ValueError(f"stream {stream}: frame {low} is outside the stream window of {self.window} frames")
        if low - (self.stack - 1) < lo:
            raise ValueError(f"stream {stream}: the stack of frame {low} reaches outside the stream window "
                             f"of {self.window} frames")

    def _lookup(self, stream: int, base: int, slots: np.ndarray):
        window = self.windows[stream]

        def lookup(numbers: np.ndarray) -> np.ndarray:
            numbers = np.asarray(numbers, dtype=np.int64)
            out = np.empty(numbers.shape, dtype=np.int32)
            new = numbers >= base
            out[new] = slots[numbers[new] - base]
            old = numbers[~new]
            if old.size:
                if old.min() < max(base - self.window, 0):
                    raise ValueError(f"stream {stream}: frame {old.min()} is outside the stream window "
                                     f"of {self.window} frames")
                out[~new] = window[old % self.window]
            return out

        return lookup

    def _slide(self, stream: int, base: int, slots: np.ndarray) -> None:
        """Move the stream window past a push: frames leaving it lose the window's reference."""
        window, k, w = self.windows[stream], len(slots), self.window
        leaving_old = np.arange(max(base - w, 0), max(min(base, base + k - w), 0))
        old_slots = window[leaving_old % w]
        new_leaving = slots[:max(k - w, 0)]
        keep = np.arange(max(base, base + k - w), base + k)
        window[keep % w] = slots[keep - base]
        self.next_frame[stream] = base + k
        self.release(np.concatenate([old_slots, new_leaving]))

    def _drop_stream(self, stream: int) -> None:
        window = self.windows.pop(stream)
        self.next_frame.pop(stream)
        self.generation.pop(stream)
        self.release(window[window >= 0])

    # --- frames out --------------------------------------------------------------------------
    def stacks(self, slots: np.ndarray) -> np.ndarray:
        """[...] newest-frame slots -> [..., stack] slots, oldest first, padded at episode starts."""
        cols = [np.asarray(slots, dtype=np.int32)]
        for _ in range(self.stack - 1):
            cols.append(self.prev[cols[-1]])
        return np.stack(cols[::-1], axis=-1)

    def gather_stacks(self, slots: np.ndarray) -> dict:
        """What a loader needs to rebuild the stacks ending at `slots` [B, K]: vectors `obs` [B, K, D]; images
        the distinct compressed frames with their lz4 chains (`blobs`, parents first, `blob_dict`) and
        `index` [B, K, stack], the row of each stack frame among the decoded blobs."""
        slots = np.asarray(slots, dtype=np.int32)
        if not self.image:
            return {"obs": self.data[slots]}
        mat = self.stacks(slots)                                         # [B, K, S]
        parts, frontier = [mat.ravel()], np.unique(mat)
        while True:   # the lz4 dictionary chains back to each keyframe
            frontier = np.unique(self.prev[frontier[self.depth[frontier] > 0]])
            if frontier.size == 0:
                break
            parts.append(frontier)
        needed = np.unique(np.concatenate(parts))
        needed = needed[np.argsort(self.depth[needed], kind="stable")]   # parents decode first
        sorter = np.argsort(needed)
        sorted_needed = needed[sorter]

        def pos(x):
            return sorter[np.searchsorted(sorted_needed, x)].astype(np.int32)

        # only dictionary-coded frames have a parent among `needed`; a keyframe's stack predecessor may be
        # any slot (even a freed one), so it is never looked up
        blob_dict = np.full(len(needed), -1, dtype=np.int32)
        coded = self.depth[needed] > 0
        blob_dict[coded] = pos(self.prev[needed[coded]])
        return {"blobs": self.blobs[needed].tolist(), "blob_dict": blob_dict, "index": pos(mat),
                "frame_shape": self.frame_shape}

    def gather(self, obs_slots: np.ndarray, next_slots: np.ndarray) -> dict:
        """What a loader needs to rebuild the stacks of these transitions (SampledBatch fields)."""
        if not self.image:
            return {"obs": self.data[obs_slots], "next_obs": self.data[next_slots]}
        g = self.gather_stacks(np.stack([obs_slots, next_slots], axis=1))
        index = g.pop("index")
        return {**g, "obs_index": np.ascontiguousarray(index[:, 0]), "next_index": np.ascontiguousarray(index[:, 1])}

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"prev": self.prev, "depth": self.depth, "refs": self.refs, "blob_len": self.blob_len,
                 "free": self.free[:self.n_free],
                 "streams": np.array(sorted(self.windows), dtype=np.int64),
                 "stream_windows": np.array([self.windows[s] for s in sorted(self.windows)],
                                            dtype=np.int32).reshape(-1, self.window),
                 "stream_next": np.array([self.next_frame[s] for s in sorted(self.windows)], dtype=np.int64),
                 "stream_generation": np.array([self.generation[s] for s in sorted(self.windows)], dtype=np.int64),
                 "issued": np.int64(self.issued)}
        if self.image:
            live = np.flatnonzero(self.blob_len > 0)
            state["blob_slots"] = live
            state["blob_data"] = np.frombuffer(b"".join(self.blobs[live].tolist()), dtype=np.uint8)
        else:
            state["data"] = self.data
        return {k: np.asarray(v).copy() for k, v in state.items()}

    def load_state_dict(self, state: dict) -> None:
        self.prev, self.depth = state["prev"].astype(np.int32), state["depth"].astype(np.uint8)
        self.refs, self.blob_len = state["refs"].astype(np.int32), state["blob_len"].astype(np.int32)
        self.slots = len(self.prev)
        self.n_free = len(state["free"])
        self.free = np.zeros(self.slots, dtype=np.int32)
        self.free[:self.n_free] = state["free"]
        self.windows = {int(s): w.astype(np.int32).copy() for s, w in zip(state["streams"], state["stream_windows"])}
        self.next_frame = {int(s): int(n) for s, n in zip(state["streams"], state["stream_next"])}
        gens = state.get("stream_generation", np.zeros(len(state["streams"]), np.int64))   # older files: 0
        self.generation = {int(s): int(g) for s, g in zip(state["streams"], gens)}
        self.issued = int(state.get("issued", 0))
        if self.image:
            self.blobs = np.empty(self.slots, dtype=object)
            data = state["blob_data"].tobytes()
            live = state["blob_slots"]
            ends = np.cumsum(self.blob_len[live])
            starts = ends - self.blob_len[live]
            self.blobs[live] = [data[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
            self.blob_bytes = int(self.blob_len.sum())
        else:
            self.data = state["data"].astype(np.float32)
