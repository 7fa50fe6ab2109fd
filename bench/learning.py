"""Learning benchmark: does each algorithm learn each task of a suite with its preset?

    python bench/learning.py classic --seeds 5
    python bench/learning.py continuous --seeds 3
    python bench/learning.py minatar --seeds 3              # 1M env steps per run: hours on 2 cores
    python bench/learning.py classic --only CartPole-v1:DQN --set lr=1e-3   # a tuning experiment

Each env x algorithm x seed is one run of `python main.py ENV --alg=ALG --seed=S` with nothing else but
the run's name and folders (the preset decides the rest), then `--test` of its final checkpoint. Runs share
one local Ray, one after another. Prints a Markdown table (one row per env x algorithm: the final test mean
over seeds ± its std across seeds, each seed's final test mean, the best evaluation, the env step at which
the evaluation first reached the reference, env steps, wall time) and one JSON object as its last line.
The logs stay in --logdir (logs/<env>/<suffix>), so `python -m exp.table` can add them to exp/.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

# env -> (algorithms, reference score, where the reference comes from). A run "reaches" the reference when
# its final checkpoint's --test mean is at least the reference.
SUITES = {
    "classic": {
        "CartPole-v1": (("DQN", "DDQN", "Rainbow", "R2D2"), 475.0, "issue floor (RL Zoo DQN: 500 ± 0 at 50k)"),
        "Acrobot-v1": (("DQN",), -76.6, "RL Zoo DQN: -76.6 ± 11.8 at 100k"),
        "MountainCar-v0": (("DQN",), -100.8, "RL Zoo DQN: -100.8 ± 9.9 at 120k"),
    },
    "minatar": {   # the authors publish DQN curves, not tables: exp/README.md cites what can be read off them
        "MinAtar/Breakout-v1": (("DDQN", "Rainbow"), None, "Young and Tian 2019: curves only"),
        "MinAtar/SpaceInvaders-v1": (("DDQN", "Rainbow"), None, "Young and Tian 2019: curves only"),
    },
    "continuous": {
        "Pendulum-v1": (("DDPG", "D4PG"), -200.0, "issue floor (RL Zoo DDPG: -152.1 ± 94.3 at 20k)"),
    },
}


def run_one(env: str, alg: str, seed: int, args, extra: list[str]) -> dict:
    from agents.config import parse_args, validate
    from agents.driver import train
    from agents.play import test

    suffix = f"{args.tag}_{alg.lower()}_s{seed}"
    folders = [f"--logdir={args.logdir}", f"--modeldir={args.modeldir}"]
    cfg, given = parse_args([env, f"--alg={alg}", f"--seed={seed}", f"--suffix={suffix}", "--status_period=60",
                             *folders, *extra])
    validate(cfg)
    started = time.monotonic()
    summary = train(cfg, given)
    wall = time.monotonic() - started
    tcfg, tgiven = parse_args([env, f"--alg={alg}", "--test", f"--resume={summary['checkpoint']}", *folders])
    result = test(tcfg, tgiven)
    return {"env": env, "alg": alg, "seed": seed, "suffix": suffix, "test_mean": round(result["mean"], 2),
            "test_std": round(result["std"], 2), "test_episodes": result["episodes"],
            "best_eval": summary["best_eval_return"], "evaluations": summary["evaluations"],
            "env_steps": summary["env_steps"], "learner_steps": summary["learner_steps"], "wall_s": round(wall, 1),
            "preset": cfg.preset}


def aggregate(runs: list[dict], reference: float | None) -> dict:
    """One table row from a cell's runs (pure)."""
    tests = [r["test_mean"] for r in runs]
    firsts = []
    for r in runs:
        hit = [step for step, mean in r["evaluations"] if reference is not None and mean >= reference]
        firsts.append(hit[0] if hit else None)
    return {"env": runs[0]["env"], "alg": runs[0]["alg"], "seeds": len(runs),
            "test_mean": round(float(np.mean(tests)), 2), "test_std_across_seeds": round(float(np.std(tests)), 2),
            "test_means": tests, "best_evals": [r["best_eval"] for r in runs],
            "first_step_at_reference": firsts, "reference": reference,
            "seeds_at_reference": None if reference is None else sum(t >= reference for t in tests),
            "env_steps": [r["env_steps"] for r in runs], "wall_s": [r["wall_s"] for r in runs]}


def markdown(rows: list[dict], sources: dict[str, str]) -> str:
    lines = ["| env | alg | final test (mean ± std over seeds) | per seed | best eval per seed | "
             "first eval >= reference (env steps) | reference | seeds at reference | env steps | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = "—" if r["reference"] is None else f"{r['reference']:g} ({sources[r['env']]})"
        at = "—" if r["seeds_at_reference"] is None else f"{r['seeds_at_reference']}/{r['seeds']}"
        firsts = ", ".join("—" if f is None else f"{f:,}" for f in r["first_step_at_reference"])
        lines.append(
            f"| {r['env']} | {r['alg']} | {r['test_mean']:.1f} ± {r['test_std_across_seeds']:.1f} | "
            f"{', '.join(f'{t:.1f}' for t in r['test_means'])} | "
            f"{', '.join('—' if b is None else f'{b:.1f}' for b in r['best_evals'])} | {firsts} | {ref} | {at} | "
            f"{max(r['env_steps']):,} | {np.median(r['wall_s']) / 60:.1f} min median |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--seeds", type=int, default=3, help="seeds 1..N of every env x algorithm")
    p.add_argument("--first_seed", type=int, default=1, help="start there instead: seeds F..F+N-1 (to add seeds "
                   "to a cell; its row then covers these seeds only)")
    p.add_argument("--only", default="", help="comma-separated ENV:ALG cells of the suite (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="FLAG=VALUE",
                   help="extra main.py flag for every run (a tuning experiment, not the preset)")
    p.add_argument("--tag", default="preset", help="run names: <tag>_<alg>_s<seed>")
    p.add_argument("--logdir", default="logs")
    p.add_argument("--modeldir", default="model")
    p.add_argument("--markdown", default="", help="also write the Markdown table to this file")
    args = p.parse_args(argv)
    import ray

    suite = SUITES[args.suite]
    cells = [(env, alg) for env, (algs, _, _) in suite.items() for alg in algs]
    if args.only:
        wanted = [tuple(c.split(":")) for c in args.only.split(",")]
        unknown = [c for c in wanted if c not in cells]
        if unknown:
            p.error(f"not in suite {args.suite}: {unknown}; cells: {cells}")
        cells = wanted
    extra = [f"--{kv}" for kv in args.set]
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows, started = [], time.monotonic()
    try:
        for env, alg in cells:
            runs = []
            for seed in seeds:
                run = run_one(env, alg, seed, args, extra)
                print(json.dumps({k: v for k, v in run.items() if k != "preset"}), flush=True)
                runs.append(run)
            rows.append(aggregate(runs, suite[env][1]))
    finally:
        ray.shutdown()
    table = markdown(rows, {env: src for env, (_, _, src) in suite.items()})
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    print(json.dumps({"suite": args.suite, "seeds": seeds, "extra_flags": extra, "rows": rows,
                      "wall_s": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
