"""Replay: frame store (lz4, deduplicated), sum tree, uniform and prioritized replay, n-step adder,
agent-side writer and loader-side decoding. No torch, no Ray."""
from buffers.loader import decode_batch
from buffers.nstep import NStepAdder, NStepTransition
from buffers.records import Batch, PriorityUpdate, Push, SampledBatch
from buffers.replay import (
           PrioritizedReplay,
           UniformReplay,
           importance_weights,
           linear_schedule,
           make_replay,
)
from buffers.sum_tree import SumTree
from buffers.writer import StreamWriter, td_priority

__all__ = ["Batch", "NStepAdder", "NStepTransition", "PrioritizedReplay", "PriorityUpdate", "Push",
           "SampledBatch", "StreamWriter", "SumTree", "UniformReplay", "decode_batch", "importance_weights",
           "linear_schedule", "make_replay", "td_priority"]
