"""R2D2 (Kapturowski et al. 2019): value rescaling, in-sequence n-step double-Q targets, burn-in,
sequence priorities, and the learner.

Pure pieces first, then the learner that owns the recurrent networks and the optimizer. No Ray here.
Batches are SequenceBatch records (buffers/records.py): L steps, L+1 observations, `length` real steps.
The network learns rescaled values h(Q); acting greedily on them is the same as on Q (h is monotone).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from agents.optim import OnlineTargetState, device_tensor, follow_target, gradient_step
from buffers.records import SequenceBatch
from networks.recurrent import RecurrentQNetwork


# --- value rescaling -----------------------------------------------------------------------------
def value_rescale(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + eps * x


def inverse_value_rescale(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """h^-1(x) = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1), exact."""
    return torch.sign(x) * (((torch.sqrt(1 + 4 * eps * (x.abs() + 1 + eps)) - 1) / (2 * eps)) ** 2 - 1)


# --- sequence targets, loss, priorities ----------------------------------------------------------
def sequence_inputs(b: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Previous action int64 [B, L+1] and reward [B, L+1] for observations o_0..o_L: o_0 gets the stored
    prev_action / prev_reward, o_t (t > 0) gets action[t-1], reward[t-1]."""
    prev_action = torch.cat([b["prev_action"].long().unsqueeze(1), b["action"].long()], dim=1)
    prev_reward = torch.cat([b["prev_reward"].float().unsqueeze(1), b["reward"].float()], dim=1)
    return prev_action, prev_reward


def nstep_rescaled_targets(reward: torch.Tensor, discount: torch.Tensor, length: torch.Tensor,
                           boot_value: torch.Tensor, n: int, eps: float = 1e-3) -> torch.Tensor:
    """Rescaled n-step targets [B, L] inside each sequence.

    For t < length, with m = min(n, length - t):
      y_t = h(sum_{k<m} prod_{j<k} d[t+j] r[t+k] + prod_{j<m} d[t+j] h^-1(boot_value[t+m])),
    boot_value [B, L+1] being the (rescaled) value of o_i. The bootstrap is clamped at o_length, the
    last real observation; termination is a zero in `discount`. Entries t >= length are finite junk.
    """
    B, L = reward.shape
    t = torch.arange(L, device=reward.device).expand(B, L)
    length = length.long().unsqueeze(1)                               # [B, 1]
    ret = torch.zeros_like(reward)
    disc = torch.ones_like(reward)                                    # prod_{j<k} d[t+j]
    for k in range(n):
        idx = t + k
        active = idx < length                                         # k < m
        idx = idx.clamp(max=L - 1)
        ret = ret + torch.where(active, disc * reward.gather(1, idx), torch.zeros_like(ret))
        disc = torch.where(active, disc * discount.gather(1, idx), disc)
    boot_idx = torch.minimum(t + n, length)                           # t + m (length for t >= length)
    boot = inverse_value_rescale(boot_value.gather(1, boot_idx), eps)
    return value_rescale(ret + disc * boot, eps)


def sequence_priority(td_abs: torch.Tensor, mask: torch.Tensor, eta: float = 0.9) -> torch.Tensor:
    """eta max_t |delta_t| + (1 - eta) mean_t |delta_t| over masked-in steps [B]; 0 where none is."""
    mask = mask.to(td_abs.dtype)
    td = td_abs.abs() * mask
    mean = td.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return eta * td.max(dim=1).values + (1 - eta) * mean


def r2d2_loss_and_priorities(q_online: torch.Tensor, q_target: torch.Tensor, action: torch.Tensor,
                             reward: torch.Tensor, discount: torch.Tensor, length: torch.Tensor,
                             weights: torch.Tensor, burn_in: int, n: int, eta: float = 0.9,
                             eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, priorities [B] and TD errors [B, L] (detached, 0 at untrained steps) from rescaled Q values
    of all L+1 observations ([B, L+1, A]).

    Trained steps: burn_in <= t < length. delta_t = y_t - Q_online(o_t, a_t), y_t the double-Q target
    (online argmax, target value) of nstep_rescaled_targets, computed without gradient.
    loss = mean_b w_b * sum_t 0.5 delta_t^2 / max(1, trained steps of b). A sequence with no trained
    step has loss 0 and priority 0. Agents compute initial priorities with q_target = q_online, w = 1.
    """
    L = action.shape[1]
    with torch.no_grad():
        greedy = q_online.argmax(dim=2, keepdim=True)                            # [B, L+1, 1]
        boot = q_target.gather(2, greedy).squeeze(2)                             # [B, L+1]
        target = nstep_rescaled_targets(reward, discount, length, boot, n, eps)  # [B, L]
    q_taken = q_online[:, :L].gather(2, action.long().unsqueeze(2)).squeeze(2)    # [B, L]
    t = torch.arange(L, device=action.device).unsqueeze(0)
    mask = ((t >= burn_in) & (t < length.long().unsqueeze(1))).to(q_taken.dtype)
    delta = (target - q_taken) * mask
    count = mask.sum(dim=1).clamp(min=1)
    loss = (weights * (0.5 * delta.pow(2)).sum(dim=1) / count).mean()
    td = delta.detach()
    return loss, sequence_priority(td.abs(), mask, eta), td


# --- learner -------------------------------------------------------------------------------------
class R2D2Learner(OnlineTargetState):
    """Online and target recurrent Q networks, Adam, gradient clipping; one `update` per sequence batch.

    update: burn in the online net on o_0..o_{burn_in-1} without gradient from the stored state, unroll
    the rest with gradient from the (detached) state reached; unroll the target net over all L+1
    observations from the stored state; double-Q rescaled n-step targets; Adam; target copy every
    `target_period` updates. Stats: "loss" and "mean_q" (h^-1 of Q_online(o_t, a_t), mean over trained steps).
    """

    def __init__(self, obs_shape: tuple, num_actions: int, *, hidden: int = 512, dueling: bool = True,
                 lr: float = 1e-4, adam_eps: float = 1e-3, clip_norm: float = 40.0, target_period: int = 2500,
                 burn_in: int = 40, nstep: int = 5, eta: float = 0.9, rescale_eps: float = 1e-3,
                 norm: str = "none", tau: float = 0.0, noisy: bool = False, device: str = "cpu"):
        self.device = torch.device(device)
        self.noisy = noisy
        self.clip_norm, self.target_period, self.tau = clip_norm, target_period, tau
        self.burn_in, self.nstep, self.eta, self.rescale_eps = burn_in, nstep, eta, rescale_eps
        self.net = RecurrentQNetwork(obs_shape, num_actions, hidden, dueling, norm=norm, noisy=noisy).to(self.device)
        self.target = RecurrentQNetwork(obs_shape, num_actions, hidden, dueling, norm=norm,
                                        noisy=noisy).to(self.device)
        self.target.load_state_dict(self.net.state_dict())
        self.target.requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, eps=adam_eps)
        self.steps = 0
        self.grad_sync = None   # set by data-parallel replicas: averages gradients before clipping

    def to_device(self, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        def t(x):
            return device_tensor(x, self.device)
        return {"obs": t(batch.obs), "action": t(batch.action).long(), "reward": t(batch.reward).float(),
                "discount": t(batch.discount).float(), "length": t(batch.length).long(),
                "state": t(batch.state).float(), "prev_action": t(batch.prev_action).long(),
                "prev_reward": t(batch.prev_reward).float(), "weights": t(batch.weights).float()}

    def launch(self, b: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Queue one gradient step on a device batch; {"loss", "mean_q"} and sequence priorities [B], still
        on the device (`update` returns them on the host)."""
        L = b["action"].shape[1]
        if not 0 <= self.burn_in < L:
            raise ValueError(f"burn_in {self.burn_in} leaves no trained step in sequences of {L} steps")
        if self.noisy:
            self.draw_noise()
        prev_action, prev_reward = sequence_inputs(b)
        obs, state = b["obs"], (b["state"][:, 0], b["state"][:, 1])
        k = self.burn_in
        with torch.no_grad():
            if k:
                q_burn, (h, c) = self.net(obs[:, :k], prev_action[:, :k], prev_reward[:, :k], state)
            else:
                q_burn, (h, c) = obs.new_zeros((obs.shape[0], 0, self.net.num_actions), dtype=torch.float32), state
            q_target, _ = self.target(obs, prev_action, prev_reward, state)
        q_rest, _ = self.net(obs[:, k:], prev_action[:, k:], prev_reward[:, k:], (h.detach(), c.detach()))
        q_online = torch.cat([q_burn, q_rest], dim=1)                          # [B, L+1, A]
        loss, priorities, _ = r2d2_loss_and_priorities(
            q_online, q_target, b["action"], b["reward"], b["discount"], b["length"], b["weights"],
            self.burn_in, self.nstep, self.eta, self.rescale_eps)
        gradient_step(loss, self.net, self.opt, self.clip_norm, self.grad_sync)
        self.steps += 1
        follow_target(self.target, self.net, self.steps, self.tau, self.target_period)
        with torch.no_grad():
            q_taken = q_online[:, :L].gather(2, b["action"].unsqueeze(2)).squeeze(2)
            t = torch.arange(L, device=q_taken.device).unsqueeze(0)
            mask = (t >= k) & (t < b["length"].unsqueeze(1))
            # the mean over trained steps (0 if none) without a host sync
            mean_q = (inverse_value_rescale(q_taken, self.rescale_eps) * mask).sum() / mask.sum().clamp(min=1)
        return {"loss": loss.detach(), "mean_q": mean_q}, priorities
