"""Actor throughput: Pong, 2 agents, learner not training (replay_start above the run length), fixed wall time.

In the same run:
- limit: env steps/s of ALE's C++ vector env alone (the agent's number of envs, random actions, one thread);
- bare: env steps/s of the plainest agent loop on one thread: the agent's env batch (envs/batch.py) and one batched
  forward pass of the same network per step, in inference mode, nothing else;
- system: the whole program's total env steps/s into the replay (the steady state: the median of the driver's
  status-window rates, start-up excluded).
limit and bare are each the mean of a measurement just before and one just after the system run.
efficiency = system / (bare x min(agents, cores)); limit_fraction = system / (limit x min(agents, cores)).
Prints one JSON object as its last line.
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
from agents.roles import make_policy  # noqa: E402
from envs import env_info  # noqa: E402
from envs.batch import AtariBatch, make_env_batch  # noqa: E402


def bare_loop(game: str, envs: int, seconds: float, flags: list[str]) -> float:
    """Env steps per second of the plainest agent loop: env batch + batched forward of the agents' network (the
    preset's: dueling on Atari, int8 where the preset says --agent_int8), nothing else."""
    torch.set_num_threads(1)
    batch = make_env_batch(game, envs, train=True, seed=0)
    cfg, _ = parse_args([game, f"--envs_per_agent={envs}", *flags])
    policy = make_policy(cfg, env_info(game), 0, envs, explore=True, seed=0)
    rng = np.random.default_rng(0)
    obs = batch.reset()
    steps, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - t0 < seconds:
            q = policy.q_values(obs)
            obs, _, term, trunc, _ = batch.step(epsilon_greedy(q, 0.4, rng))
            for j in np.flatnonzero(term | trunc):   # the list of single envs resets here, the C++ env itself
                new = batch.reset_one(j)
                if new is not None:
                    obs[j] = new
            steps += envs
    return steps / (time.perf_counter() - t0)


def limit_loop(game: str, envs: int, seconds: float) -> float:
    """Env steps per second of ALE's C++ vector env alone: random actions, one thread, the agent's settings."""
    vec = AtariBatch(game, envs, train=True, seed=0).vec
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    n = vec.single_action_space.n
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        vec.step(rng.integers(0, n, envs))
        steps += envs
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--game", default="Pong")
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--bare_seconds", type=float, default=20.0)
    p.add_argument("--envs_per_agent", type=int, default=0, help="0: the Atari preset's")
    p.add_argument("--flags", default="", help="more main.py flags for the agents, e.g. '--no-agent_int8'")
    args = p.parse_args()
    cores = os.cpu_count()
    envs = args.envs_per_agent or parse_args([args.game])[0].run.envs_per_agent
    flags = args.flags.split()
    # limit and bare are measured half before and half after the system run, and averaged: on a shared machine
    # the speed drifts over minutes, and a ratio of figures taken at different times would carry the drift
    limit_runs = [limit_loop(args.game, envs, args.bare_seconds / 4)]
    bare_runs = [bare_loop(args.game, envs, args.bare_seconds / 2, flags)]
    with tempfile.TemporaryDirectory() as d:
        cfg, given = parse_args([args.game, f"--num_agents={args.agents}", "--buffer=pmdb", "--replay_size=1000000",
                                 "--replay_start=1000000", f"--max_time={args.seconds}", "--eval_period=0",
                                 "--status_period=3", f"--logdir={d}/logs", f"--modeldir={d}/model",
                                 f"--envs_per_agent={envs}",
                                 f"--num_cpus={cores}", *flags])
        from agents.driver import train
        summary = train(cfg, given)
        acc = EventAccumulator(os.path.join(summary["logdir"])).Reload()
        rates = [e.value for e in acc.Scalars("charts/env_steps_per_s")][2:]   # skip start-up windows
    system = float(np.median(rates))
    bare_runs.append(bare_loop(args.game, envs, args.bare_seconds / 2, flags))
    limit_runs.append(limit_loop(args.game, envs, args.bare_seconds / 4))
    bare, limit = float(np.mean(bare_runs)), float(np.mean(limit_runs))
    print(json.dumps({
        "game": args.game, "agents": args.agents, "cores": cores, "envs_per_agent": envs,
        "agent_int8": cfg.run.agent_int8, "flags": args.flags,
        "system_steps_per_s": round(system, 1), "bare_steps_per_s": round(bare, 1),
        "limit_steps_per_s": round(limit, 1),
        "bare_before_after": [round(b, 1) for b in bare_runs], "limit_before_after": [round(x, 1) for x in limit_runs],
        "efficiency": round(system / (bare * min(args.agents, cores)), 3),
        "limit_fraction": round(system / (limit * min(args.agents, cores)), 3),
        "env_steps": summary["env_steps"], "wall_s": summary["wall_s"],
    }))


if __name__ == "__main__":
    main()
