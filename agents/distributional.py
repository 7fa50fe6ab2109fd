"""Categorical (C51) value distributions (Bellemare et al. 2017), shared by D4PG's critic and Rainbow's Q head.

Pure functions on torch tensors: the projection of a shifted, scaled distribution onto a fixed support,
the expected value, the double-Q categorical target and the per-sample cross-entropy. No networks here.
"""
from __future__ import annotations

import torch


def categorical_projection(next_probs: torch.Tensor, ret: torch.Tensor, discount: torch.Tensor,
                           support: torch.Tensor) -> torch.Tensor:
    """Project the distribution of ret + discount * Z (Z on `support` with `next_probs` [B, K]) onto the
    fixed, evenly spaced support [K] (Bellemare et al. 2017): [B, K], rows sum to 1.

    Atoms beyond [v_min, v_max] are clipped to the end atoms; each atom's mass is split between its two
    neighbours in proportion to closeness, and all of it goes to one atom when it lands exactly on it.
    discount 0 (termination) puts all mass at clip(ret).
    """
    k = support.shape[0]
    v_min, v_max = support[0], support[-1]
    dz = (v_max - v_min) / (k - 1)
    tz = (ret.unsqueeze(1) + discount.unsqueeze(1) * support.unsqueeze(0)).clamp(v_min, v_max)   # [B, K]
    b = ((tz - v_min) / dz).clamp(0, k - 1)
    lo, hi = b.floor().long(), b.ceil().long()
    p = next_probs.to(b.dtype)
    m_lo = p * (hi.to(b.dtype) - b + (lo == hi).to(b.dtype))   # l == u: the whole mass on l
    m_hi = p * (b - lo.to(b.dtype))
    out = torch.zeros_like(p)
    out.scatter_add_(1, lo, m_lo)
    out.scatter_add_(1, hi, m_hi)
    return out


def expected_value(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Mean of the categorical distribution: logits [B, K] -> [B]."""
    return (logits.softmax(dim=-1) * support).sum(dim=-1)


def make_support(v_min: float, v_max: float, num_atoms: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The evenly spaced atoms [num_atoms] from v_min to v_max."""
    return torch.linspace(v_min, v_max, num_atoms, device=device)


def categorical_q_target(next_logits_target: torch.Tensor, ret: torch.Tensor, discount: torch.Tensor,
                         atoms: torch.Tensor, next_logits_online: torch.Tensor | None = None) -> torch.Tensor:
    """The n-step categorical target distribution [B, K] for Q-learning on logits [B, A, K].

    The next action a* maximises the mean of the online network's distribution (double Q, Rainbow) or, without
    `next_logits_online`, of the target network's (C51); the target network's distribution at a* is shifted by
    ret and scaled by discount, then projected onto `atoms`.
    """
    chooser = next_logits_target if next_logits_online is None else next_logits_online
    best = expected_value(chooser, atoms).argmax(dim=1)                                     # [B]
    next_probs = next_logits_target[torch.arange(len(best), device=best.device), best].softmax(dim=-1)   # [B, K]
    return categorical_projection(next_probs, ret, discount, atoms)


def categorical_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy -sum_k target_k log softmax(logits)_k per sample: logits [B, K], target [B, K] -> [B]."""
    return -(target * logits.log_softmax(dim=-1)).sum(dim=-1)


def categorical_priority(logits_taken, ret: float, discount: float, next_logits, atoms: torch.Tensor) -> float:
    """An agent's initial priority for one transition, from its own network: the cross-entropy of its
    distribution at (s_t, a_t) (`logits_taken` [K]) to the projected target from its greedy action's
    distribution at s_{t+m} (`next_logits` [K]; None when discount is 0, where it does not matter)."""
    logits = torch.as_tensor(logits_taken, dtype=torch.float32)[None]
    nxt = logits if next_logits is None else torch.as_tensor(next_logits, dtype=torch.float32)[None]
    target = categorical_projection(nxt.softmax(dim=-1), torch.tensor([float(ret)]), torch.tensor([float(discount)]),
                                    atoms)
    return float(categorical_loss(logits, target)[0])
