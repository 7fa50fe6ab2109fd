"""Long seeded soak of the replay against its reference model (test/replay_model.py).

Random operation sequences (env steps of interleaved streams with episodes of random length, pushes of
any size, samples checked item by item against the model, priority updates with stale ids, agent
restarts with late pushes, save/load) run over every kind of replay: transitions and R2D2 sequences,
image and vector frames, mmdb and pmdb, one to three shards. Capacities run from 1,000 to 20,000 steps
per shard, placed just below, at and above the frame store's growth points (1,024 slots, then x1.25 +
1,024) so that growth happens while frames are being freed. After every replay operation the cheap invariants are
checked (reference counts non-negative, free + live slots = all slots, ring ids, sum-tree sums), and a
full recount of every reference every `--full_every` replay operations and at the end of each case.

A case that raises is a failure: its seed, configuration and error are printed, and the soak goes on.
Prints one JSON object as its last line: operations, cases, failures (and a breakdown).

    python bench/replay_soak.py                       # >= 1e6 operations, under 10 minutes on 2 cores
    python bench/replay_soak.py --operations=40000 --cases=8 --max_capacity=2500   # CI's short version
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from test.replay_model import Case, Harness, random_ops  # noqa: E402


def growth_points(first: int = 1024, limit: int = 25_000) -> list[int]:
    """The frame store's sizes as it grows from `first` slots (FrameStore._alloc: x1.25 + 1,024)."""
    points = [first]
    while points[-1] < limit:
        points.append(int(points[-1] * 1.25) + 1024)
    return points


def frames_per_item(case: Case) -> float:
    """About how many distinct frames one live item keeps in the store."""
    return (case.seq_len - case.overlap) if case.sequences else 1.0


def make_cases(n: int, seed: int, max_capacity: int = 20_000) -> list[Case]:
    """`n` configurations cycling over the replay kinds and, independently, over the growth points: each
    shard's capacity, in steps (R2D2: sequences of that many new steps in all), near one of them and
    within 1,000..`max_capacity`."""
    rng = np.random.default_rng(seed)
    points = [p for p in growth_points() if p <= 1.05 * max_capacity]   # 1,024 .. 20,317 slots
    kinds = [(seq, image, buf) for seq in (False, True) for image in (True, False) for buf in ("mmdb", "pmdb")]
    cases = []
    for i in range(n):
        seq, image, buf = kinds[i % len(kinds)]
        case = Case(sequences=seq, image=image, buffer=buf, streams=int(rng.integers(1, 5)),
                    shards=int(rng.integers(1, 4)), frame_slots=1024, writer_priorities=bool(rng.random() < 0.7),
                    stack=int(rng.choice([1, 4])), nstep=int(rng.integers(1, 6)), seq_len=8,
                    overlap=int(rng.integers(0, 5)), p_term=float(rng.choice([0.01, 0.05, 0.2])),
                    p_trunc=float(rng.choice([0.0, 0.01, 0.05])), keyframe_interval=int(rng.choice([4, 8])),
                    seed=int(rng.integers(2 ** 31)))
        # frames a shard holds, near a growth point: capacity in items (R2D2: sequences of new frames each)
        frames = points[i % len(points)] * float(rng.choice([0.9, 0.97, 1.0, 1.05]))
        per = frames_per_item(case)
        cases.append(replace(case, capacity=int(np.clip(frames, 1000, max_capacity) / per)))
    return cases


def soak_case(case: Case, operations: int, full_every: int) -> dict:
    """Run about `operations` operations (env steps count one each) on one case; raise on any mismatch."""
    h = Harness(case, full_checks=False)
    rng = np.random.default_rng(case.seed)
    replay_ops = 0
    while h.counts["operations"] < operations:
        for op in random_ops(rng, case, 200):
            h.run([op])
            if op[0] != "steps":
                replay_ops += 1
                if replay_ops % full_every == 0:
                    h.full_checks = True
                    for k in range(case.shards):
                        h.check(k)
                    h.full_checks = False
    h.full_checks = True
    for k in range(case.shards):
        h.check(k)
    return {**h.counts, "replay_operations": replay_ops,
            "overwrites": sum(r.inserted for r in h.replays) / (case.capacity * case.shards),
            "frame_slots": max(r.frames.slots for r in h.replays)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--operations", type=int, default=1_050_000, help="operations in all (env steps count one)")
    p.add_argument("--cases", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full_every", type=int, default=500, help="replay operations between full recounts")
    p.add_argument("--max_capacity", type=int, default=20_000, help="largest capacity per shard, in steps")
    args = p.parse_args(argv)
    cases = make_cases(args.cases, args.seed, args.max_capacity)
    # operations in proportion to the steps all of a case's shards hold, so that every case fills its rings alike
    weights = np.array([c.capacity * frames_per_item(c) * c.shards for c in cases])
    budgets = np.maximum(2000, args.operations * weights / weights.sum()).astype(int)
    totals: dict[str, float] = {}
    failures, grew = [], 0
    t0 = time.monotonic()
    for i, (case, budget) in enumerate(zip(cases, budgets)):
        start = time.monotonic()
        try:
            out = soak_case(case, int(budget), args.full_every)
        except Exception as e:   # a failure: report it whole and go on with the next case
            failures.append({"case": asdict(case), "error": f"{type(e).__name__}: {e}"})
            print(f"FAILED {asdict(case)}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            continue
        grew += out["frame_slots"] > 1024
        for k, v in out.items():
            if k != "frame_slots":
                totals[k] = totals.get(k, 0) + v
        print(f"case {i}: {'seq' if case.sequences else 'trans'} "
              f"{'img' if case.image else 'vec'} {case.buffer} capacity {case.capacity} x{case.shards} shard(s), "
              f"{case.streams} stream(s): {out['operations']:,} ops, {out['overwrites']:.1f} fills, "
              f"{out['frame_slots']:,} frame slots, {time.monotonic() - start:.1f} s", flush=True)
    result = {"operations": int(totals.get("operations", 0)), "cases": len(cases), "failures": len(failures),
              "replay_operations": int(totals.get("replay_operations", 0)),
              "items_checked": int(totals.get("items_checked", 0)), "pushes": int(totals.get("pushes", 0)),
              "samples": int(totals.get("samples", 0)), "priority_updates": int(totals.get("updates", 0)),
              "restarts": int(totals.get("restarts", 0)), "stale_pushes_refused": int(totals.get("stale_pushes", 0)),
              "saves": int(totals.get("saves", 0)), "mean_ring_fills": round(totals.get("overwrites", 0) / len(cases), 1),
              "cases_that_grew_the_frame_store": grew, "seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
