"""Where actors run on a Ray cluster: agents and replay shards round-robin over the nodes, loaders beside
their learner. On one machine every actor simply asks for no CPU."""
from __future__ import annotations

import ray

# Ray ignores a soft node affinity for an actor that asks for no resources at all and places it on a
# random node (Ray 2.60, two nodes on one machine: in two trials 1 and 4 of 6 zero-CPU actors ignored
# it; none did with 0.001 CPU). Actors we place ask for this token share of a CPU.
PLACED_CPUS = 0.001


def cpu_nodes() -> list[str]:
    """The ids of the cluster's live nodes that have CPUs, sorted."""
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)


def near(node: str, nodes: list[str]) -> dict:
    """Options that place an actor on `node` where there is a choice (`nodes`, the cluster's nodes with
    CPUs, are several); soft, so Ray restarts it elsewhere if that node is gone."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if len(nodes) < 2:
        return {"num_cpus": 0}
    return {"num_cpus": PLACED_CPUS, "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}


def spread(i: int, nodes: list[str]) -> dict:
    """Options that place actor i round-robin over `nodes`. Ray's SPREAD does not spread actors that
    reserve no CPU."""
    return near(nodes[i % len(nodes)], nodes) if nodes else {"num_cpus": 0}
