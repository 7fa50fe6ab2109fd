"""Bytes per transition held by a full pmdb replay of Atari transitions (frames, records, trees, Python
object overhead), measured with tracemalloc: every allocation the replay keeps is counted, nothing is
estimated from array sizes. Random policy, the project's own wrappers, 30,000 transitions per game.

`--minatar` measures the five MinAtar games instead, each through both of the replay's paths: the image
path (each frame once, lz4 against its predecessor) and the vector path (float32 rows, as CartPole's).

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
from envs import env_info

GAMES = ("Pong", "Asterix", "WizardOfWor")
MINATAR = tuple(f"MinAtar/{g}-v1" for g in ("Breakout", "SpaceInvaders", "Asterix", "Freeway", "Seaquest"))
BUFFERS = os.path.dirname(os.path.abspath(buffers.__file__))


def measure(game: str, transitions: int, seed: int, image: bool = True) -> dict:
    """Allocations still alive after the fill whose Python frame lies in buffers/ (frames, records, trees,
    the bytes objects lz4 returned): the replay's holdings, without the emulator's or the test's."""
    obs_shape = env_info(game).obs_shape
    frame_shape = obs_shape[1:]
    gc.collect()
    tracemalloc.start()
    replay = PrioritizedReplay(transitions, obs_shape if image else (int(np.prod(obs_shape)),), seed=seed)
    for push in random_pushes(game, transitions, seed=seed, image=image):
        replay.add(push)
    del push
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, os.path.join(BUFFERS, "*"))])
    held = sum(stat.size for stat in snap.statistics("filename"))
    tracemalloc.stop()
    n = len(replay)
    fs = replay.frames
    if not image:
        return {"transitions": n, "bytes_per_transition": held / n, "frames_per_transition": fs.live / n}
    live = np.flatnonzero(fs.blob_len > 0)
    # for scale: the same frames compressed one by one without a dictionary
    order = live[np.argsort(fs.depth[live], kind="stable")]
    parents = fs.prev[order]
    pos = {s: i for i, s in enumerate(order.tolist())}
    blob_dict = np.array([pos[p] if fs.depth[s] > 0 else -1 for s, p in zip(order.tolist(), parents.tolist())])
    raw = decode_frames(fs.blobs[order].tolist(), blob_dict, frame_shape)
    plain = float(np.mean([len(lz4.block.compress(f.tobytes(), store_size=False)) for f in raw]))
    return {
        "transitions": n,
        "bytes_per_transition": held / n,
        "frames_per_transition": fs.live / n,
        "compressed_frame_bytes": fs.blob_bytes / fs.live,
        "plain_lz4_frame_bytes": plain,
        "uncompressed_bytes_per_transition": (held - fs.blob_bytes + fs.live * int(np.prod(frame_shape))) / n,
    }


def minatar(transitions: int, seed: int) -> dict:
    """Both storage paths on every MinAtar game; the JSON says which is smaller."""
    per_game = {}
    for game in MINATAR:
        img, vec = measure(game, transitions, seed), measure(game, transitions, seed, image=False)
        per_game[game] = {"image": round(img["bytes_per_transition"], 1),
                          "vector": round(vec["bytes_per_transition"], 1),
                          "compressed_frame_bytes": round(img["compressed_frame_bytes"], 1),
                          "plain_lz4_frame_bytes": round(img["plain_lz4_frame_bytes"], 1)}
        print(game, json.dumps(per_game[game]), flush=True)
    image = float(np.mean([g["image"] for g in per_game.values()]))
    vector = float(np.mean([g["vector"] for g in per_game.values()]))
    return {"image_bytes_per_transition": round(image, 1), "vector_bytes_per_transition": round(vector, 1),
            "smaller": "image" if image < vector else "vector", "vector_over_image": round(vector / image, 1),
            "per_game": per_game, "transitions_per_game": transitions}

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transitions", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minatar", action="store_true", help="the MinAtar games, image path against vector path")
    args = p.parse_args()
    if args.minatar:
        print(json.dumps(minatar(args.transitions, args.seed)))
        return
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
