"""Heads: feature vector -> values. With `atoms` > 1 a head outputs, per action, the logits of a categorical
value distribution (C51); `noisy` makes its linear layers noisy (networks/noisy.py)."""
from __future__ import annotations

import torch
from torch import nn

from networks.noisy import NoisyLinear


def _linear(noisy: bool):
    return NoisyLinear if noisy else nn.Linear


class QHead(nn.Module):
    """[B, F] -> Q values [B, A], or logits [B, A, atoms]."""

    def __init__(self, in_features: int, num_actions: int, atoms: int = 1, noisy: bool = False):
        super().__init__()
        self.num_actions, self.atoms = num_actions, atoms
        self.q = _linear(noisy)(in_features, num_actions * atoms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.q(x))

    def combine(self, out: torch.Tensor) -> torch.Tensor:
        """The layer's output [B, A * atoms] -> the head's [B, A] or [B, A, atoms]."""
        return out if self.atoms == 1 else out.view(-1, self.num_actions, self.atoms)


class DuelingHead(nn.Module):
    """Q = V + A - mean(A) (Wang et al. 2016): [B, F] -> [B, A]; with atoms, the same on each atom's logits
    (Rainbow: Hessel et al. 2018) -> [B, A, atoms]."""

    def __init__(self, in_features: int, num_actions: int, hidden: int = 0, atoms: int = 1, noisy: bool = False):
        super().__init__()
        self.num_actions, self.atoms = num_actions, atoms
        linear = _linear(noisy)

        def stream(out):
            if hidden:
                return nn.Sequential(linear(in_features, hidden), nn.ReLU(), linear(hidden, out))
            return linear(in_features, out)

        self.value, self.advantage = stream(atoms), stream(num_actions * atoms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.value(x), self.advantage(x))

    def combine(self, value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
        """The streams' outputs [B, atoms] and [B, A * atoms] -> Q [B, A] (or logits [B, A, atoms])."""
        adv = advantage.view(-1, self.num_actions, self.atoms)     # [B, A, K]
        out = value.view(-1, 1, self.atoms) + adv - adv.mean(dim=1, keepdim=True)
        return out.squeeze(-1) if self.atoms == 1 else out
