"""Torsos: observation -> feature vector."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


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
        # conv1(obs / 255) computed as conv1 with its weights / 255 on obs: the same up to float rounding,
        # without a pass over the [B, 4, 84, 84] input (a sixth of an agent's batch-16 forward on a CPU)
        conv1 = self.convs[0]
        x = F.conv2d(obs.float(), conv1.weight * (1.0 / 255.0), conv1.bias, conv1.stride)
        return self.fc(self.convs[1:](x))     # [B, 512]


class MinAtarTorso(nn.Module):
    """The MinAtar paper's torso (Young and Tian 2019): uint8 [B, 1, C, 10, 10] (a stack of one frame) ->
    one 3x3 conv of 16 channels (stride 1, no padding) -> 128 hidden units, ReLUs."""

    def __init__(self, in_channels: int, size: tuple[int, int] = (10, 10), channels: int = 16,
                 out_features: int = 128):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, channels, 3, 1), nn.ReLU(), nn.Flatten())
        self.conv_features = channels * (size[0] - 2) * (size[1] - 2)
        self.fc = nn.Sequential(nn.Linear(self.conv_features, out_features), nn.ReLU())
        self.out_features = out_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.flatten(1, 2).float()   # [B, S * C, 10, 10]; the values are 0/1
        return self.fc(self.conv(x))


def make_torso(obs_shape: tuple, norm: str = "none", hidden: tuple[int, ...] = (256, 256)) -> nn.Module:
    """The torso that fits the observation: an Atari stack [S, 84, 84] -> Nature; a stack of MinAtar
    frames [S, C, H, W] -> MinAtar; a vector [D] -> MLP. `norm`: "gn" (conv GroupNorm), "ln" (MLP LayerNorm)."""
    if len(obs_shape) == 3:
        return NatureTorso(obs_shape[0], norm=norm)
    if len(obs_shape) == 4:
        return MinAtarTorso(obs_shape[0] * obs_shape[1], tuple(obs_shape[2:]))
    return MLPTorso(int(obs_shape[0]), hidden, layer_norm=norm == "ln")


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
