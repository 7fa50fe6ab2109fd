"""Replay throughput on one core: transitions inserted per second (replay side), and transitions per
second decoded into batches of 256 stacked Atari observations by the loader-side code, against the bare
lz4 decompression of the same frames in the same run.

decode_efficiency = (time bare lz4 needs to decompress every frame blob those batches used, dictionary
parents included) / (time the loader's full batch decode took: decompression, assembly and stacking).
Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import lz4.block
import numpy as np

from _fill import random_pushes
from buffers import PrioritizedReplay, decode_batch
from buffers.frames import FrameDecoder


def bare_lz4(batches) -> float:
    """Seconds to decompress the blobs of these sampled batches, nothing else."""
    decompress = lz4.block.decompress
    size = 84 * 84
    t0 = time.perf_counter()
    for sb in batches:
        raws = [None] * len(sb.blobs)
        for i, (blob, d) in enumerate(zip(sb.blobs, sb.blob_dict.tolist())):
            raws[i] = decompress(blob, uncompressed_size=size) if d < 0 else \
                decompress(blob, uncompressed_size=size, dict=raws[d])
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--game", default="Pong")
    p.add_argument("--transitions", type=int, default=50_000)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})   # one core
    pushes = list(random_pushes(args.game, args.transitions, seed=0))
    replay = PrioritizedReplay(args.transitions, (4, 84, 84), seed=0)
    t0 = time.perf_counter()
    for push in pushes:
        replay.add(push)
    insert_s = time.perf_counter() - t0
    inserted = replay.inserted

    ratios, decoded, sampled, bare = [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        batches = [replay.sample(args.batch_size) for _ in range(args.batches)]
        sample_s = time.perf_counter() - t0
        decoder = FrameDecoder((84, 84))
        t0 = time.perf_counter()
        for sb in batches:
            decode_batch(sb, decoder)
        decode_s = time.perf_counter() - t0
        bare_s = bare_lz4(batches)
        n = args.batches * args.batch_size
        decoded.append(n / decode_s)
        sampled.append(n / sample_s)
        bare.append(sum(len(sb.blobs) for sb in batches) / bare_s)
        ratios.append(bare_s / decode_s)
    frames_per_transition = float(np.mean([len(sb.blobs) / args.batch_size for sb in batches]))
    print(json.dumps({
        "game": args.game,
        "inserts_per_s": round(inserted / insert_s),
        "samples_per_s": round(float(np.median(sampled))),
        "decoded_per_s": round(float(np.median(decoded))),
        "bare_lz4_frames_per_s": round(float(np.median(bare))),
        "decode_efficiency": round(float(np.median(ratios)), 3),
        "frames_decoded_per_transition": round(frames_per_transition, 2),
        "batch_size": args.batch_size,
    }))


if __name__ == "__main__":
    main()
