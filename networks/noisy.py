"""Noisy nets (Fortunato et al. 2018): linear layers whose weights carry learned, factorised Gaussian noise.

    y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b,   eps_w = f(eps_out) f(eps_in)^T,  eps_b = f(eps_out)
    f(x) = sign(x) sqrt(|x|),  eps_in ~ N(0, I_p),  eps_out ~ N(0, I_q)

Initialisation as in the paper: mu ~ U(-1/sqrt(p), 1/sqrt(p)), sigma = sigma0 / sqrt(p), sigma0 = 0.5.
The noise is drawn by `reset_noise` and held until the next draw; with the noise off (`set_noise(net,
False)`: the evaluator, --test) a layer uses its mean weights mu.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def scaled_noise(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """f(x) = sign(x) sqrt(|x|) of n standard normals (on the CPU: a layer moves them to its device)."""
    x = torch.randn(n, generator=generator)
    return x.sign() * x.abs().sqrt()


class NoisyLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        # the current noise: buffers, so that they follow .to(device), but not saved (drawn afresh after a load)
        self.register_buffer("eps_in", torch.zeros(in_features), persistent=False)
        self.register_buffer("eps_out", torch.zeros(out_features), persistent=False)
        self.noise_on = True
        self.reset_noise()

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        device = self.weight_mu.device
        self.eps_in = scaled_noise(self.in_features, generator).to(device)
        self.eps_out = scaled_noise(self.out_features, generator).to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.noise_on:
            return nn.functional.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        bias = self.bias_mu + self.bias_sigma * self.eps_out
        return nn.functional.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def reset_noise(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """Draw new noise in every noisy layer of `net`."""
    for m in net.modules():
        if isinstance(m, NoisyLinear):
            m.reset_noise(generator)


def set_noise(net: nn.Module, on: bool) -> None:
    """Noise on (agents exploring, the learner) or off (mean weights: the evaluator and --test)."""
    for m in net.modules():
        if isinstance(m, NoisyLinear):
            m.noise_on = on


def has_noise(net: nn.Module) -> bool:
    return any(isinstance(m, NoisyLinear) for m in net.modules())
