"""The distributed program end to end on real Ray actors (one shared ray.init), real envs, real files."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.config import parse_args
from agents.driver import train
from main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--num_agents=2", "--num_loaders=1", "--batch_size=32", "--replay_start=500", "--save_period=50",
         "--eval_episodes=2", "--status_period=1", "--sync_period=100", "--target_period=100"]
RAY_WORKER_LINE = re.compile(r"^(\x1b\[\d+m)?\(\w+ pid=\d+")   # Ray's prefix on its workers' streamed output


def run_main(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cartpole_run(ray_session, tmp_path_factory):
    d = tmp_path_factory.mktemp("cartpole")
    argv = ["CartPole-v1", "--alg=DDQN", "--buffer=pmdb", "--max_steps=3000", "--eval_period=1500",
            "--suffix=e2e", f"--logdir={d}/logs", f"--modeldir={d}/model", *SMALL]
    cfg, given = parse_args(argv)
    with _Ray() as logged:
        summary = train(cfg, given)
    return d, argv, summary, [r for r in logged.records if "Unhandled error" in r]


def test_short_cartpole_run_writes_checkpoint_events_and_summary(cartpole_run):
    d, _, summary, _ = cartpole_run
    assert summary["env_steps"] >= 3000 and summary["learner_steps"] > 0
    ckpts = glob.glob(f"{d}/model/DDQN_q/CartPole-v1/e2e/iter_*.pt")
    assert len(ckpts) >= 2 and summary["checkpoint"] in ckpts
    assert summary["checkpoint"].endswith(f"iter_{summary['learner_steps']}.pt")
    with open(f"{d}/logs/CartPole-v1/e2e/summary.json") as f:
        saved = json.load(f)
    for key in ("env_steps", "learner_steps", "wall_s", "best_eval_return", "last_eval_return", "checkpoint"):
        assert saved[key] is not None, key
    acc = EventAccumulator(f"{d}/logs/CartPole-v1/e2e").Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("charts/episode_return", "charts/episode_return_clipped", "agents/0/episode_return",
                "agents/1/epsilon", "charts/env_steps_per_s", "charts/updates_per_s", "losses/loss",
                "losses/mean_q", "replay/size", "replay/bytes", "replay/sampled_per_inserted", "eval/return"):
        assert tag in tags, tag
    assert acc.Scalars("agents/1/epsilon")[-1].value == pytest.approx(0.4 ** 8, rel=1e-4)
    assert os.path.exists(f"{d}/logs/CartPole-v1/e2e/config.json")


def test_a_run_ends_without_unhandled_errors_of_its_killed_calls(cartpole_run):
    """Ray logs an "Unhandled error" with a traceback for every dropped reference to a failed call: the run's
    end must leave none (replays killed before the agents that wait on them did: 2-4 of 5 benchmark runs)."""
    assert cartpole_run[3] == []


class _Ray:
    """Records what Ray's own logger says ("ray" does not propagate to the root logger)."""

    def __init__(self):
        import logging

        self.records: list[str] = []
        self.handler = logging.Handler()
        self.handler.emit = lambda r: self.records.append(r.getMessage()[:300])

    def __enter__(self):
        import logging

        logging.getLogger("ray").addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        import gc
        import logging
        import time

        gc.collect()
        time.sleep(2)   # Ray logs an unhandled error when its owner notices the dropped reference
        logging.getLogger("ray").removeHandler(self.handler)


def test_calls_in_flight_to_killed_roles_are_taken_and_other_failures_said(ray_session, capsys):
    """_take_ended, on a caller whose callee is killed mid-call (what agents waiting on a replay see) and
    on a call that failed by itself: the first is taken silently, the second said in one line; Ray logs
    neither as an unhandled error."""
    import time

    import ray

    from agents.driver import _take_ended

    @ray.remote
    class Callee:
        def wait(self):
            time.sleep(60)

    @ray.remote
    class Caller:
        def call(self, callee):
            return ray.get(callee.wait.remote())

        def fail(self):
            raise ValueError("a real failure")

    callee, caller = Callee.remote(), Caller.remote()
    with _Ray() as logged:
        refs = [caller.call.remote(callee), caller.fail.remote()]
        time.sleep(1)
        ray.kill(callee)
        _take_ended(refs)
        del refs
    ray.kill(caller)
    assert not [r for r in logged.records if "Unhandled error" in r]
    out = [line for line in capsys.readouterr().out.strip().splitlines() if not RAY_WORKER_LINE.match(line)]
    assert out == ["a call in flight at the end of the run failed: ValueError: a real failure"]


def test_the_first_status_line_counts_its_rates_from_the_start(tmp_path):
    """A resumed run at 1,000 env steps and 50 learner steps, 200 and 10 more 2 s later: 100 steps/s and
    5.0 updates/s (the first line said 0 and 0, as if the run had stalled)."""
    import io

    import agents.report as report

    clock = iter([10.0, 10.0, 12.0])
    stream = io.StringIO()
    rep = report.Reporter(str(tmp_path), 1.0, stream, clock=lambda: next(clock))
    rep.start(1_000, 50)
    rep.status(1_200, 60, {"size": 1_200}, 5_000, 2.0)
    rep.close()
    assert "| 100 steps/s | learner 60 (5.0 upd/s) |" in stream.getvalue()


def test_resume_continues_counters(cartpole_run, ray_session, tmp_path):
    d, argv, first, _ = cartpole_run
    cfg, given = parse_args(["CartPole-v1", "--max_steps=5000", f"--resume={first['checkpoint']}",
                             f"--logdir={d}/logs", f"--modeldir={d}/model", *SMALL])
    summary = train(cfg, given)
    assert cfg.alg.alg == "DDQN" and cfg.replay.buffer == "pmdb"        # taken from the checkpoint
    assert summary["env_steps"] >= 5000 and summary["learner_steps"] > first["learner_steps"]
    assert os.path.dirname(summary["checkpoint"]) == os.path.dirname(first["checkpoint"])
    assert os.path.exists(first["checkpoint"])                         # nothing overwritten


def test_test_mode_prints_scores_and_json(cartpole_run, capsys):
    _, _, summary, _ = cartpole_run
    code, out, _ = run_main(["CartPole-v1", "--test", "--suffix=e2e", "--test_episodes=3",
                             f"--resume={summary['checkpoint']}"], capsys)
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {"episodes", "mean", "std", "min", "max"} and result["episodes"] == 3
    assert result["min"] <= result["mean"] <= result["max"]


@pytest.mark.parametrize("argv,needle", [
    (["CartPole-v1", "--num_agents=0"], "--num_agents"),
    (["CartPole-v1", "--buffer=foo"], "mmdb"),
    (["CartPole-v1", "--lr=-1"], "--lr"),
    (["CartPole-v1", "--lr_decay", "--lr_decay_start=1"], "--lr_decay_start must be within [0, 1)"),
    (["Pongg"], "Pong"),
    (["CartPole-v1", "--test"], "--resume"),
    (["CartPole-v1", "--test", "--resume=/nonexistent/iter_1.pt"], "does not exist"),
])
def test_bad_input_is_refused_with_one_line(argv, needle, capsys):
    code, out, err = run_main(argv, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mismatched_or_truncated_checkpoints(cartpole_run, tmp_path, capsys):
    d, _, summary, _ = cartpole_run
    ckpt = summary["checkpoint"]
    before = sorted(os.listdir(os.path.dirname(ckpt)))
    for argv, needle in [
        (["Acrobot-v1", "--test", f"--resume={ckpt}"], "is for CartPole-v1"),
        (["CartPole-v1", "--test", "--alg=DQN", f"--resume={ckpt}"], "--alg=DDQN"),
        (["CartPole-v1", "--test", "--dueling", f"--resume={ckpt}"], "--dueling=False"),
    ]:
        code, _, err = run_main(argv, capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    truncated = tmp_path / "iter_7.pt"
    truncated.write_bytes(open(ckpt, "rb").read()[:5000])
    code, _, err = run_main(["CartPole-v1", "--test", f"--resume={truncated}"], capsys)
    assert code == 2 and "cannot be read" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(["CartPole-v1", f"--resume={truncated}", f"--modeldir={d}/model"], capsys)
    assert code == 2
    assert sorted(os.listdir(os.path.dirname(ckpt))) == before


def test_a_replay_that_cannot_fit_is_refused_with_the_estimate(ray_session, tmp_path, capsys):
    from agents.driver import replay_bytes_per_transition
    from envs import env_info

    cfg, _ = parse_args(["Pong", "--buffer=pmdb"])
    per = replay_bytes_per_transition(cfg, env_info("Pong"))
    assert 100 < per < 1000      # measured, lz4 frames included (bench/replay_memory.py: ~200 B on Pong)
    code, _, err = run_main(["CartPole-v1", "--replay_size=100000000000", f"--logdir={tmp_path}/logs",
                             f"--modeldir={tmp_path}/model"], capsys)
    assert code == 2 and "lower --replay_size" in err and "B per transition" in err
    assert len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "logs") and not os.path.exists(tmp_path / "model")


def test_cli_refuses_before_ray_with_exit_code_2():
    proc = subprocess.run([sys.executable, "main.py", "CartPole-v1", "--num_agents=0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["main.py: error: --num_agents must be at least 1, got 0"]


@pytest.mark.slow
def test_short_pong_run_through_lz4_replay_and_conv_network(ray_session, tmp_path, capsys):
    cfg, given = parse_args(["Pong", "--alg=DQN", "--buffer=mmdb", "--max_steps=2500", "--eval_period=2000",
                             "--eval_episodes=1", "--replay_size=5000", "--suffix=pong",
                             f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", *SMALL])
    summary = train(cfg, given)
    assert summary["env_steps"] >= 2500 and summary["learner_steps"] > 0
    assert summary["last_eval_return"] is not None and -21 <= summary["last_eval_return"] <= 21
    assert "agents act with int8 copies of the Q network (--agent_int8)" in capsys.readouterr().out
    acc = EventAccumulator(f"{tmp_path}/logs/Pong/pong").Reload()
    assert acc.Scalars("replay/bytes")[-1].value > 0
    assert acc.Scalars("agents/0/int8_copies")[-1].value >= 1   # the Atari preset's int8 agents acted
    assert os.path.exists(summary["checkpoint"])
    code, out, _ = run_main(["Pong", "--test", "--record", "--test_episodes=1", "--eval_epsilon=0.05",
                             f"--resume={summary['checkpoint']}"], capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["episodes"] == 1
    gif = out.strip().splitlines()[-2].split("| gif ")[1]
    assert gif == os.path.join(ROOT, "exp", "gifs", "Pong_DQN_pong.gif")
    assert os.path.exists(gif) and 10_000 < os.path.getsize(gif) < 2_000_000
    os.remove(gif)


def _session_pids(role: str) -> list[str]:
    """The ray::<role> processes of this test session's Ray (children of its raylet), never those of
    another Ray running on the same machine."""
    import ray

    raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
    pids = subprocess.run(["pgrep", "-f", f"^ray::{role}"], capture_output=True, text=True).stdout.split()
    ours = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        if parent == raylet:
            ours.append(pid)
    return ours


@pytest.mark.slow
def test_a_killed_agent_is_restarted_and_the_run_finishes(ray_session, tmp_path):
    """Kill one agent process of this run by its pid mid-run: Ray restarts it, env steps keep growing to
    max_steps."""
    import signal
    import threading
    import time

    killed = []

    def kill_one_agent():
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not killed:
            time.sleep(1.0)
            # a checkpoint means this run's agents have been stepping for a while (and any agent of an
            # earlier test is long gone), so the ray::Agent processes now are this run's
            if glob.glob(f"{tmp_path}/model/**/iter_*.pt", recursive=True):
                pids = _session_pids("Agent")
                if pids:
                    os.kill(int(pids[0]), signal.SIGKILL)
                    killed.append(int(pids[0]))

    killer = threading.Thread(target=kill_one_agent, daemon=True)
    killer.start()
    cfg, given = parse_args(["CartPole-v1", "--max_steps=15000", "--eval_period=0", "--suffix=kill",
                             f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", *SMALL])
    summary = train(cfg, given)
    killer.join(timeout=5)
    assert killed, "no agent process was found to kill"
    assert summary["agent_restarts"] >= 1
    assert summary["env_steps"] >= 15000


@pytest.mark.slow
def test_a_dead_learner_stops_the_run_with_how_to_resume(ray_session, tmp_path):
    import signal
    import threading
    import time

    from agents.driver import RunFailed

    def kill_learner():
        for _ in range(60):
            time.sleep(1.0)
            if glob.glob(f"{tmp_path}/model/**/iter_*.pt", recursive=True):
                pids = _session_pids("Learner")
                if pids:
                    os.kill(int(pids[0]), signal.SIGKILL)
                    return

    threading.Thread(target=kill_learner, daemon=True).start()
    cfg, given = parse_args(["CartPole-v1", "--max_steps=100000000", "--eval_period=0", "--suffix=dead",
                             f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", *SMALL])
    with pytest.raises(RunFailed) as e:
        train(cfg, given)
    assert e.value.role == "Learner" and os.path.exists(e.value.checkpoint)
    assert f"--resume {e.value.checkpoint}" in str(e.value) and "Learner actor died" in str(e.value)


@pytest.mark.slow
def test_a_replay_error_stops_the_run_with_why_and_how_to_resume(ray_session, tmp_path, capsys, monkeypatch):
    """Regression: the replay counted every error as a dropped push and went on with a half-updated
    frame store. An error inside the replay (here a push with a gap in its stream, injected on the 40th
    call) now stops the run: exit 1, the replay's error, and the --resume command of a checkpoint that
    was saved after the failure (the failed replay itself is never saved)."""
    from dataclasses import replace

    from agents import driver
    from agents.actors import Replay

    class BrokenReplay(Replay):   # defined here, so Ray ships the class itself to the actor
        def add(self, pushes):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 40:
                pushes = [replace(pushes[0], frame_base=pushes[0].frame_base + 1)]
            return super().add(pushes)

    monkeypatch.setattr(driver, "Replay", BrokenReplay)
    code, out, err = run_main(["CartPole-v1", "--max_steps=100000000", "--eval_period=0", "--suffix=broken",
                               "--save_replay", f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model",
                               *SMALL], capsys)
    assert code == 1
    # the shared test Ray session keeps streaming its workers' stderr, prefixed "(Loader pid=N)", into this
    # process's stderr, so such a line may land after main.py's (a run of main.py alone shuts Ray down first)
    ours = [line for line in err.strip().splitlines() if not RAY_WORKER_LINE.match(line)]
    last = ours[-1]
    assert last.startswith("main.py: the Replay failed (ValueError: stream ") and "expected" in last
    assert "the run stopped; resume with: python main.py CartPole-v1 --resume " in last
    ckpt = last.rsplit(" ", 1)[-1]
    assert os.path.exists(ckpt) and not os.path.exists(ckpt[:-3] + ".replay.npz")


@pytest.mark.slow
def test_an_error_in_a_roles_call_stops_the_run_and_is_never_swallowed(ray_session, tmp_path, monkeypatch):
    """The evaluator's call raises (its actor lives on): the run stops naming the role and the error,
    saves the learner, and tells how to resume."""
    from agents import driver
    from agents.actors import Evaluator

    class BrokenEvaluator(Evaluator):
        def evaluate(self, weights, episodes):
            raise RuntimeError("the test's evaluator broke")

    monkeypatch.setattr(driver, "Evaluator", BrokenEvaluator)
    cfg, given = parse_args(["CartPole-v1", "--max_steps=100000000", "--eval_period=1000", "--suffix=evalbug",
                             f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", *SMALL])
    with pytest.raises(driver.RunFailed) as e:
        train(cfg, given)
    assert e.value.role == "Evaluator" and os.path.exists(e.value.checkpoint)
    assert str(e.value).startswith("the Evaluator failed (RuntimeError: the test's evaluator broke); the run stopped")
    assert "the test's evaluator broke" in e.value.details and "in evaluate" in e.value.details   # where it raised


@pytest.mark.slow
def test_a_replay_overwritten_30_times_accepts_every_push(ray_session, tmp_path):
    """2 agents and 2 loaders fill a 1,000-transition replay 30 times over: every push is accepted (none
    dropped, no error), and summary.json and TensorBoard say so."""
    cfg, given = parse_args(["CartPole-v1", "--alg=DDQN", "--buffer=pmdb", "--num_agents=2", "--num_loaders=2",
                             "--replay_size=1000", "--replay_start=500", "--batch_size=32", "--speed=2",
                             "--max_steps=30000", "--eval_period=0", "--suffix=ring", "--status_period=2",
                             f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model"])
    summary = train(cfg, given)
    assert summary["replay_inserted"] >= 29_000 and summary["replay_size"] == 1000
    assert summary["dropped_pushes"] == 0 and summary["learner_steps"] > 0
    with open(summary["summary_path"]) as f:
        assert json.load(f)["dropped_pushes"] == 0
    acc = EventAccumulator(f"{tmp_path}/logs/CartPole-v1/ring").Reload()
    assert [e.value for e in acc.Scalars("replay/dropped_pushes")][-1] == 0


@pytest.mark.slow
def test_save_replay_restores_the_replay_on_resume(ray_session, tmp_path):
    common = [f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", "--eval_period=0", *SMALL]
    cfg, given = parse_args(["CartPole-v1", "--max_steps=3000", "--suffix=sr", "--save_replay", *common])
    first = train(cfg, given)
    saved = glob.glob(f"{tmp_path}/model/**/*.replay.npz", recursive=True)
    assert saved == [first["checkpoint"][:-3] + ".replay.npz"]          # only the newest is kept
    cfg, given = parse_args(["CartPole-v1", "--max_steps=3600", f"--resume={first['checkpoint']}", *common])
    resumed = train(cfg, given)
    # without the saved replay it would hold only the ~600 new transitions
    assert resumed["replay_size"] >= first["replay_size"] + 400


def test_a_format_1_checkpoint_keeps_its_meaning(tmp_path):
    """Checkpoints written before format 2: R2D2's replay_start counted sequences (now steps), and the DQN
    family stored DDPG's tau of 0.005 without using it (it would now mean soft target updates)."""
    import torch

    from agents.checkpoint import load_checkpoint, save_checkpoint

    for argv, start, tau in ((["CartPole-v1", "--alg=R2D2", "--seq_len=20", "--overlap=10", "--replay_start=300"],
                              3000, 0.0),
                             (["CartPole-v1", "--alg=DDQN", "--tau=0.005"], 1_000, 0.0),     # the presets'
                             (["Pendulum-v1", "--alg=DDPG"], 1_000, 0.005)):                  # replay_start
        cfg, _ = parse_args(argv)
        path = save_checkpoint(str(tmp_path / "iter_1.pt"), cfg, {"steps": 1}, {})
        payload = torch.load(path, weights_only=True)
        payload["format"] = 1
        torch.save(payload, path)
        saved = load_checkpoint(path)["config"]
        assert saved["replay"]["replay_start"] == start and saved["alg"]["tau"] == tau, argv
