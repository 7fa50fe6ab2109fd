"""The replay actor's logic without Ray (agents/roles.py ReplayServer): the one legitimate drop, every
other error surfacing, beta annealed by learner steps, R2D2's warm-up counted in steps."""
from dataclasses import replace

import numpy as np
import pytest

from agents.config import parse_args, validate
from agents.roles import ReplayFailed, ReplayServer
from buffers import PriorityUpdate
from envs import env_info
from test.test_replay import vector_push

INFO = env_info("CartPole-v1")


def server(*flags):
    cfg, _ = parse_args(["CartPole-v1", "--replay_size=1000", "--replay_start=64", "--batch_size=32", *flags])
    return ReplayServer(cfg, INFO)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def vec4(stream, base, n, generation=0):
    p = vector_push(stream, base, n)
    return replace(p, frames=np.repeat(p.frames[:, :1], 4, axis=1), generation=generation)


def test_a_dead_agents_late_push_is_dropped_unchanged_and_counted():
    rs = server()
    old = rs.new_generation()
    rs.add([vec4(0, 0, 10, old)])
    late = vec4(0, 11, 5, old)                      # the dead agent's last push, still in flight
    new = rs.new_generation()
    assert new > old
    rs.add([vec4(0, 0, 20, new)])                   # its restarted successor's first push
    before = rs.memory.state_dict()
    assert rs.add([late]) is True
    assert rs.dropped_pushes == 1 and rs.failure_reason() is None
    assert states_equal(before, rs.memory.state_dict())
    assert rs.stats()["dropped_pushes"] == 1 and rs.limiter.inserted == 30


def test_any_other_replay_error_stops_the_replay_for_good():
    """Regression: every ValueError used to be counted as a dropped push, after the frame store was half
    updated, so a broken replay went on serving batches."""
    rs = server()
    gen = rs.new_generation()
    rs.add([vec4(0, 0, 80, gen)])
    with pytest.raises(ReplayFailed, match="push starts at frame 90, expected 81"):
        rs.add([vec4(0, 90, 5, gen)])               # a gap in the stream: a bug, not a late push
    assert rs.dropped_pushes == 0
    why, trace = rs.failure_reason()
    assert why.startswith("ValueError: stream 0: push starts at frame 90") and "_admit" in trace
    for call in (lambda: rs.sample(32), lambda: rs.add([vec4(0, 81, 5, gen)]), rs.insert_allowed,
                 lambda: rs.update_priorities(PriorityUpdate(np.array([1]), np.array([1.0], np.float32), 1))):
        with pytest.raises(ReplayFailed, match="push starts at frame 90"):
            call()


def test_beta_anneals_by_learner_steps_not_by_sample_calls():
    """Regression: beta moved once per sample() call, so with R learner replicas (or loaders sampling
    ahead) it annealed R times faster than --beta_steps says."""
    rs = server("--buffer=pmdb", "--beta0=0.4", "--beta_steps=10")
    rs.add([vec4(0, 0, 200, rs.new_generation())])
    for _ in range(40):                             # 4 replicas x 10 batches, no update yet
        assert rs.sample(32).beta == pytest.approx(0.4)
    sb = rs.sample(32)
    rs.update_priorities(PriorityUpdate(sb.ids, np.ones(32, np.float32), step=5))
    assert rs.sample(32).beta == pytest.approx(0.7)
    rs.update_priorities(PriorityUpdate(sb.ids[:1], np.ones(1, np.float32), step=3))   # a late update
    assert rs.sample(32).beta == pytest.approx(0.7)


def test_r2d2_counts_replay_start_in_steps_like_replay_size():
    """Regression: R2D2's --replay_start counted sequences while --replay_size counted steps; the default
    warm-up was 20,000 of 25,000 sequences (about 800k agent steps)."""
    cfg, _ = parse_args(["CartPole-v1", "--alg=R2D2", "--seq_len=20", "--overlap=10", "--burn_in=5", "--lstm=8",
                         "--replay_size=10000", "--replay_start=3000"])
    validate(cfg)
    rs = ReplayServer(cfg, INFO)
    assert rs.memory.capacity == 1000 and rs.limiter.min_size == 300      # both in sequences of 10 new steps
    default, _ = parse_args(["Pong", "--alg=R2D2"])
    assert default.replay.replay_start == 50_000 and default.replay.replay_size == 1_000_000
    with pytest.raises(ValueError, match="at least --batch_size \\(64\\) sequences: 2560 steps"):
        validate(parse_args(["Pong", "--alg=R2D2", "--replay_start=2000"])[0])
