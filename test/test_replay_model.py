"""The replay against its reference model (test/replay_model.py), by property: hypothesis draws a
configuration and a list of operations; a failure shrinks to a short list that reproduces it."""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test.replay_model import Case, Harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREAMS = 3


def operations():
    stream = st.integers(0, STREAMS - 1)
    op = st.one_of(
        st.tuples(st.just("steps"), stream, st.integers(1, 100)),
        st.tuples(st.just("push"), stream),
        st.tuples(st.just("sample"), st.integers(1, 32)),
        st.tuples(st.just("update"), st.integers(1, 24), st.sampled_from([0.1, 1.0, 10.0])),
        st.tuples(st.just("restart"), stream, st.integers(1, 12)),
        st.tuples(st.just("save")),
    )
    return st.lists(op, min_size=20, max_size=120)


def cases(sequences: bool, image: bool, buffer: str):
    return st.builds(
        Case, sequences=st.just(sequences), image=st.just(image), buffer=st.just(buffer),
        capacity=st.one_of(st.integers(1, 40), st.integers(40, 400)), streams=st.integers(1, STREAMS),
        shards=st.integers(1, 2), frame_slots=st.integers(1, 40), writer_priorities=st.booleans(),
        stack=st.integers(1, 4),
        nstep=st.integers(1, 4), seq_len=st.integers(1, 6), overlap=st.integers(0, 5),
        p_term=st.sampled_from([0.0, 0.05, 0.3]), p_trunc=st.sampled_from([0.0, 0.05, 0.3]),
        keyframe_interval=st.integers(1, 6), seed=st.integers(0, 2 ** 16))


KINDS = [(seq, image, buffer) for seq in (False, True) for image in (True, False) for buffer in ("mmdb", "pmdb")]


@pytest.mark.parametrize("sequences,image,buffer", KINDS,
                         ids=[f"{'seq' if s else 'trans'}-{'img' if i else 'vec'}-{b}" for s, i, b in KINDS])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_replay_matches_its_reference_model(sequences, image, buffer, data):
    case = data.draw(cases(sequences, image, buffer))
    if case.sequences and case.overlap >= case.seq_len:
        case = Case(**{**case.__dict__, "overlap": case.seq_len - 1})
    ops = data.draw(operations())
    h = Harness(case)
    h.run(ops + [("sample", 16)])


def test_the_soak_benchmark_short():
    """CI's short version of bench/replay_soak.py: every kind of replay, across the frame store's first
    growth point, a few thousand operations each; its JSON line reports no failure."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "replay_soak.py"), "--operations=40000",
                          "--cases=8", "--max_capacity=2500"], capture_output=True, text=True, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0 and result["failures"] == 0, out.stderr[-3000:]
    assert result["cases"] == 8 and result["operations"] >= 40000 and result["cases_that_grew_the_frame_store"] == 8
    assert result["items_checked"] > 10000 and result["stale_pushes_refused"] > 0 and result["saves"] > 0


def test_defect_free_stack_overflow_after_growth():
    """Regression: after the frame store grew, its free stack had room for only the slots free at that
    moment; freeing more at once later wrote past its end (one vector stream, 5% terminations, a push
    every 50 steps, capacity 2150: a ValueError at the 44th push, negative reference counts after)."""
    h = Harness(Case(image=False, streams=1, capacity=2150, frame_slots=1024, p_term=0.05, p_trunc=0.0))
    for _ in range(80):
        h.run([("steps", 0, 50), ("push", 0)])
    assert h.replays[0].frames.slots > 2304   # grew twice: 1024 -> 2304 -> 3904


@pytest.mark.parametrize("seed", range(3))
def test_defect_keyframe_predecessor_beyond_the_batch(seed):
    """Regression: sampling looked up the stack predecessor of every needed frame, keyframes too; one
    lying beyond every needed slot ran searchsorted off the end (IndexError). Three interleaved image
    streams, ring overwrites."""
    h = Harness(Case(image=True, streams=3, capacity=50, frame_slots=16, seed=seed))
    for i in range(120):
        h.run([("steps", i % 3, 7), ("push", i % 3), ("sample", 8)])
    assert h.counts["items_checked"] == 120 * 8
