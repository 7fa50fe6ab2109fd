"""bench/learning.py's table arithmetic (the runs themselves are the benchmark, not a test)."""
import importlib.util
import os

from agents import preset
from agents.config import SECTIONS
from envs import env_family
from test.test_learning import ROOT

spec = importlib.util.spec_from_file_location("bench_learning", os.path.join(ROOT, "bench", "learning.py"))
learning = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learning)


def _run(seed, test_mean, evaluations):
    return {"env": "CartPole-v1", "alg": "DQN", "seed": seed, "test_mean": test_mean, "best_eval": max(
        m for _, m in evaluations), "evaluations": evaluations, "env_steps": 50_000, "wall_s": 100.0 + seed}


def test_aggregate_by_hand():
    runs = [_run(1, 500.0, [[2500, 100.0], [5000, 480.0], [7500, 500.0]]),
            _run(2, 440.0, [[2500, 300.0], [5000, 470.0]]),
            _run(3, 480.0, [[2500, 475.0]])]
    row = learning.aggregate(runs, 475.0)
    assert row["test_mean"] == 473.33 and row["test_std_across_seeds"] == 24.94   # std of 500, 440, 480
    assert row["first_step_at_reference"] == [5000, None, 2500]
    assert row["seeds_at_reference"] == 2 and row["best_evals"] == [500.0, 470.0, 475.0]
    text = learning.markdown([row], {"CartPole-v1": "ref"})
    assert "| CartPole-v1 | DQN | 473.3 ± 24.9 | 500.0, 440.0, 480.0 | 500.0, 470.0, 475.0 | 5,000, —, 2,500 |" in text
    assert "| 2/3 | 50,000 | 1.7 min median |" in text


def test_no_reference_counts_nothing():
    row = learning.aggregate([_run(1, 10.0, [[100, 5.0]])], None)
    assert row["seeds_at_reference"] is None and row["first_step_at_reference"] == [None]


def test_every_suite_cell_has_a_preset_for_its_env():
    """Each env of a suite resolves to a family or env table of each of its algorithms' preset files."""
    for suite, envs in learning.SUITES.items():
        for env, (algs, _, _) in envs.items():
            for alg in algs:
                table = preset.load(alg, SECTIONS)
                assert env in table["env"] or env_family(env) in table["family"], (suite, env, alg)
