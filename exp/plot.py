"""Learning curves from TensorBoard event files.

    python -m exp.plot LOGDIR [LOGDIR ...] [--out exp/plots] [--name NAME] [--smooth 20]

A LOGDIR is a run folder (with events.out.tfevents.* files) or any parent of run folders. All runs go
into one PNG, `<out>/<name>.png`, of 2x2 panels: evaluation score (eval/return, band +- eval/return_std)
on top, training return (charts/episode_return: faint raw, bold trailing moving average) below; env steps
on the left, wall time in minutes since the run's first event on the right. One colour per run; the
legend names a run by algorithm, replay, agents and n-step from its config.json (the folder name
without one), plus the seed (or the folder) where that alone tells runs apart. The default name is
`<env>_<suffix>` for one run, `<env>` for runs of one env folder, else `curves`. Prints the paths written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

EVAL, EVAL_STD, TRAIN = "eval/return", "eval/return_std", "charts/episode_return"
EVENTS = "events.out.tfevents."


class Series(NamedTuple):
    steps: np.ndarray    # int64 event steps (env steps)
    values: np.ndarray   # float64
    wall: np.ndarray     # float64 absolute wall_time (s since the epoch)


@dataclass
class Run:
    path: str
    t0: float                       # wall_time of the run's first event
    scalars: dict[str, Series]
    config: dict = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        """`<env folder>_<suffix>`, the file name a single-run plot gets (and exp.table looks for)."""
        return run_name(self.path)


def run_name(path: str) -> str:
    path = os.path.abspath(path)
    return f"{os.path.basename(os.path.dirname(path))}_{os.path.basename(path)}"


def find_runs(paths: list[str]) -> list[str]:
    """Every folder at or under `paths` that holds TensorBoard event files, sorted, without duplicates."""
    found = set()
    for p in paths:
        for root, _, files in os.walk(p):
            if any(f.startswith(EVENTS) for f in files):
                found.add(os.path.normpath(root))
    return sorted(found)


def read_run(path: str, tags: tuple[str, ...] = (EVAL, EVAL_STD, TRAIN)) -> Run:
    """All scalar events of `tags` in the run folder `path` (every event file in it, in order), and its config."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0, ea.TENSORS: 1, ea.IMAGES: 1, ea.HISTOGRAMS: 1,
                                                   ea.AUDIO: 1, ea.COMPRESSED_HISTOGRAMS: 1})
    acc.Reload()
    present = set(acc.Tags().get(ea.SCALARS, []))
    scalars = {}
    for tag in tags:
        if tag in present:
            ev = acc.Scalars(tag)
            scalars[tag] = Series(np.array([e.step for e in ev], np.int64), np.array([e.value for e in ev], float),
                                  np.array([e.wall_time for e in ev], float))
    try:
        t0 = acc.FirstEventTimestamp()
    except ValueError:   # no event at all
        t0 = np.inf
    t0 = min([t0] + [float(s.wall[0]) for s in scalars.values() if len(s.wall)])
    config = {}
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        pass
    return Run(path, float(t0) if np.isfinite(t0) else 0.0, scalars, config)


def _get(config: dict, key: str):
    section, name = key.split(".")
    return config.get(section, {}).get(name) if isinstance(config.get(section), dict) else None


def label_runs(runs: list[Run]) -> None:
    """Set each run's legend label: alg, buffer, agents, n-step (+ env when runs mix envs, + seed or folder
    where the label alone would not tell runs apart)."""
    def base(r: Run) -> str:
        alg, buf, agents, n = (_get(r.config, k) for k in ("alg.alg", "replay.buffer", "run.num_agents", "alg.nstep"))
        if None in (alg, buf, agents, n):
            return os.path.basename(os.path.normpath(r.path))
        return f"{alg} {buf}, {agents} agent{'s' if agents != 1 else ''}, {n}-step"

    envs = {_get(r.config, "run.env") or os.path.basename(os.path.dirname(os.path.abspath(r.path))) for r in runs}
    for r in runs:
        env = _get(r.config, "run.env") or os.path.basename(os.path.dirname(os.path.abspath(r.path)))
        r.label = (f"{env}: " if len(envs) > 1 else "") + base(r)
    for extra in (lambda r: f"seed {_get(r.config, 'run.seed')}", lambda r: os.path.basename(r.path)):
        groups: dict[str, list[Run]] = {}
        for r in runs:
            groups.setdefault(r.label, []).append(r)
        for group in groups.values():
            if len(group) > 1 and len({extra(r) for r in group}) > 1:
                for r in group:
                    r.label = f"{r.label}, {extra(r)}"


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what there is so far)."""
    if len(values) == 0 or window <= 1:
        return np.asarray(values, float)
    c = np.cumsum(np.insert(np.asarray(values, float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def default_name(runs: list[Run]) -> str:
    if len(runs) == 1:
        return runs[0].name
    parents = {os.path.dirname(os.path.abspath(r.path)) for r in runs}
    return os.path.basename(parents.pop()) if len(parents) == 1 else "curves"


def plot(runs: list[Run], out_path: str, title: str = "", window: int = 20) -> str:
    """Write the 2x2 figure of `runs` (labelled) to `out_path`; return the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, r in enumerate(runs):
        color = colors[i % len(colors)]
        handle = None
        ev = r.scalars.get(EVAL)
        if ev is not None and len(ev.steps):
            std = r.scalars.get(EVAL_STD)
            by_step = dict(zip(std.steps.tolist(), std.values.tolist())) if std is not None else {}
            band = np.array([by_step.get(s, np.nan) for s in ev.steps.tolist()])
            for ax, x in ((axes[0, 0], ev.steps), (axes[0, 1], (ev.wall - r.t0) / 60)):
                handle = ax.plot(x, ev.values, "o-", ms=3, color=color, label=r.label)[0]
                if np.isfinite(band).any():
                    ax.fill_between(x, ev.values - band, ev.values + band, color=color, alpha=0.15, lw=0)
        tr = r.scalars.get(TRAIN)
        if tr is not None and len(tr.steps):
            for ax, x in ((axes[1, 0], tr.steps), (axes[1, 1], (tr.wall - r.t0) / 60)):
                ax.plot(x, tr.values, color=color, alpha=0.15, lw=0.7)
                line = ax.plot(x, smooth(tr.values, window), color=color, lw=1.6, label=r.label)[0]
                handle = handle or line
        if handle is not None:
            handles.append(handle)
    for (row, col), (ylabel, xlabel) in {
            (0, 0): ("evaluation score", "env steps"), (0, 1): ("evaluation score", "wall time (min)"),
            (1, 0): (f"training return (moving avg. {window})", "env steps"),
            (1, 1): (f"training return (moving avg. {window})", "wall time (min)")}.items():
        ax = axes[row, col]
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    if title:
        fig.suptitle(title)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), frameon=False)
    fig.tight_layout(rect=(0, 0.035 * ((len(handles) - 1) // 3 + 1) if handles else 0, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m exp.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("logdirs", nargs="+", metavar="LOGDIR", help="run folder(s) or parents of run folders")
    p.add_argument("--out", default=os.path.join("exp", "plots"), help="folder for the PNG (default: exp/plots)")
    p.add_argument("--name", default="", help="PNG name without .png (default: from the runs)")
    p.add_argument("--smooth", type=int, default=20, help="moving-average window of the training return")
    args = p.parse_args(argv)
    paths = find_runs(args.logdirs)
    if not paths:
        print(f"exp.plot: no TensorBoard event files ({EVENTS}*) under {' '.join(args.logdirs)}", file=sys.stderr)
        return 2
    runs = [read_run(path) for path in paths]
    label_runs(runs)
    name = args.name or default_name(runs)
    envs = sorted({_get(r.config, "run.env") or "" for r in runs} - {""})
    print(plot(runs, os.path.join(args.out, f"{name}.png"), title=", ".join(envs) or name, window=args.smooth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
