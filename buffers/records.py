"""Typed messages between roles: an agent's push, a sampled (still compressed) batch, a decoded batch,
a priority update. numpy arrays inside, so they pickle compactly and torch.from_numpy takes them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Push:
    """What one env stream sends to the replay: new frames, then transitions that reference frames
    by the stream's own frame numbers (this push's or, within the stream window, earlier ones)."""
    stream: int
    frame_base: int              # stream frame number of frames[0]
    frames: list | np.ndarray    # lz4 blobs (images) or float32 [k, D] (vectors)
    first: np.ndarray            # bool [k]: episode start (its stack predecessor is itself)
    depth: np.ndarray            # uint8 [k]: position in the lz4 dictionary chain, 0 = keyframe
    obs: np.ndarray              # int64 [T] frame number of s_t
    next_obs: np.ndarray         # int64 [T] frame number of s_{t+m}
    action: np.ndarray           # [T] or [T, A]
    ret: np.ndarray              # float32 [T] n-step return
    discount: np.ndarray         # float32 [T] gamma^m, 0 at termination
    priority: np.ndarray | None = None  # float32 [T]; NaN or None: the replay's running maximum

    def __len__(self) -> int:
        return len(self.ret)


@dataclass
class SampledBatch:
    """A batch as the replay hands it out: image frames still lz4-compressed, to be decoded by a loader."""
    ids: np.ndarray              # int64 [B] transition ids, for priority updates
    weights: np.ndarray          # float32 [B] importance weights (1 for uniform replay)
    action: np.ndarray
    ret: np.ndarray
    discount: np.ndarray
    obs: np.ndarray | None = None        # vectors: float32 [B, D] already
    next_obs: np.ndarray | None = None
    blobs: list | None = None            # images: the distinct compressed frames needed, parents first
    blob_dict: np.ndarray | None = None  # int32 [U]: index of each blob's dictionary blob, -1 for keyframes
    obs_index: np.ndarray | None = None  # int32 [B, S] rows of the decoded frames forming obs
    next_index: np.ndarray | None = None
    frame_shape: tuple = ()


@dataclass
class Batch:
    """A decoded batch, ready for torch.from_numpy (no copy)."""
    obs: np.ndarray          # uint8 [B, S, 84, 84] or float32 [B, D]
    action: np.ndarray       # [B] int64 or [B, A] float32
    ret: np.ndarray          # float32 [B]
    discount: np.ndarray     # float32 [B]
    next_obs: np.ndarray
    weights: np.ndarray      # float32 [B]
    ids: np.ndarray          # int64 [B]

    def __len__(self) -> int:
        return len(self.ret)


@dataclass
class PriorityUpdate:
    ids: np.ndarray          # int64 [B] transition ids as sampled
    priority: np.ndarray     # float32 [B] new |TD error| (before the exponent alpha)
