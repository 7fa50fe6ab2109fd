"""A Q network: the torso that fits the observation, then a plain or dueling head."""
from __future__ import annotations

import torch
from torch import nn

from networks.heads import DuelingHead, QHead
from networks.torsos import MLPTorso, NatureTorso


class QNetwork(nn.Module):
    def __init__(self, obs_shape: tuple, num_actions: int, dueling: bool = False, norm: str = "none",
                 hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        if len(obs_shape) == 3:
            self.torso = NatureTorso(obs_shape[0], norm=norm)
            head_hidden = 512 if dueling else 0
            features = self.torso.out_features
            if dueling:   # the dueling streams each get their own 512 hidden layer (Wang et al. 2016)
                self.torso.fc = nn.Identity()
                features = 64 * 7 * 7
        else:
            self.torso = MLPTorso(int(obs_shape[0]), hidden, layer_norm=norm == "ln")
            head_hidden, features = 0, self.torso.out_features
        self.head = DuelingHead(features, num_actions, head_hidden) if dueling else QHead(features, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.torso(obs))   # [B, A]
