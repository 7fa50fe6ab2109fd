import numpy as np
import pytest

from buffers.sum_tree import SumTree


def test_total_and_updates_match_brute_force():
    rng = np.random.default_rng(0)
    tree = SumTree(1000)
    brute = np.zeros(1000)
    for _ in range(50):
        idx = rng.integers(0, 1000, 64)
        val = rng.random(64) * 10
        tree.update(idx, val)
        for i, v in zip(idx, val):   # last write wins, as in the tree
            brute[i] = v
        assert tree.total == pytest.approx(brute.sum(), rel=1e-12)
        np.testing.assert_array_equal(tree.priorities(), brute)
        # every internal node is the sum of its children
        t = tree.tree
        np.testing.assert_allclose(t[1:tree.leaves], t[2:2 * tree.leaves:2] + t[3:2 * tree.leaves:2], rtol=1e-12)


def test_find_returns_the_leaf_holding_each_prefix_mass():
    rng = np.random.default_rng(1)
    p = rng.random(37) * (rng.random(37) > 0.3)   # some zero leaves
    tree = SumTree(37)
    tree.update(np.arange(37), p)
    cum = np.cumsum(p)
    mass = rng.random(10_000) * cum[-1]
    expected = np.searchsorted(cum, mass, side="right")
    np.testing.assert_array_equal(tree.find(mass), expected)
    assert np.all(p[tree.find(mass)] > 0)


def test_stratified_sampling_frequencies_match_priorities():
    """Sampling frequency of each leaf within 5 standard errors of p_i / sum p over 400k draws."""
    rng = np.random.default_rng(2)
    p = rng.random(50) ** 2
    tree = SumTree(50)
    tree.update(np.arange(50), p)
    n_batches, batch = 4000, 100
    counts = np.zeros(50)
    for _ in range(n_batches):
        np.add.at(counts, tree.stratified(batch, rng), 1)
    n = n_batches * batch
    expected = p / p.sum()
    se = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(counts / n - expected) < 5 * se + 1e-9)


def test_capacity_not_a_power_of_two_and_bad_values():
    tree = SumTree(5)
    tree.update(np.array([4]), np.array([2.0]))
    assert tree.total == 2.0
    assert tree.find(np.array([0.0, 1.999]))[0] == 4
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([np.nan]))
