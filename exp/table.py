"""The results tables of exp/README.md, regenerated from run folders.

    python -m exp.table [RUNS ...] [--out exp/README.md] [--plots DIR] [--planned FILE]

RUNS are run folders (with summary.json) or parents of them; default: every logs/*/*/ with a summary.json.
Their small JSON files (summary, config, test) are first copied into the record beside the output,
`exp/runs/<env>/<suffix>/`, which is committed; the tables are built from the whole record, so a fresh
checkout regenerates them and a new run adds its row to the others. One table per algorithm, one row per run:
game, run folder, replay, score (mean +- std over the --test games of test.json, else the best evaluation
mean, marked so), env steps, wall time, hardware, the command, links to the curves
(`<plots>/<env>_<suffix>.png`, else `<plots>/<env>_<group>.png` where a suffix `<group>_s<seed>` names one
seed of a group of runs, else `<plots>/<env>.png`, as `python -m exp.plot` names them) and to the GIF of the
best test game. Rows of `exp/planned.json` (a list of objects with env, alg, buffer and optionally suffix,
hardware, command, env_steps) are shown as "not yet run" until a run of the same env, alg and buffer (and
suffix, if given) exists. Only the text between the table markers of the output file is replaced; a missing
file is written from the header below.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys

from exp.plot import run_name

START, END = "<!-- table:start -->", "<!-- table:end -->"
COLUMNS = ("game", "run", "replay", "score", "env steps", "wall time", "hardware", "command", "curves", "GIF")
HEADER = """# Results

Runs of this trainer, one row per run. `python -m exp.table` keeps each run's JSON files (`summary.json`,
`config.json`, `test.json` of `logs/<env>/<suffix>/`) in `runs/<env>/<suffix>/` and builds the tables
from there. The **score** is the mean ± std of the raw game score over the games `--test` played with the
run's final checkpoint (no-op starts, epsilon 0.001; `test.json` beside `summary.json`); where `--test`
has not been run yet it is the best evaluation mean seen during training, marked *best eval*. **Env
steps** count the steps of all agents together (one step is 4 frames on Atari); **wall time** is the
training time. Rows marked *not yet run* are planned (`exp/planned.json`) and give the command that will
produce them.

Regenerate after a run:

```
python -m exp.plot logs/<env>/<suffix>          # curves: exp/plots/<env>_<suffix>.png
python main.py <env> --test --record --resume model/<alg>_<net>/<env>/<suffix>/iter_<N>.pt
python -m exp.table                             # rewrites only the tables below
```

"""


def _load(path: str) -> dict | list | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def find_runs(paths: list[str]) -> list[str]:
    """Every folder at or under `paths` with a summary.json, sorted."""
    found = set()
    for p in paths:
        found.update(os.path.normpath(root) for root, _, files in os.walk(p) if "summary.json" in files)
    return sorted(found)


RECORDED = ("summary.json", "config.json", "test.json")


def record(run: str, base: str) -> str:
    """Copy the run folder's JSON files into `<base>/runs/<env>/<suffix>/`; returns that folder."""
    dest = os.path.join(base, "runs", os.path.basename(os.path.dirname(os.path.abspath(run))), os.path.basename(run))
    if os.path.abspath(dest) != os.path.abspath(run):
        os.makedirs(dest, exist_ok=True)
        for name in RECORDED:
            if os.path.exists(os.path.join(run, name)):
                shutil.copyfile(os.path.join(run, name), os.path.join(dest, name))
    return dest


def _num(x, fmt: str = "{:,.1f}") -> str:
    return fmt.format(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def fmt_wall(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "n/a"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 \
        else f"{seconds / 3600:.1f} h"


def fmt_score(summary: dict, test: dict | None) -> str:
    if test and isinstance(test.get("mean"), (int, float)):
        games = f" ({test['episodes']} test games)" if isinstance(test.get("episodes"), int) else ""
        return f"{test['mean']:,.1f} ± {_num(test.get('std'))}{games}"
    best = summary.get("best_eval_return")
    return f"{best:,.1f} (best eval)" if isinstance(best, (int, float)) else "n/a"


def _code(cmd) -> str:
    return f"`{str(cmd).replace('`', chr(39)).replace('|', chr(92) + '|')}`" if cmd else "n/a"


def _link(text: str, target: str, base: str) -> str:
    return f"[{text}]({os.path.relpath(os.path.abspath(target), os.path.abspath(base)).replace(os.sep, '/')})"


def run_row(path: str, base: str, plots: str) -> tuple[str, list[str]]:
    """(algorithm, cells) of the run folder `path`; links relative to `base`, the README's folder."""
    summary = _load(os.path.join(path, "summary.json")) or {}
    config = _load(os.path.join(path, "config.json")) or {}
    test = _load(os.path.join(path, "test.json"))
    test = test if isinstance(test, dict) else None
    alg = summary.get("alg") or config.get("alg", {}).get("alg") or "n/a"
    env = summary.get("env") or config.get("run", {}).get("env") or os.path.basename(os.path.dirname(path))
    buffer = summary.get("buffer") or config.get("replay", {}).get("buffer") or "n/a"
    env_dir, suffix = os.path.basename(os.path.dirname(os.path.abspath(path))), os.path.basename(path)
    group = re.sub(r"_s\d+$", "", suffix)
    pngs = [p for p in (os.path.join(plots, run_name(path) + ".png"), os.path.join(plots, f"{env_dir}_{group}.png"),
                        os.path.join(plots, env_dir + ".png")) if os.path.exists(p)]
    curves = _link("curves", pngs[0], base) if pngs else "n/a"
    if test is None:
        gif = "not yet run"
    else:
        candidates = [test["gif"], os.path.join(base, "gifs", os.path.basename(test["gif"]))] if test.get("gif") \
            else [os.path.join(base, "gifs", f"{env_dir}_{alg}_{suffix}.gif")]
        found = [g for g in candidates if os.path.exists(g)]
        gif = _link("gif", found[0], base) if found else "n/a"
    return alg, [env, suffix, buffer, fmt_score(summary, test), _num(summary.get("env_steps"), "{:,.0f}"),
                 fmt_wall(summary.get("wall_s")), summary.get("hardware") or "n/a", _code(summary.get("command")),
                 curves, gif]


def planned_row(p: dict) -> tuple[str, list[str]]:
    return p.get("alg", "n/a"), [p.get("env", "n/a"), p.get("suffix", "—"), p.get("buffer", "n/a"), "not yet run",
                                 _num(p.get("env_steps"), "{:,.0f} (planned)"), "n/a", p.get("hardware") or "n/a",
                                 _code(p.get("command")), "not yet run", "not yet run"]


def tables(runs: list[str], planned: list[dict], base: str, plots: str) -> str:
    """Markdown: one table per algorithm, runs sorted by game, replay and run, then the planned rows left."""
    rows: dict[str, list[list[str]]] = {}
    done = set()
    for path in runs:
        alg, cells = run_row(path, base, plots)
        rows.setdefault(alg, []).append(cells)
        done.update({(cells[0], alg, cells[2], cells[1]), (cells[0], alg, cells[2], None)})
    for cells_of_alg in rows.values():
        cells_of_alg.sort(key=lambda c: (c[0], c[2], c[1]))
    for p in planned:
        if (p.get("env"), p.get("alg"), p.get("buffer"), p.get("suffix")) not in done:
            alg, cells = planned_row(p)
            rows.setdefault(alg, []).append(cells)
    if not rows:
        return "No runs yet.\n"
    out = []
    for alg in sorted(rows):
        out += [f"### {alg}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(str(c).replace("\n", " ") for c in cells) + " |" for cells in rows[alg]]
        out.append("")
    return "\n".join(out)


def render(existing: str | None, body: str) -> str:
    """`existing` with the text between the markers replaced by `body` (the header + markers if absent)."""
    block = f"{START}\n<!-- generated by `python -m exp.table`; edits between these markers are overwritten -->\n\n" \
            f"{body.rstrip()}\n\n{END}"
    if existing is None:
        return HEADER + block + "\n"
    i, j = existing.find(START), existing.find(END)
    if i < 0 or j < i:
        return existing.rstrip() + "\n\n" + block + "\n"
    return existing[:i] + block + existing[j + len(END):]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m exp.table", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", metavar="RUNS",
                   help="run folders or parents to add to the record (default: logs/*/*/ with a summary.json)")
    p.add_argument("--out", default=os.path.join("exp", "README.md"), help="markdown file (default: exp/README.md)")
    p.add_argument("--plots", default="", help="folder of the curve PNGs (default: plots/ beside --out)")
    p.add_argument("--planned", default="", help="JSON list of planned rows (default: planned.json beside --out)")
    args = p.parse_args(argv)
    base = os.path.dirname(os.path.abspath(args.out))
    if args.runs:
        runs = find_runs(args.runs)
        if not runs:
            print(f"exp.table: no run folder with a summary.json under {' '.join(args.runs)}", file=sys.stderr)
            return 2
    else:
        runs = sorted(os.path.normpath(os.path.dirname(s))
                      for s in glob.glob(os.path.join("logs", "*", "*", "summary.json")))
    for run in runs:
        record(run, base)
    runs = find_runs([os.path.join(base, "runs")])
    planned_path = args.planned or os.path.join(base, "planned.json")
    planned = _load(planned_path) if os.path.exists(planned_path) else []
    if not isinstance(planned, list) or not all(isinstance(r, dict) for r in planned):
        print(f"exp.table: {planned_path} is not a JSON list of objects", file=sys.stderr)
        return 2
    existing = None
    if os.path.exists(args.out):
        with open(args.out) as f:
            existing = f.read()
    text = render(existing, tables(runs, planned, base, args.plots or os.path.join(base, "plots")))
    with open(args.out, "w") as f:
        f.write(text)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
