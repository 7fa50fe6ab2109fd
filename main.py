"""Command line: parse flags into a typed config, validate, then train or test. Nothing else.

    python main.py CartPole-v1 --alg=DDQN --buffer=pmdb --num_agents=2 --max_steps=100000
    python main.py Pong --test --suffix=DDQN --resume ./model/DDQN_q/Pong/DDQN/iter_N.pt
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from agents.config import UsageError, describe, parse_args, validate
    from envs import UnknownEnvError, resolve_env

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        from agents.config import build_parser
        build_parser().print_help()
        return 0
    try:
        cfg, given = parse_args(argv)
        validate(cfg)
        resolve_env(cfg.run.env)
        if cfg.run.show_config:
            print(describe(cfg, given))
            return 0
        if cfg.run.test:
            from agents.play import print_result, test
            print_result(test(cfg, given))
            return 0
        from agents.driver import RunFailed, train
        try:
            summary = train(cfg, given)
        except RunFailed as e:
            if e.details:
                print(e.details, file=sys.stderr)
            print(f"main.py: {e}", file=sys.stderr)
            return 1
    except (UsageError, UnknownEnvError) as e:
        print(f"main.py: error: {e}", file=sys.stderr)
        return 2
    print(f"done: {summary['env_steps']:,} env steps, {summary['learner_steps']:,} learner steps in "
          f"{summary['wall_s']:.0f}s; best eval {summary['best_eval_return']}; checkpoint {summary['checkpoint']}")
    print(summary["summary_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
