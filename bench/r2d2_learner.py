"""R2D2 learner throughput: sequence batches per second (batch 64 x (burn-in 40 + 40 trained steps), LSTM 512,
the Nature torso on Pong) through the whole pipeline (replay actor -> loaders -> learner; agents paused,
replay pre-filled) against the bare torch update on the same device with the same shapes, in the same run.
Prints one JSON object as its last line (pipeline_updates_per_s, bare_updates_per_s, efficiency)."""
from __future__ import annotations

import argparse
import json

from learner_throughput import measure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pong")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--loaders", type=int, default=2)
    p.add_argument("--fill", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    flags = ["--alg=R2D2", "--buffer=pmdb", f"--batch_size={args.batch_size}", "--seq_len=80", "--overlap=40",
             "--burn_in=40", "--lstm=512"]
    print(json.dumps(measure(flags, args.env, args.loaders, args.fill, args.seconds)))


if __name__ == "__main__":
    main()
