"""A Q network: the torso that fits the observation, then a plain or dueling head."""
from __future__ import annotations

import torch
from torch import nn

from networks.heads import DuelingHead, QHead
from networks.torsos import NatureTorso, make_torso


class QNetwork(nn.Module):
    """obs -> Q [B, A]; with `atoms` > 1 the logits [B, A, atoms] of each action's value distribution.
    `noisy`: the head's linear layers are noisy (networks/noisy.py)."""

    def __init__(self, obs_shape: tuple, num_actions: int, dueling: bool = False, norm: str = "none",
                 hidden: tuple[int, ...] = (256, 256), atoms: int = 1, noisy: bool = False):
        super().__init__()
        self.torso = make_torso(obs_shape, norm, hidden)
        head_hidden, features = 0, self.torso.out_features
        if dueling and isinstance(self.torso, NatureTorso):
            # the dueling streams each get their own 512 hidden layer (Wang et al. 2016)
            self.torso.fc = nn.Identity()
            head_hidden, features = 512, 64 * 7 * 7
        self.head = (DuelingHead(features, num_actions, head_hidden, atoms, noisy) if dueling
                     else QHead(features, num_actions, atoms, noisy))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.torso(obs))   # [B, A] or [B, A, atoms]
