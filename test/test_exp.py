"""exp.plot and exp.table on real TensorBoard event files of two fake runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from exp import plot, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVAL_STEPS, EVAL_VALUES, EVAL_STDS = [0, 1000, 2000, 3000], [10.0, 35.5, 80.25, 120.0], [1.0, 5.0, 7.5, 2.0]


def _config(seed: int) -> dict:
    return {"run": {"env": "CartPole-v1", "num_agents": 2, "seed": seed, "suffix": f"s{seed}"},
            "replay": {"buffer": "pmdb"}, "alg": {"alg": "DDQN", "nstep": 3}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two runs differing only by seed, under logs/CartPole-v1/{s0,s1}; s1 has no eval events and no test.json."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("exp")
    logs, written = root / "logs" / "CartPole-v1", {}
    for seed in (0, 1):
        d = logs / f"s{seed}"
        d.mkdir(parents=True)
        w = SummaryWriter(str(d))
        t0 = time.time() + 1.0
        train = [(i * 50, float(i % 7 + seed), t0 + 6.0 * i) for i in range(40)]
        for step, value, wall in train:
            w.add_scalar("charts/episode_return", value, step, walltime=wall)
        evals = [(s, v, m, t0 + 60.0 * k) for k, (s, v, m) in enumerate(zip(EVAL_STEPS, EVAL_VALUES, EVAL_STDS))]
        if seed == 0:
            for step, value, std, wall in evals:
                w.add_scalar("eval/return", value, step, walltime=wall)
                w.add_scalar("eval/return_std", std, step, walltime=wall)
        w.close()
        (d / "config.json").write_text(json.dumps(_config(seed)))
        (d / "summary.json").write_text(json.dumps({
            "env": "CartPole-v1", "alg": "DDQN", "buffer": "pmdb", "env_steps": 3000 + seed, "learner_steps": 100,
            "wall_s": 185.0, "best_eval_return": 120.0 if seed == 0 else None, "last_eval_return": None,
            "logdir": str(d), "command": f"python main.py CartPole-v1 --seed={seed} | tee log",
            **({"hardware": "2-core CPU"} if seed == 0 else {})}))
        written[seed] = {"train": train, "eval": evals, "path": str(d)}
    gif = root / "exp" / "gifs" / "CartPole-v1_DDQN_s0.gif"
    gif.parent.mkdir(parents=True)
    gif.write_bytes(b"GIF89a")
    (logs / "s0" / "test.json").write_text(json.dumps(
        {"episodes": 30, "mean": 187.456, "std": 12.34, "min": 150.0, "max": 200.0, "gif": str(gif)}))
    (root / "exp" / "planned.json").write_text(json.dumps([
        {"env": "Pong", "alg": "DDQN", "buffer": "pmdb", "hardware": "1x GPU", "command": "python main.py Pong"},
        {"env": "CartPole-v1", "alg": "DDQN", "buffer": "pmdb", "command": "already run: hidden"}]))
    return {"root": root, "logs": logs, "runs": written}


def test_read_run_returns_what_was_written(runs):
    r = plot.read_run(runs["runs"][0]["path"])
    steps, values, walls = zip(*runs["runs"][0]["train"])
    got = r.scalars[plot.TRAIN]
    assert got.steps.tolist() == list(steps)
    np.testing.assert_allclose(got.values, values, rtol=1e-6)
    np.testing.assert_allclose(got.wall, walls, rtol=0, atol=1e-3)
    ev, std = r.scalars[plot.EVAL], r.scalars[plot.EVAL_STD]
    assert ev.steps.tolist() == EVAL_STEPS and std.steps.tolist() == EVAL_STEPS
    np.testing.assert_allclose(ev.values, EVAL_VALUES, rtol=1e-6)
    np.testing.assert_allclose(std.values, EVAL_STDS, rtol=1e-6)
    np.testing.assert_allclose(ev.wall, [e[3] for e in runs["runs"][0]["eval"]], atol=1e-3)
    assert r.t0 <= walls[0] and walls[0] - r.t0 < 30     # the writer's first event, just before
    assert r.config["alg"]["alg"] == "DDQN"
    assert plot.EVAL not in plot.read_run(runs["runs"][1]["path"]).scalars


def test_find_runs_and_labels(runs):
    paths = plot.find_runs([str(runs["root"])])
    assert paths == [runs["runs"][0]["path"], runs["runs"][1]["path"]]
    assert plot.find_runs([runs["runs"][1]["path"]]) == [runs["runs"][1]["path"]]
    rs = [plot.read_run(p) for p in paths]
    plot.label_runs(rs)
    assert [r.label for r in rs] == ["DDQN pmdb, 2 agents, 3-step, seed 0", "DDQN pmdb, 2 agents, 3-step, seed 1"]
    plot.label_runs(rs[:1])
    assert rs[0].label == "DDQN pmdb, 2 agents, 3-step"
    np.testing.assert_allclose(plot.smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])


def _assert_png(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC and len(data) > 20_000


def test_plot_main_writes_pngs(runs, tmp_path, capsys):
    assert plot.main([str(runs["logs"]), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(tmp_path / "CartPole-v1.png")]
    _assert_png(out[0])
    # one run without eval events still plots; default name <env>_<suffix>, the one exp.table links to
    assert plot.main([runs["runs"][1]["path"], "--out", str(tmp_path), "--smooth", "5"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "CartPole-v1_s1.png")]
    _assert_png(str(tmp_path / "CartPole-v1_s1.png"))


def test_plot_bad_path_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    p = subprocess.run([sys.executable, "-m", "exp.plot", str(tmp_path / "empty")], cwd=ROOT, check=False,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "no TensorBoard event files" in p.stderr
    assert "Traceback" not in p.stderr


def test_table(runs, capsys, monkeypatch):
    root = runs["root"]
    readme = root / "exp" / "README.md"
    assert plot.main([str(runs["logs"]), "--out", str(root / "exp" / "plots")]) == 0
    args = [str(runs["logs"]), "--out", str(readme)]
    assert table.main(args) == 0
    first = readme.read_text()
    assert first.startswith("# Results") and first.count(table.START) == 1 and first.count(table.END) == 1
    rows = {line.split(" | ")[1]: line for line in first.splitlines() if line.startswith("| CartPole-v1")}
    assert set(rows) == {"s0", "s1"}
    s0, s1 = rows["s0"], rows["s1"]
    assert "187.5 ± 12.3 (30 test games)" in s0 and "| 3,000 |" in s0 and "3.1 min" in s0 and "2-core CPU" in s0
    assert "`python main.py CartPole-v1 --seed=0 \\| tee log`" in s0
    assert "[curves](plots/CartPole-v1.png)" in s0 and "[gif](gifs/CartPole-v1_DDQN_s0.gif)" in s0
    assert "| n/a (best eval)" not in s1 and "| n/a |" in s1 and s1.endswith("| not yet run |")
    assert "### DDQN" in first and "| Pong | — | pmdb | not yet run |" in first and "already run" not in first
    # regenerating is idempotent and keeps hand edits outside the markers
    assert table.main(args) == 0
    assert readme.read_text() == first
    # the runs' JSON files are kept beside the README, and the tables come back from that record alone
    kept = root / "exp" / "runs" / "CartPole-v1"
    assert sorted(os.listdir(kept / "s0")) == ["config.json", "summary.json", "test.json"]
    assert sorted(os.listdir(kept / "s1")) == ["config.json", "summary.json"]
    monkeypatch.chdir(root / "exp")       # no logs/ here
    assert table.main(["--out", str(readme)]) == 0
    assert readme.read_text() == first
    readme.write_text(first.replace("# Results", "# Results (edited)") + "\nfooter\n")
    assert table.main(args) == 0
    again = readme.read_text()
    assert again == first.replace("# Results", "# Results (edited)") + "\nfooter\n"
    assert table.main([str(root / "nothing"), "--out", str(readme)]) == 2
    assert "no run folder" in capsys.readouterr().err


def test_table_formatting():
    assert table.fmt_wall(45.2) == "45 s" and table.fmt_wall(600) == "10.0 min" and table.fmt_wall(9000) == "2.5 h"
    assert table.fmt_wall(None) == "n/a"
    assert table.fmt_score({"best_eval_return": 19.04}, None) == "19.0 (best eval)"
    assert table.fmt_score({}, {"episodes": 30, "mean": 20.0, "std": 0.5}) == "20.0 ± 0.5 (30 test games)"
    assert table.fmt_score({}, None) == "n/a"
    assert table.render(None, "x").startswith(table.HEADER)
