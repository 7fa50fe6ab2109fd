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
    generation: int = 0          # the writer's generation (FrameStore.new_generation): a restarted writer's
    #                              is higher, and the replay drops a late push of an older one

    def __len__(self) -> int:
        return len(self.ret)


@dataclass(kw_only=True)
class Drawn:
    """How a sampled batch was drawn, for loaders that merge the batches of several replay shards."""
    probs: np.ndarray | None = None      # float64 [B] each item's probability within its replay
    mass: float = 0.0                    # the replay's sampling mass: its priority total (pmdb) or size
    size: int = 0                        # items in the replay
    beta: float = 1.0                    # the replay's importance-sampling exponent now


@dataclass
class SampledBatch(Drawn):
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
    step: int = 0            # the learner's step count after the update: importance-sampling beta anneals by it


# --- sequences (R2D2) ----------------------------------------------------------------------------
# A sequence covers L = seq_len steps t = 0..L-1 of one episode and the L+1 observations o_0..o_L
# (o_L bootstraps the last step). `length` of them are real steps (1..L); a sequence never crosses
# an episode boundary, so a short tail is padded: steps >= length have reward 0 and discount 0, and
# their observations repeat o_length. `discount[t]` is gamma, or 0 when step t ended the episode by
# termination (a truncated episode bootstraps from o_length).

@dataclass
class SequencePush:
    """What one env stream sends to a sequence replay: new frames (as in Push), then whole sequences
    whose observations are the stream's frames start .. start + length."""
    stream: int
    frame_base: int
    frames: list | np.ndarray
    first: np.ndarray            # bool [k]
    depth: np.ndarray            # uint8 [k]
    start: np.ndarray            # int64 [S] stream frame number of o_0
    length: np.ndarray           # int64 [S] real steps, 1..L
    action: np.ndarray           # int64 [S, L]
    reward: np.ndarray           # float32 [S, L]
    discount: np.ndarray         # float32 [S, L]
    state: np.ndarray            # float32 [S, 2, H] the agent's recurrent (h, c) before it saw o_0
    prev_action: np.ndarray      # int64 [S] action taken before o_0, -1 at an episode start
    prev_reward: np.ndarray      # float32 [S] reward received before o_0, 0 at an episode start
    priority: np.ndarray | None = None  # float32 [S]; NaN or None: the replay's running maximum
    generation: int = 0          # as in Push

    def __len__(self) -> int:
        return len(self.length)


@dataclass
class SampledSequences(Drawn):
    """Sequences as the replay hands them out; image frames still compressed."""
    ids: np.ndarray              # int64 [B]
    weights: np.ndarray          # float32 [B]
    length: np.ndarray           # int64 [B]
    action: np.ndarray           # int64 [B, L]
    reward: np.ndarray           # float32 [B, L]
    discount: np.ndarray         # float32 [B, L]
    state: np.ndarray            # float32 [B, 2, H]
    prev_action: np.ndarray      # int64 [B]
    prev_reward: np.ndarray      # float32 [B]
    obs: np.ndarray | None = None        # vectors: float32 [B, L+1, D]
    blobs: list | None = None            # images: distinct compressed frames, parents first
    blob_dict: np.ndarray | None = None  # int32 [U]
    obs_index: np.ndarray | None = None  # int32 [B, L+1, S] rows of the decoded frames forming each stack
    frame_shape: tuple = ()


@dataclass
class SequenceBatch:
    """Decoded sequences, ready for torch.from_numpy."""
    obs: np.ndarray              # uint8 [B, L+1, S, 84, 84] or float32 [B, L+1, D]
    action: np.ndarray           # int64 [B, L]
    reward: np.ndarray           # float32 [B, L]
    discount: np.ndarray         # float32 [B, L]
    length: np.ndarray           # int64 [B]
    state: np.ndarray            # float32 [B, 2, H]
    prev_action: np.ndarray      # int64 [B]
    prev_reward: np.ndarray      # float32 [B]
    weights: np.ndarray          # float32 [B]
    ids: np.ndarray              # int64 [B]

    def __len__(self) -> int:
        return len(self.length)
