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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_ddqn_pmdb_solves_cartpole_within_100k_env_steps(ray_session, tmp_path):
    """Best evaluation mean (5 whole episodes, epsilon 0.001) >= 450 within 100k env steps.

    Ray's scheduling makes a distributed run non-deterministic even with fixed seeds (which agent's
    pushes arrive when shapes the replay); with these settings about two seeded runs in three reach 450
    on 2 cores, the others plateau near 300-420. So the next seed gets a turn only if the previous one
    falls short (at most three), and every run must stay within 100k env steps.
    """
    results = []
    for seed in (1, 2, 3):
        cfg, given = parse_args([
            "CartPole-v1", "--alg=DDQN", "--buffer=pmdb", "--num_agents=2", "--max_steps=100000", f"--seed={seed}",
            "--batch_size=128", "--lr=2.5e-4", "--dueling", "--target_period=2000", "--replay_start=2000",
            "--eval_period=1000", "--eval_episodes=5", "--stop_return=450", f"--suffix=learn{seed}",
            f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model"])
        summary = train(cfg, given)
        assert summary["env_steps"] <= 100_000 + 2 * cfg.alg.sync_period
        results.append(summary["best_eval_return"])
        if summary["best_eval_return"] >= 450:
            break
    assert max(results) >= 450, results


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
