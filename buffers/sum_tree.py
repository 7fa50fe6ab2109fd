"""A sum tree over priorities, vectorised with numpy: batch updates and batch prefix-sum searches
walk the tree level by level (log2 capacity numpy operations per batch, no per-item Python loop)."""
from __future__ import annotations

import numpy as np


class SumTree:
    """Leaves hold non-negative priorities; every internal node holds the sum of its two children."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("SumTree capacity must be at least 1")
        self.capacity = capacity
        self.leaves = 1 << (capacity - 1).bit_length()  # power of two >= capacity
        self.depth = self.leaves.bit_length() - 1
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)  # node 1 is the root, leaves at [leaves, 2*leaves)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(idx) + self.leaves]

    def priorities(self) -> np.ndarray:
        """A view of the leaf priorities, [capacity]."""
        return self.tree[self.leaves:self.leaves + self.capacity]

    def update(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Set leaves `idx` to `values` (the last value wins for a repeated index) and refresh the sums."""
        idx = np.asarray(idx, dtype=np.int64).ravel()
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), idx.shape)
        if idx.size == 0:
            return
        if np.any(values < 0) or not np.all(np.isfinite(values)):
            raise ValueError("priorities must be finite and non-negative")
        _, last = np.unique(idx[::-1], return_index=True)
        keep = idx.size - 1 - last
        pos = idx[keep] + self.leaves   # sorted: np.unique's order
        self.tree[pos] = values[keep]
        for _ in range(self.depth):
            pos = pos >> 1   # still sorted, so its repeats are neighbours (no sort per level)
            if pos.size > 1:
                pos = pos[np.concatenate(([True], pos[1:] != pos[:-1]))]
            self.tree[pos] = self.tree[2 * pos] + self.tree[2 * pos + 1]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index whose prefix-sum interval holds each `mass` in [0, total)."""
        mass = np.minimum(np.asarray(mass, dtype=np.float64), np.nextafter(self.total, 0.0))
        node = np.ones(mass.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = self.tree[2 * node]
            right = mass >= left
            mass = np.where(right, mass - left, mass)
            node = 2 * node + right
        return np.minimum(node - self.leaves, self.capacity - 1)

    def stratified(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """One leaf from each of `batch_size` equal slices of the total mass."""
        bounds = np.arange(batch_size, dtype=np.float64)
        mass = (bounds + rng.random(batch_size)) * (self.total / batch_size)
        return self.find(mass)
