"""Torsos: observation -> feature vector."""
from __future__ import annotations

import torch
from torch import nn


class NatureTorso(nn.Module):
    """The DeepMind conv torso (Mnih et al. 2015): uint8 [B, 4, 84, 84] -> [B, 512].

    `norm="gn"` adds GroupNorm after each conv layer (the GroupNorm variant of the network).
    """

    def __init__(self, in_channels: int = 4, norm: str = "none", out_features: int = 512):
        super().__init__()

        def block(cin, cout, k, s):
            layers = [nn.Conv2d(cin, cout, k, s)]
            if norm == "gn":
                layers.append(nn.GroupNorm(num_groups=cout // 16, num_channels=cout))
            layers.append(nn.ReLU())
            return layers

        self.convs = nn.Sequential(*block(in_channels, 32, 8, 4), *block(32, 64, 4, 2), *block(64, 64, 3, 1),
                                   nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(64 * 7 * 7, out_features), nn.ReLU())
        self.out_features = out_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0           # [B, 4, 84, 84]
        return self.fc(self.convs(x))     # [B, 512]


class MLPTorso(nn.Module):
    """Vector observations: float [B, D] -> [B, hidden[-1]], ReLU MLP, optional LayerNorm."""

    def __init__(self, in_features: int, hidden: tuple[int, ...] = (256, 256), layer_norm: bool = False):
        super().__init__()
        layers, d = [], in_features
        for h in hidden:
            layers.append(nn.Linear(d, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(nn.ReLU())
            d = h
        self.body = nn.Sequential(*layers)
        self.out_features = d

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs.float())
