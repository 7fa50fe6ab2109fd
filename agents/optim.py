"""The one gradient step every learner takes, with the hook that data-parallel replicas use to average
their gradients before clipping (so every replica clips and steps identically)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch

GradSync = Callable[[list[torch.nn.Parameter]], None]


def gradient_step(loss: torch.Tensor, module: torch.nn.Module, opt: torch.optim.Optimizer, clip_norm: float,
                  grad_sync: GradSync | None = None) -> None:
    """zero grads, backward, (average grads across replicas), clip to `clip_norm`, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = list(module.parameters())
    if grad_sync is not None:
        grad_sync(params)
    torch.nn.utils.clip_grad_norm_(params, clip_norm)
    opt.step()


def flatten_grads(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """All gradients in one flat tensor (zeros where a parameter got none), for one collective call."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def unflatten_grads(flat: torch.Tensor, params: Iterable[torch.nn.Parameter]) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def make_grad_sync(world: int) -> GradSync:
    """Average gradients over the `world` replicas of a torch.distributed process group: one all-reduce
    of every gradient flattened together (ranks receive identical sums, so they stay bit-identical)."""
    import torch.distributed as dist

    def sync(params: list[torch.nn.Parameter]) -> None:
        flat = flatten_grads(params)
        dist.all_reduce(flat)
        flat /= world
        unflatten_grads(flat, params)

    return sync
