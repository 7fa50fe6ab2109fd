"""Replay shards: K replay actors behind one loader. Pure functions (no Ray): how many items a batch
draws from each shard, the importance weights of the merged batch, item ids that name their shard,
and priority updates routed back to the shard each item came from.

Items are drawn from shard k in proportion to its sampling mass (its priority total under pmdb, its
size under mmdb), so an item's probability in the merged batch is P(i) = P_k(i) * mass_k / sum(mass),
exactly what one replay holding everything would give; importance weights use that P(i) and the total
size, normalised by the merged batch's largest weight.
"""
from __future__ import annotations

from dataclasses import fields, replace

import numpy as np

from buffers.records import PriorityUpdate
from buffers.replay import importance_weights


def split_counts(batch_size: int, masses: list[float], rng: np.random.Generator) -> np.ndarray:
    """Items per shard for one batch: multinomial in proportion to the shards' masses."""
    m = np.asarray(masses, dtype=np.float64)
    if m.sum() <= 0:   # nothing anywhere yet: ask every shard equally (their rate limiters answer)
        m = np.ones_like(m)
    return rng.multinomial(batch_size, m / m.sum())


def global_ids(ids: np.ndarray, shard: int, num_shards: int) -> np.ndarray:
    """Shard-local item ids -> ids that carry their shard: local * K + shard."""
    return np.asarray(ids, dtype=np.int64) * num_shards + shard


def route_update(update: PriorityUpdate, num_shards: int) -> dict[int, PriorityUpdate]:
    """A merged batch's priority update -> one update of local ids per shard that had items in it."""
    ids = np.asarray(update.ids, dtype=np.int64)
    out = {}
    for k in np.unique(ids % num_shards).tolist():
        sel = ids % num_shards == k
        out[k] = PriorityUpdate(ids[sel] // num_shards, np.asarray(update.priority)[sel], update.step)
    return out


def reweight(parts: dict[int, object], num_shards: int, prioritized: bool) -> list:
    """The sampled parts of one batch (shard -> SampledBatch or SampledSequences) with ids made global
    and importance weights computed for the merged batch."""
    keys = sorted(parts)
    total_mass = sum(parts[k].mass for k in keys)
    size = sum(parts[k].size for k in keys)
    if prioritized and total_mass > 0:
        probs = np.concatenate([parts[k].probs * parts[k].mass / total_mass for k in keys])
        # beta follows the learner's steps; a shard that got no recent update lags: take the newest
        weights = importance_weights(probs, size, max(parts[k].beta for k in keys))
    else:
        weights = np.ones(sum(len(parts[k].ids) for k in keys), dtype=np.float32)
    out, start = [], 0
    for k in keys:
        n = len(parts[k].ids)
        out.append(replace(parts[k], ids=global_ids(parts[k].ids, k, num_shards), weights=weights[start:start + n]))
        start += n
    return out


def concat_batches(batches: list):
    """Decoded batches (Batch or SequenceBatch) of the parts -> one batch, arrays concatenated."""
    if len(batches) == 1:
        return batches[0]
    return type(batches[0])(**{f.name: np.concatenate([getattr(b, f.name) for b in batches])
                               for f in fields(batches[0])})
