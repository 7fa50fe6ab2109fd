"""Int8 acting fidelity: does the agents' int8 copy of a trained network (--agent_int8) act as the network does?

    python bench/int8_fidelity.py model/DDQN_q/MinAtar-Breakout-v1/run/iter_N.pt --games 30

Plays --games whole games (the evaluator's protocol and epsilon) with the checkpoint's float32 network, and
as many with the same seeds acting on its int8 copy, which is made as an agent makes it: calibrated on the
last 64 observations (those of one game played first). On every step of the int8 games both networks see
the observation: `agreement` is the fraction of steps where their greedy actions agree, `q_error` the
median over steps of max |Q_int8 - Q| / max |Q|. Prints one JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.algorithms import algorithm  # noqa: E402
from agents.checkpoint import load_checkpoint, merge_checkpoint_config  # noqa: E402
from agents.config import parse_args  # noqa: E402
from agents.dqn import epsilon_greedy  # noqa: E402
from agents.roles import make_policy  # noqa: E402
from envs import env_info  # noqa: E402
from envs.batch import make_env_batch  # noqa: E402


def play(policy, env, int8: bool, rng, eps: float, seen: list) -> float:
    """The raw return of one whole game acting on the int8 copy or the float network; with int8, `seen`
    gets (agree, q_error) of every step."""
    obs = env.reset()
    total, done = 0.0, False
    while not done:
        q = policy.net(torch.as_tensor(np.asarray(obs))).numpy()
        if int8:
            q8 = policy.q_values(obs)
            seen.append((q8[0].argmax() == q[0].argmax(), np.abs(q8 - q).max() / max(np.abs(q).max(), 1e-8)))
            q = q8
        obs, _, term, trunc, info = env.step(epsilon_greedy(q, eps, rng).tolist())
        total += info["raw_reward"][0]
        done = term[0] or trunc[0]
    return float(total)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--games", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    env_name = ckpt["config"]["run"]["env"]
    cfg, given = parse_args([env_name, f"--resume={args.checkpoint}"])
    cfg = merge_checkpoint_config(cfg, given, ckpt["config"], args.checkpoint)
    info = env_info(env_name)
    policy = make_policy(cfg, info, 0, 1, explore=False, seed=0)
    policy.load(ckpt["learner"][algorithm(cfg).weights_key])
    policy.int8 = True   # the evaluator's policy acting as an agent does: on its int8 copy
    eps = cfg.run.eval_epsilon
    returns, seen = {}, []
    with torch.inference_mode():
        play(policy, make_env_batch(env_name, 1, train=False, seed=99_999), True, np.random.default_rng(0),
             eps, [])                # one game fills the agent's last-64 ring
        policy._int8_net = None     # and the copy is made anew from it, as at a new weight version
        for kind in ("float32", "int8"):
            env = make_env_batch(env_name, 1, train=False, seed=20_000)
            rng = np.random.default_rng(1)
            returns[kind] = [play(policy, env, kind == "int8", rng, eps, seen) for _ in range(args.games)]
    agree, err = np.array(seen, dtype=float).T
    print(json.dumps({
        "env": env_name, "checkpoint": args.checkpoint, "games": args.games,
        "float32_mean": round(float(np.mean(returns["float32"])), 2),
        "float32_std": round(float(np.std(returns["float32"])), 2),
        "int8_mean": round(float(np.mean(returns["int8"])), 2),
        "int8_std": round(float(np.std(returns["int8"])), 2),
        "agreement": round(float(agree.mean()), 4), "q_error": round(float(np.median(err)), 4),
        "steps": len(seen),
    }))


if __name__ == "__main__":
    main()
