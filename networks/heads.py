"""Heads: feature vector -> values."""
from __future__ import annotations

import torch
from torch import nn


class QHead(nn.Module):
    """[B, F] -> Q values [B, A]."""

    def __init__(self, in_features: int, num_actions: int):
        super().__init__()
        self.q = nn.Linear(in_features, num_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x)


class DuelingHead(nn.Module):
    """Q = V + A - mean(A) (Wang et al. 2016): [B, F] -> [B, A]."""

    def __init__(self, in_features: int, num_actions: int, hidden: int = 0):
        super().__init__()

        def stream(out):
            if hidden:
                return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out))
            return nn.Linear(in_features, out)

        self.value, self.advantage = stream(1), stream(num_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(x)                                   # [B, A]
        return self.value(x) + adv - adv.mean(dim=1, keepdim=True)
