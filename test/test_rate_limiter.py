import pytest

from buffers.rate_limiter import RateLimiter


def test_sampling_waits_for_min_size_and_inserts():
    rl = RateLimiter(speed=8, min_size=100, tolerance=64)
    rl.inserted = 99
    assert not rl.can_sample(32) and rl.can_insert(1)
    rl.inserted = 100
    assert rl.can_sample(32)          # within tolerance of the ratio
    rl.sampled = 64
    assert not rl.can_sample(1)       # 64 samples ahead of 0 inserts past min_size
    rl.inserted += 8                  # 8 inserts pay for 64 samples
    assert rl.can_sample(64) and not rl.can_sample(65)


def test_inserting_waits_when_agents_run_ahead():
    rl = RateLimiter(speed=8, min_size=100, tolerance=64)
    rl.inserted = 100
    assert rl.can_insert(8) and not rl.can_insert(9)   # 9 inserts would allow 72 > 64 samples of slack
    rl.sampled = 80
    assert rl.can_insert(18) and not rl.can_insert(19)


def test_long_run_ratio_is_held():
    rl = RateLimiter(speed=4, min_size=50, tolerance=32)
    for _ in range(10_000):   # a fast learner and a fast agent taking turns whenever allowed
        if rl.can_insert(1):
            rl.inserted += 1
        if rl.can_sample(16):
            rl.sampled += 16
    assert rl.ratio() == pytest.approx(4, rel=0.05)
