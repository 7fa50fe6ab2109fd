"""Learner throughput through the whole pipeline (replay actor -> loaders -> learner; agents paused, replay
pre-filled) against the bare torch update on the same device with the same batch, in the same run.

Defaults: DDQN, batch 512, the Nature network on Atari frames (Pong). Prints one JSON object as its last line.
bench/r2d2_learner.py runs the same measurement for R2D2 sequence batches.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ray  # noqa: E402
import torch  # noqa: E402

from agents.algorithms import decoder_for  # noqa: E402
from agents.config import parse_args  # noqa: E402
from agents.actors import Learner, Loader, Replay  # noqa: E402
from agents.driver import init_ray  # noqa: E402
from agents.roles import EnvRunner, LearnerLoop  # noqa: E402
from envs import env_info  # noqa: E402


def fill(cfg, info, replay_handle, steps: int) -> None:
    """Transitions (or sequences) from the project's own agent code with untrained weights, pushed to the replay actor."""
    def send(pushes):
        ray.get(replay_handle.add.remote(pushes))
        return True
    runner = EnvRunner(0, cfg, info, send=send)
    while runner.steps < steps:
        runner.run(1000)


def measure(flags: list[str], env: str, loaders: int, fill_steps: int, seconds: float) -> dict:
    """Pipeline and bare updates per second for the run that `flags` describe, on this machine's device."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg, _ = parse_args([env, *flags, f"--num_loaders={loaders}", "--replay_start=1", "--speed=1000000",
                         f"--num_gpus={1 if device == 'cuda' else 0}", "--num_agents=1"])
    info = env_info(env)
    init_ray(cfg)
    replay = ray.remote(Replay).options(num_cpus=0).remote(cfg, info)
    fill(cfg, info, replay, fill_steps)
    ray.get(replay.stats.remote())
    handles = [ray.remote(Loader).options(num_cpus=0).remote(replay, cfg) for _ in range(loaders)]
    learner = ray.remote(Learner).options(num_cpus=0, num_gpus=1 if device == "cuda" else 0).remote(
        cfg, info, handles, device)
    ray.get(learner.train.remote(5.0))           # warm up: queues full, kernels compiled
    res = ray.get(learner.train.remote(seconds))
    pipeline = res["updates"] / seconds

    # the bare update: same learner code, same device, same batch, batch already on the device
    bare_learner = LearnerLoop(cfg, info, device)
    sb = ray.get(replay.sample.remote(cfg.alg.batch_size))
    batch = bare_learner.learner.to_device(decoder_for(cfg)(sb))
    for _ in range(3):
        bare_learner.learner.update(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min(seconds, 20.0):
        bare_learner.learner.update(batch)
        n += 1
    if device == "cuda":
        torch.cuda.synchronize()
    bare = n / (time.perf_counter() - t0)
    ray.shutdown()
    return {"env": env, "alg": cfg.alg.alg, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "batch_size": cfg.alg.batch_size, "loaders": loaders,
            "pipeline_updates_per_s": round(pipeline, 2), "bare_updates_per_s": round(bare, 2),
            "efficiency": round(pipeline / bare, 3), "torch_threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pong")
    p.add_argument("--batch_size", type=int, default=512)
    p.add_argument("--loaders", type=int, default=4)
    p.add_argument("--fill", type=int, default=20_000)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    flags = ["--alg=DDQN", "--buffer=pmdb", f"--batch_size={args.batch_size}"]
    print(json.dumps(measure(flags, args.env, args.loaders, args.fill, args.seconds)))


if __name__ == "__main__":
    main()
