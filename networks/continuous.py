"""Continuous control (DDPG, D4PG): a deterministic tanh actor and a Q critic, both LayerNorm MLPs.

Actions are in the normalised space [-1, 1]^A throughout; agents scale them to the env's bounds.
"""
from __future__ import annotations

import torch
from torch import nn

from networks.torsos import MLPTorso


class Actor(nn.Module):
    """float obs [B, D] -> actions in [-1, 1] [B, A]: MLP (Linear, LayerNorm, ReLU), Linear, tanh.

    The last layer starts with weights and biases uniform in +-3e-3 (Lillicrap et al. 2016), so the
    first actions are near 0 and tanh is not saturated.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256),
                 layer_norm: bool = True):
        super().__init__()
        self.torso = MLPTorso(obs_dim, tuple(hidden), layer_norm=layer_norm)
        self.out = nn.Linear(self.torso.out_features, action_dim)
        nn.init.uniform_(self.out.weight, -3e-3, 3e-3)
        nn.init.uniform_(self.out.bias, -3e-3, 3e-3)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.torso(obs)))   # [B, A]


class Critic(nn.Module):
    """(obs [B, D], action [B, A]) -> Q [B] (num_atoms == 1) or return-distribution logits [B, num_atoms].

    The input is concat(obs, action) [B, D + A], fed to one MLP (Linear, LayerNorm, ReLU per layer) and
    a linear output, as in D4PG's critic (Barth-Maron et al. 2018) and Acme's LayerNormMLP critic.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256),
                 layer_norm: bool = True, num_atoms: int = 1):
        super().__init__()
        self.num_atoms = num_atoms
        self.torso = MLPTorso(obs_dim + action_dim, tuple(hidden), layer_norm=layer_norm)
        self.out = nn.Linear(self.torso.out_features, num_atoms)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = self.out(self.torso(torch.cat([obs.float(), action.float()], dim=-1)))   # [B, K]
        return x.squeeze(-1) if self.num_atoms == 1 else x
