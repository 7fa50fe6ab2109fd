"""The one gradient step every learner takes, with the hook that data-parallel replicas use to average
their gradients before clipping (so every replica clips and steps identically), and how target networks
follow their online networks."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from buffers.replay import linear_schedule
from networks.noisy import reset_noise

GradSync = Callable[[list[torch.nn.Parameter]], None]


@torch.no_grad()
def soft_update(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
    """In place: theta' <- tau * theta + (1 - tau) * theta' for parameters and floating buffers (other
    buffers are copied)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(1.0 - tau).add_(o, alpha=tau)
    for t, o in zip(target.buffers(), online.buffers()):
        if t.is_floating_point():
            t.mul_(1.0 - tau).add_(o, alpha=tau)
        else:
            t.copy_(o)


def follow_target(target: torch.nn.Module, online: torch.nn.Module, steps: int, tau: float, period: int) -> None:
    """The target network after update number `steps`: moved by `tau` toward the online network at every
    update (soft, tau > 0), or a copy of it every `period` updates (tau = 0)."""
    if tau > 0:
        soft_update(target, online, tau)
    elif steps % period == 0:
        target.load_state_dict(online.state_dict())


def lr_scale(step: int, decay_from: int, decay_to: int) -> float:
    """The learning-rate factor before learner step `step`: 1 until `decay_from`, then linear to 0 at
    `decay_to`, and 0 after."""
    return linear_schedule(step - decay_from, 1.0, 0.0, decay_to - decay_from) if step > decay_from else 1.0


def scale_learning_rates(optimizers: Iterable[torch.optim.Optimizer], scale: float) -> None:
    """Every parameter group's learning rate becomes its initial one times `scale` (the initial rate is
    remembered in the group on the first call, as torch's schedulers do)."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * scale


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


def device_tensor(x, device: torch.device) -> torch.Tensor:
    """A batch array on the learner's device. Arrays from Ray's object store are read-only; learners never
    write them, so torch's warning about it is silenced."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.as_tensor(x).to(device, non_blocking=True)


class Launched:
    """`update` for a learner whose `launch(batch)` queues one gradient step on its device and returns
    (stats as 0-d tensors, priorities [B] tensor) without waiting for the device: a caller with other
    work (fetching and staging the next batch) does it between `launch` and `settle`."""

    def update(self, b: dict[str, torch.Tensor]) -> tuple[dict[str, float], np.ndarray]:
        """One gradient step on a device batch; returns stats and new priorities [B] on the host."""
        return settle(*self.launch(b))


def settle(stats: dict[str, torch.Tensor], priorities: torch.Tensor) -> tuple[dict[str, float], np.ndarray]:
    """A launched update's outputs on the host (waits for the device)."""
    return {k: float(v) for k, v in stats.items()}, priorities.detach().float().cpu().numpy()


class OnlineTargetState(Launched):
    """weights / state_dict / load_state_dict of a learner with `net`, `target`, `opt` and `steps`."""

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    def draw_noise(self) -> None:
        """Noisy nets: new noise for the online and the target network, before an update."""
        reset_noise(self.net)
        reset_noise(self.target)

    def weights(self) -> dict[str, torch.Tensor]:
        """The online network's weights on the CPU, for agents and the evaluator."""
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "target": self.target.state_dict(), "opt": self.opt.state_dict(),
                "steps": self.steps, "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
        self.steps = int(state["steps"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
