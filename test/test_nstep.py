import pytest

from buffers.nstep import NStepAdder, NStepTransition

G = 0.9


def run(adder, rewards, end):
    """Episode of len(rewards) steps from obs 0; obs t+1 follows step t; `end` in {'term','trunc',None}."""
    adder.reset(0)
    out = []
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        out += adder.step(10 + t, r, t + 1, last and end == "term", last and end == "trunc")
    return out


def test_mid_episode_transitions_are_full_n_step():
    out = run(NStepAdder(3, G), [1.0, 2.0, 3.0, 4.0, 5.0], None)
    assert out == [
        NStepTransition(0, 10, 1 + G * 2 + G * G * 3, G ** 3, 3, 3, False),
        NStepTransition(1, 11, 2 + G * 3 + G * G * 4, G ** 3, 4, 3, False),
        NStepTransition(2, 12, 3 + G * 4 + G * G * 5, G ** 3, 5, 3, False),
    ]


def test_termination_flushes_the_tail_without_bootstrap():
    out = run(NStepAdder(3, G), [1.0, 2.0, 3.0, 4.0], "term")
    assert [(t.obs, t.next_obs, t.steps, t.discount, t.terminal) for t in out] == [
        (0, 3, 3, G ** 3, False), (1, 4, 3, 0.0, True), (2, 4, 2, 0.0, True), (3, 4, 1, 0.0, True)]
    assert out[1].ret == pytest.approx(2 + G * 3 + G * G * 4)
    assert out[2].ret == pytest.approx(3 + G * 4)
    assert out[3].ret == pytest.approx(4.0)


def test_truncation_bootstraps_from_the_last_observation():
    out = run(NStepAdder(3, G), [1.0, 2.0, 3.0, 4.0], "trunc")
    assert [(t.obs, t.next_obs, t.steps, t.terminal) for t in out] == [
        (0, 3, 3, False), (1, 4, 3, False), (2, 4, 2, False), (3, 4, 1, False)]
    assert [t.discount for t in out] == pytest.approx([G ** 3, G ** 3, G ** 2, G])
    assert out[2].ret == pytest.approx(3 + G * 4)


@pytest.mark.parametrize("end", ["term", "trunc"])
def test_episode_shorter_than_n(end):
    out = run(NStepAdder(5, G), [1.0, -1.0], end)
    assert len(out) == 2
    assert (out[0].obs, out[0].next_obs, out[0].steps) == (0, 2, 2)
    assert out[0].ret == pytest.approx(1 - G)
    assert (out[1].obs, out[1].next_obs, out[1].steps, out[1].ret) == (1, 2, 1, -1.0)
    assert [t.discount for t in out] == ([0.0, 0.0] if end == "term" else pytest.approx([G ** 2, G]))


def test_one_step_and_episodes_do_not_mix():
    adder = NStepAdder(1, G)
    out = run(adder, [1.0, 2.0], "term")
    assert [(t.obs, t.ret, t.next_obs, t.discount) for t in out] == [(0, 1.0, 1, G), (1, 2.0, 2, 0.0)]
    adder = NStepAdder(3, G)
    adder.reset(0)
    adder.step(0, 1.0, 1, False, False)
    adder.reset(100)   # a new episode drops the unfinished one
    out = adder.step(0, 5.0, 101, True, False)
    assert [(t.obs, t.ret) for t in out] == [(100, 5.0)]
    with pytest.raises(RuntimeError):
        adder.step(0, 1.0, 102, False, False)   # after the end, reset comes first
