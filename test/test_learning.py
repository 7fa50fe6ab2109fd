"""Learning and signal handling: seeded, thresholded, minutes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agents.config import parse_args
from agents.driver import train
from agents.play import test as play_test
from main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_the_default_command_learns_cartpole(ray_session, tmp_path):
    """`python main.py CartPole-v1` with nothing else (seed 0, the DQN preset; only the output folders
    differ): the best evaluation (10 whole episodes, epsilon 0.001) reaches 475 within the preset's 50k env
    steps, and the final checkpoint's --test (30 games) averages at least 350. One seed, no retry.

    With soft targets alone one CI run of this test reached 500 and then fell to a final test of 147; the
    preset now also decays the learning rate over the second half of the run: 5 of 5 seeds of
    bench/learning.py ended at 500, and 4 of 5 runs of this test passed (last evaluations 500). The fifth,
    a clean-clone CI run, failed the other bar: its evaluations stayed near 130 until 35k steps (the cart
    drifting off the track, as in exp/README.md) and reached 270. That slow start happens before any decay;
    it is the failure mode left: 1 of the 16 runs on record with this first half (5 + 5 benchmark seeds, 6
    runs of this test) fell short of 475. The issue's floor for the final test (>= 450 on 4 of 5 seeds) is
    a statement about seeds, measured by bench/learning.py (exp/README.md)."""
    folders = [f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model"]
    cfg, given = parse_args(["CartPole-v1", *folders])
    assert cfg.run.max_steps == 50_000 and cfg.preset["family"] == "classic" and cfg.alg.lr_decay
    summary = train(cfg, given)
    assert summary["env_steps"] <= 50_000 + cfg.run.num_agents * cfg.alg.sync_period
    assert summary["best_eval_return"] >= 475, summary["evaluations"]
    tcfg, tgiven = parse_args(["CartPole-v1", "--test", f"--resume={summary['checkpoint']}", *folders])
    result = play_test(tcfg, tgiven)
    assert result["episodes"] == 30 and result["mean"] >= 350, (result, summary["evaluations"])


@pytest.mark.slow
def test_rainbow_with_its_preset_learns_cartpole(ray_session, tmp_path, capsys):
    """`python main.py CartPole-v1 --alg=Rainbow` (seed 0, the Rainbow preset: C51 on [0, 100], noisy nets,
    dueling, double Q, n = 3, pmdb): an evaluation reaches 475 within 50k env steps (the run stops there:
    --stop_return), and its checkpoint plays with --test, noise off."""
    folders = [f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model"]
    cfg, given = parse_args(["CartPole-v1", "--alg=Rainbow", "--stop_return=475", *folders])
    assert cfg.run.max_steps == 50_000 and cfg.alg.noisy and cfg.alg.atoms == 51 and cfg.alg.v_min == 0.0
    summary = train(cfg, given)
    assert summary["env_steps"] <= 50_000 + cfg.run.num_agents * cfg.alg.sync_period
    assert summary["best_eval_return"] >= 475, summary["evaluations"]
    code = main(["CartPole-v1", "--test", "--test_episodes=3", f"--resume={summary['checkpoint']}", *folders])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["episodes"] == 3


@pytest.mark.slow
def test_sigterm_checkpoints_and_summarises_within_seconds_and_resume_continues(ray_session, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "main.py", "CartPole-v1", "--max_steps=100000000", "--suffix=sig", "--replay_start=500",
         "--batch_size=32", "--status_period=1", "--eval_period=0", f"--logdir={tmp_path}/logs",
         f"--modeldir={tmp_path}/model", "--num_cpus=2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:   # wait until the learner has been training for a while
            if line.startswith("env_steps") and "learner 0 " not in line and int(
                    line.split("learner ")[1].split(" ")[0].replace(",", "")) > 50:
                break
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert took < 10, took
    summary_path = f"{tmp_path}/logs/CartPole-v1/sig/summary.json"
    assert out.strip().splitlines()[-1] == summary_path
    with open(summary_path) as f:
        summary = json.load(f)
    assert summary["signal"] == signal.SIGTERM and os.path.exists(summary["checkpoint"])
    assert summary["learner_steps"] > 50 and summary["env_steps"] > 500

    cfg, given = parse_args(["CartPole-v1", f"--resume={summary['checkpoint']}",
                             f"--max_steps={summary['env_steps'] + 1000}", "--eval_period=0",
                             f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model"])
    resumed = train(cfg, given)
    assert resumed["env_steps"] >= summary["env_steps"] + 1000
    assert resumed["learner_steps"] >= summary["learner_steps"]
    assert resumed["wall_s"] > summary["wall_s"]
