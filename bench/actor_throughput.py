"""Actor throughput: Pong, 2 agents, learner not training (replay_start above the run length), fixed wall time.

In the same run: env steps/s of one bare single-process loop (the project's wrappers plus the same network
choosing actions on one CPU thread), and the whole program's total env steps/s into the replay (the steady
state: the median of the driver's status-window rates, start-up excluded).
efficiency = system / (bare x min(agents, cores)). Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from agents.config import parse_args  # noqa: E402
from agents.dqn import epsilon_greedy  # noqa: E402
from envs import make_env  # noqa: E402
from networks import QNetwork  # noqa: E402


def bare_loop(game: str, seconds: float) -> float:
    """Env steps per second of the plainest loop: wrappers + network forward, nothing else."""
    torch.set_num_threads(1)
    env = make_env(game, train=True, seed=0)
    net = QNetwork(env.observation_space.shape, env.action_space.n).eval().requires_grad_(False)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        q = net(torch.as_tensor(obs[None])).numpy()
        obs, _, term, trunc, _ = env.step(int(epsilon_greedy(q, 0.4, rng)[0]))
        if term or trunc:
            obs, _ = env.reset()
        steps += 1
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--game", default="Pong")
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--bare_seconds", type=float, default=20.0)
    args = p.parse_args()
    cores = os.cpu_count()
    bare = bare_loop(args.game, args.bare_seconds)
    with tempfile.TemporaryDirectory() as d:
        cfg, given = parse_args([args.game, f"--num_agents={args.agents}", "--buffer=pmdb", "--replay_size=1000000",
                                 "--replay_start=1000000", f"--max_time={args.seconds}", "--eval_period=0",
                                 "--status_period=3", f"--logdir={d}/logs", f"--modeldir={d}/model",
                                 f"--num_cpus={cores}"])
        from agents.driver import train
        summary = train(cfg, given)
        acc = EventAccumulator(os.path.join(summary["logdir"])).Reload()
        rates = [e.value for e in acc.Scalars("charts/env_steps_per_s")][2:]   # skip start-up windows
    system = float(np.median(rates))
    print(json.dumps({
        "game": args.game, "agents": args.agents, "cores": cores,
        "system_steps_per_s": round(system, 1), "bare_steps_per_s": round(bare, 1),
        "efficiency": round(system / (bare * min(args.agents, cores)), 3),
        "env_steps": summary["env_steps"], "wall_s": summary["wall_s"],
    }))


if __name__ == "__main__":
    main()
