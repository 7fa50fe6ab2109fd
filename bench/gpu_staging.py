"""GPU check of the learner's batch staging (agents/roles.py: Stager, LearnerLoop.train_staged).

Batches of Pong's shape (DDQN, batch 512) go to the device the way the learner sends them: copied into
one of two reused sets of pinned host buffers, moved by non-blocking copies on a side stream, the next
batch staged while the current update runs. Every staged batch is compared, on the device, with the
batch it came from (distinct random contents each time), so a buffer overwritten while its copy was still
pending shows up as a mismatch. Then the same updates are timed three ways in one run: bare (batch
already on the device), staged with overlap, and plain (pageable host arrays copied synchronously before
each update). Prints one JSON object as its last line. On a machine without CUDA it runs the same
steps on the CPU (where staging is a no-op), as a dry run of the script itself.
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.config import parse_args  # noqa: E402
from agents.roles import LearnerLoop  # noqa: E402
from buffers import Batch  # noqa: E402
from envs import env_info  # noqa: E402


def batches(n: int, size: int, shape: tuple, actions: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    return [Batch(obs=rng.integers(0, 256, (size, *shape), dtype=np.uint8),
                  action=rng.integers(0, actions, size).astype(np.int64),
                  ret=rng.standard_normal(size).astype(np.float32),
                  discount=np.full(size, 0.99 ** 3, np.float32),
                  next_obs=rng.integers(0, 256, (size, *shape), dtype=np.uint8),
                  weights=rng.random(size).astype(np.float32), ids=np.arange(size, dtype=np.int64) + 1000 * i)
            for i in range(n)]


FIELDS = ("obs", "next_obs", "action", "ret", "discount", "weights")


def checksum(t: torch.Tensor) -> torch.Tensor:
    """Sum of the tensor's bytes: exact, computed wherever the tensor is (no host sync on the device)."""
    return t.contiguous().view(torch.uint8).sum(dtype=torch.int64)


def host_tensors(b: Batch, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The batch as the learner's tensors, copied plainly (pageable memory, blocking)."""
    out = {k: torch.from_numpy(np.asarray(getattr(b, k))).to(device) for k in FIELDS}
    out["action"] = out["action"].long()
    return out


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()
    cfg, _ = parse_args(["Pong", "--alg=DDQN", "--buffer=pmdb", "--batch_size=512"])
    info = env_info("Pong")
    loop = LearnerLoop(cfg, info, device)
    data = batches(8, cfg.alg.batch_size, info.obs_shape, info.num_actions)

    # 1. correctness: stage one ahead as the learner does; checksum each batch on the device, on the
    #    update's stream, when the update would read it; compare on the host at the end
    expected = [torch.stack([checksum(v) for v in host_tensors(b).values()]) for b in data]
    sums, held = [], loop.stage(data[0])
    for i in range(1, 200 if device == "cuda" else 12):
        current = held

        def meanwhile(i=i):
            nonlocal held
            held = loop.stage(data[i % len(data)])
        _, (dev, event) = current
        if event is not None:
            torch.cuda.current_stream().wait_event(event)
        sums.append(torch.stack([checksum(dev[k]) for k in FIELDS]))
        loop.train_staged(current, meanwhile)
    got = torch.stack(sums).cpu()
    mismatches = sum(int(not torch.equal(got[j], expected[j % len(data)])) for j in range(len(got)))
    pinned = all(buf.is_pinned() for pool in loop.stager.pools for buf in pool.values()) if device == "cuda" \
        else None

    # 2. time: bare, staged with overlap, plain synchronous copies
    def timed(step, n=100 if device == "cuda" else 3) -> float:
        for _ in range(5 if device == "cuda" else 1):
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        return n / (time.perf_counter() - t0)

    on_device = loop.learner.to_device(data[0])
    bare = timed(lambda: loop.learner.update(on_device))
    state = {"held": loop.stage(data[0]), "i": 0}

    def staged_step():
        def meanwhile():
            state["i"] += 1
            state["held"] = loop.stage(data[state["i"] % len(data)])
        loop.train_staged(state["held"], meanwhile)
    staged = timed(staged_step)
    plain = timed(lambda: loop.learner.update(host_tensors(data[0], device)))
    print(json.dumps({"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                      "batch_size": cfg.alg.batch_size,
                      "batches_checked": len(got), "mismatches": mismatches, "pinned": pinned,
                      "bare_updates_per_s": round(bare, 1), "staged_updates_per_s": round(staged, 1),
                      "plain_copy_updates_per_s": round(plain, 1), "staged_efficiency": round(staged / bare, 3)}))
    sys.exit(0 if mismatches == 0 and pinned is not False else 1)


if __name__ == "__main__":
    main()
