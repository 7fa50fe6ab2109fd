"""Bytes per transition held by a full pmdb replay of Atari transitions (frames, records, trees, Python
object overhead), measured with tracemalloc: every allocation the replay keeps is counted, nothing is
estimated from array sizes. Random policy, the project's own wrappers, 30,000 transitions per game.

Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import tracemalloc

import lz4.block
import numpy as np

from _fill import random_pushes  # noqa: I001  (puts the project on sys.path first)
import buffers
from buffers import PrioritizedReplay
from buffers.frames import decode_frames

GAMES = ("Pong", "Asterix", "WizardOfWor")
FRAME_BYTES = 84 * 84
BUFFERS = os.path.dirname(os.path.abspath(buffers.__file__))


def measure(game: str, transitions: int, seed: int) -> dict:
    """Allocations still alive after the fill whose Python frame lies in buffers/ (frames, records, trees,
    the bytes objects lz4 returned): the replay's holdings, without the emulator's or the test's."""
    gc.collect()
    tracemalloc.start()
    replay = PrioritizedReplay(transitions, (4, 84, 84), seed=seed)
    for push in random_pushes(game, transitions, seed=seed):
        replay.add(push)
    del push
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, os.path.join(BUFFERS, "*"))])
    held = sum(stat.size for stat in snap.statistics("filename"))
    tracemalloc.stop()
    n = len(replay)
    fs = replay.frames
    live = np.flatnonzero(fs.blob_len > 0)
    # for scale: the same frames compressed one by one without a dictionary
    order = live[np.argsort(fs.depth[live], kind="stable")]
    parents = fs.prev[order]
    pos = {s: i for i, s in enumerate(order.tolist())}
    blob_dict = np.array([pos[p] if fs.depth[s] > 0 else -1 for s, p in zip(order.tolist(), parents.tolist())])
    raw = decode_frames(fs.blobs[order].tolist(), blob_dict, (84, 84))
    plain = float(np.mean([len(lz4.block.compress(f.tobytes(), store_size=False)) for f in raw]))
    return {
        "transitions": n,
        "bytes_per_transition": held / n,
        "frames_per_transition": fs.live / n,
        "compressed_frame_bytes": fs.blob_bytes / fs.live,
        "plain_lz4_frame_bytes": plain,
        "uncompressed_bytes_per_transition": (held - fs.blob_bytes + fs.live * FRAME_BYTES) / n,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transitions", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    per_game = {}
    for game in GAMES:
        per_game[game] = measure(game, args.transitions, args.seed)
        print(game, json.dumps({k: round(v, 1) for k, v in per_game[game].items()}), flush=True)
    bpt = float(np.mean([g["bytes_per_transition"] for g in per_game.values()]))
    out = {
        "bytes_per_transition": round(bpt, 1),
        "per_game": {g: round(v["bytes_per_transition"], 1) for g, v in per_game.items()},
        "uncompressed_bytes_per_transition": round(float(np.mean(
            [g["uncompressed_bytes_per_transition"] for g in per_game.values()])), 1),
        "plain_lz4_frame_bytes": round(float(np.mean([g["plain_lz4_frame_bytes"] for g in per_game.values()])), 1),
        "gb_per_million": round(bpt * 1e6 / 1e9, 3),
        "transitions_per_game": args.transitions,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
