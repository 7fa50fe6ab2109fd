"""Loader side: turn a SampledBatch (frames still compressed) into a Batch of contiguous numpy arrays."""
from __future__ import annotations

from buffers.frames import FrameDecoder
from buffers.records import Batch, SampledBatch


def decode_batch(sb: SampledBatch, decoder: FrameDecoder | None = None) -> Batch:
    """Decompress each needed frame once and stack: obs uint8 [B, S, H, W] (or float32 [B, D] as is).

    A loader passes its own `decoder` so that the decompression workspace is reused across batches.
    """
    if sb.blobs is None:
        obs, next_obs = sb.obs, sb.next_obs
    else:
        frames = (decoder or FrameDecoder(sb.frame_shape))(sb.blobs, sb.blob_dict)   # [U, H, W]
        obs, next_obs = frames[sb.obs_index], frames[sb.next_index]                  # [B, S, H, W]
    return Batch(obs=obs, action=sb.action, ret=sb.ret, discount=sb.discount, next_obs=next_obs,
                 weights=sb.weights, ids=sb.ids)
