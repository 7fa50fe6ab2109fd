"""Replay shards: per-shard counts, merged importance weights, id routing, the sharded sampler, a run."""
import glob

import numpy as np
import pytest

from agents.config import parse_args
from agents.driver import train
from agents.roles import ShardedSampler
from buffers import PriorityUpdate, SampledBatch, decode_batch
from buffers.replay import importance_weights
from buffers.shards import concat_batches, global_ids, reweight, route_update, split_counts


def test_split_counts_follow_the_masses():
    rng = np.random.default_rng(0)
    counts = np.array([split_counts(100, [1.0, 3.0], rng) for _ in range(2000)])
    assert np.all(counts.sum(axis=1) == 100)
    assert counts[:, 1].mean() / 100 == pytest.approx(0.75, abs=0.01)
    assert split_counts(10, [0.0, 0.0], rng).sum() == 10     # empty shards: asked equally


def test_ids_carry_their_shard_and_updates_go_back_to_it():
    ids = np.concatenate([global_ids(np.array([5, 7]), 0, 3), global_ids(np.array([5, 9]), 2, 3)])
    routed = route_update(PriorityUpdate(ids, np.array([0.1, 0.2, 0.3, 0.4])), 3)
    assert sorted(routed) == [0, 2]
    assert routed[0].ids.tolist() == [5, 7] and routed[0].priority.tolist() == [0.1, 0.2]
    assert routed[2].ids.tolist() == [5, 9] and routed[2].priority.tolist() == [0.3, 0.4]


def _part(ids, probs, mass, size, beta=0.5):
    n = len(ids)
    return SampledBatch(ids=np.array(ids), weights=np.ones(n, np.float32), action=np.zeros(n, np.int64),
                        ret=np.zeros(n, np.float32), discount=np.zeros(n, np.float32),
                        obs=np.arange(n, dtype=np.float32)[:, None], next_obs=np.zeros((n, 1), np.float32),
                        probs=np.array(probs), mass=mass, size=size, beta=beta)


def test_merged_weights_equal_those_of_one_replay_holding_everything():
    # shard 0 holds priorities (alpha applied) 1 and 2, shard 1 holds 3 and 4: one replay would give P = p / 10
    parts = {0: _part([0, 1], [1 / 3, 2 / 3], 3.0, 2), 1: _part([0], [4 / 7], 7.0, 2)}
    merged = reweight(parts, 2, prioritized=True)
    weights = np.concatenate([p.weights for p in merged])
    np.testing.assert_allclose(weights, importance_weights(np.array([0.1, 0.2, 0.4]), 4, 0.5), rtol=1e-6)
    assert np.concatenate([p.ids for p in merged]).tolist() == [0, 2, 1]
    uniform = reweight(parts, 2, prioritized=False)
    assert np.all(np.concatenate([p.weights for p in uniform]) == 1)


def test_sharded_sampler_keeps_parts_while_a_shard_holds_back():
    calls = []
    held = {"first": True}

    def request(wanted):
        calls.append(wanted)
        out = []
        for k, n in wanted:
            if k == 1 and held["first"]:
                held["first"] = False
                out.append(None)       # shard 1's rate limiter says wait
            else:
                out.append(_part(list(range(n)), [1.0 / 8] * n, 8.0, 8))
        return out

    sampler = ShardedSampler(request, lambda: [1.0, 1.0], 2, prioritized=True, seed=3)
    assert sampler(16) is None
    parts = sampler(16)
    assert [k for k, _ in calls[1]] == [1]                     # only the missing part was asked again
    assert sum(len(p.ids) for p in parts) == 16
    batch = concat_batches([decode_batch(p) for p in parts])
    assert len(batch.ids) == 16 and np.all(batch.ids % 2 == np.array([0] * len(parts[0].ids) + [1] * len(parts[1].ids)))


def test_a_blind_split_is_redone_once_a_shard_has_data():
    """Regression: with every shard empty the first split is a guess; it used to be kept until every
    part arrived, so a shard that never fills (more shards than agents) hung the loader for good."""
    masses = [[0.0, 0.0], [5.0, 0.0]]

    def request(wanted):
        return [_part(list(range(n)), [1.0 / 5] * n, 5.0, 5) if k == 0 and masses[0][0] > 0 else None
                for k, n in wanted]

    sampler = ShardedSampler(request, lambda: masses[0], 2, prioritized=False, seed=0)
    assert sampler(8) is None          # nothing anywhere yet
    masses.pop(0)                      # shard 0 fills; shard 1 stays empty
    parts = sampler(8)
    assert parts is not None and [len(p.ids) for p in parts] == [8] and np.all(parts[0].ids % 2 == 0)


def test_more_shards_than_agents_is_refused_at_start(capsys):
    """Regression: --num_agents=1 --replay_shards=2 left shard 1 empty and the loaders waited forever."""
    from main import main

    assert main(["CartPole-v1", "--num_agents=1", "--replay_shards=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--replay_shards (2) cannot exceed --num_agents (1)" in err and "\n" not in err


def test_priority_updates_carry_the_learner_step_to_every_shard():
    routed = route_update(PriorityUpdate(np.array([0, 1, 2, 3]), np.ones(4, np.float32), step=77), 2)
    assert {k: u.step for k, u in routed.items()} == {0: 77, 1: 77}


@pytest.mark.slow
def test_a_run_with_two_replay_shards_trains_saves_and_restores_both(ray_session, tmp_path):
    common = ["CartPole-v1", "--alg=DDQN", "--buffer=pmdb", "--replay_shards=2", "--num_agents=2", "--num_loaders=1",
              "--batch_size=32", "--replay_start=500", "--eval_period=0", "--save_period=50", "--suffix=shards",
              "--save_replay", f"--logdir={tmp_path}/logs", f"--modeldir={tmp_path}/model", "--status_period=5"]
    cfg, given = parse_args([*common, "--max_steps=3000"])
    first = train(cfg, given)
    assert first["learner_steps"] > 0 and first["replay_size"] >= 2500
    saved = sorted(glob.glob(f"{tmp_path}/model/**/*.replay*.npz", recursive=True))
    assert saved == [first["checkpoint"][:-3] + ".replay0.npz", first["checkpoint"][:-3] + ".replay1.npz"]
    cfg, given = parse_args([*common, "--max_steps=3600", f"--resume={first['checkpoint']}"])
    resumed = train(cfg, given)
    assert resumed["replay_size"] >= first["replay_size"] + 400   # restored: without it ~600
