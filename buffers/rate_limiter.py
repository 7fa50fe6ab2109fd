"""Holds the replay ratio: transitions sampled per transition inserted (Reverb's SampleToInsertRatio).

diff = speed * inserted - sampled must stay within [speed * min_size - tolerance, speed * min_size + tolerance]
once the replay holds `min_size` transitions: sampling waits when the learner runs ahead of the agents,
inserting waits when the agents run ahead of the learner. Below `min_size` inserting is always allowed.
"""
from __future__ import annotations


class RateLimiter:
    def __init__(self, speed: float, min_size: int, tolerance: float):
        if speed <= 0 or tolerance < 0:
            raise ValueError("speed must be positive and tolerance non-negative")
        self.speed, self.min_size, self.tolerance = speed, min_size, tolerance
        self.inserted = 0
        self.sampled = 0

    @property
    def diff(self) -> float:
        return self.speed * self.inserted - self.sampled

    def can_sample(self, n: int) -> bool:
        return (self.inserted >= self.min_size
                and self.diff - n >= self.speed * self.min_size - self.tolerance)

    def can_insert(self, n: int = 1) -> bool:
        return (self.inserted + n <= self.min_size
                or self.diff + self.speed * n <= self.speed * self.min_size + self.tolerance)

    def ratio(self) -> float:
        """Sampled per inserted since the replay reached min_size."""
        past = self.inserted - self.min_size
        return self.sampled / past if past > 0 else 0.0
