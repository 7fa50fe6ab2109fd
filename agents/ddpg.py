"""Distributed DDPG and D4PG over n-step returns (Lillicrap et al. 2016; Horgan et al. 2018 (Ape-X DPG);
Barth-Maron et al. 2018 (D4PG)), for vector observations and continuous actions.

Pure pieces first (action scaling, exploration noise; the categorical projection is agents/distributional.py's,
shared with Rainbow), then the
learner that owns the actor, the critic, their targets and optimizers. No Ray here. The learner works in
the normalised action space [-1, 1]^A; agents map actions to the env's bounds with `scale_action`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from agents.distributional import categorical_loss, categorical_projection, expected_value
from agents.optim import Launched, device_tensor, follow_target, gradient_step
from buffers.records import Batch
from networks.continuous import Actor, Critic


# --- actions and exploration ---------------------------------------------------------------------
def scale_action(u: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [low, high]: low + (u + 1) * (high - low) / 2, u clipped to [-1, 1] first."""
    u = np.clip(u, -1.0, 1.0)
    return low + (u + 1.0) * (high - low) / 2.0


def unscale_action(a: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[low, high] -> [-1, 1], the inverse of `scale_action` (clipped to [-1, 1])."""
    return np.clip(2.0 * (a - low) / (high - low) - 1.0, -1.0, 1.0)


def agent_noise_scale(i: int, n: int, sigma_min: float, sigma_max: float) -> float:
    """Ape-X DPG: agent i of n (from 0) explores with sigma_max * (sigma_min / sigma_max)^(i / (n - 1)),
    geometrically spaced from sigma_max (agent 0) down to sigma_min (agent n-1); a single agent gets the
    geometric mean sqrt(sigma_min * sigma_max)."""
    if not 0.0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if n < 2:
        return math.sqrt(sigma_min * sigma_max)
    return sigma_max * (sigma_min / sigma_max) ** (i / (n - 1))


class GaussianNoise:
    """Independent N(0, sigma^2) per action dimension and step."""

    def __init__(self, action_dim: int, sigma: float, rng: np.random.Generator):
        self.action_dim, self.sigma, self.rng = action_dim, sigma, rng

    def sample(self) -> np.ndarray:
        return (self.sigma * self.rng.standard_normal(self.action_dim)).astype(np.float32)   # [A]

    def reset(self) -> None:
        pass


class OUNoise:
    """Ornstein-Uhlenbeck noise around 0: x += theta * (0 - x) * dt + sigma * sqrt(dt) * N(0, 1);
    `reset` (at each episode start) puts x back to 0."""

    def __init__(self, action_dim: int, sigma: float, rng: np.random.Generator, theta: float = 0.15,
                 dt: float = 1.0):
        self.sigma, self.rng, self.theta, self.dt = sigma, rng, theta, dt
        self.x = np.zeros(action_dim, np.float64)

    def sample(self) -> np.ndarray:
        self.x += self.theta * (0.0 - self.x) * self.dt \
            + self.sigma * math.sqrt(self.dt) * self.rng.standard_normal(len(self.x))
        return self.x.astype(np.float32)   # [A], a copy

    def reset(self) -> None:
        self.x[:] = 0.0


def explore(u: np.ndarray, noise_sample: np.ndarray) -> np.ndarray:
    """The behaviour action: clip(u + noise, -1, 1)."""
    return np.clip(u + noise_sample, -1.0, 1.0)


def make_actor(obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256)) -> Actor:
    """The Actor that `DDPGLearner.weights()` loads into (agents, evaluator)."""
    return Actor(obs_dim, action_dim, tuple(hidden), layer_norm=True)


@torch.no_grad()
def act(actor: nn.Module, obs: np.ndarray) -> np.ndarray:
    """Deterministic actions in [-1, 1] for float obs [E, D] -> float32 [E, A] (numpy, CPU)."""
    return actor(torch.as_tensor(np.asarray(obs, np.float32))).numpy()


# --- learner -------------------------------------------------------------------------------------
class DDPGLearner(Launched):
    """Online and target actor and critic, one Adam and gradient clipping each; one `update` per batch.

    DDPG (`distributional=False`): critic loss mean(w * 0.5 * (y - Q)^2), y = ret + discount *
    Q'(s', pi'(s')); priority |y - Q|. D4PG: the critic outputs logits over `num_atoms` atoms on
    [v_min, v_max]; loss mean(w * CE(projected target distribution, logits)); priority the per-sample CE.
    The actor maximises Q(s, pi(s)) (D4PG: its expected value) through the critic evaluated with
    detached parameters, so the actor loss never reaches the critic's parameters or gradients.
    Targets: soft update with `tau` after every update, or (tau == 0) a copy every `target_period` updates.
    """

    def __init__(self, obs_dim: int, action_dim: int, *, distributional: bool,
                 hidden: tuple[int, ...] = (256, 256), actor_lr: float = 1e-4, critic_lr: float = 1e-3,
                 tau: float = 0.005, target_period: int = 0, clip_norm: float = 40.0, num_atoms: int = 51,
                 v_min: float = -150.0, v_max: float = 150.0, device: str = "cpu"):
        if tau < 0 or tau > 1 or (tau == 0 and target_period < 1):
            raise ValueError(f"need 0 < tau <= 1, or tau == 0 and target_period >= 1; got {tau}, {target_period}")
        if distributional and (num_atoms < 2 or not v_min < v_max):
            raise ValueError(f"need num_atoms >= 2 and v_min < v_max; got {num_atoms}, {v_min}, {v_max}")
        self.device = torch.device(device)
        self.distributional, self.tau, self.target_period, self.clip_norm = distributional, tau, target_period, clip_norm
        atoms = num_atoms if distributional else 1
        self.actor = make_actor(obs_dim, action_dim, hidden).to(self.device)
        self.critic = Critic(obs_dim, action_dim, tuple(hidden), layer_norm=True, num_atoms=atoms).to(self.device)
        self.actor_target = make_actor(obs_dim, action_dim, hidden).to(self.device)
        self.critic_target = Critic(obs_dim, action_dim, tuple(hidden), layer_norm=True,
                                    num_atoms=atoms).to(self.device)
        for target, online in ((self.actor_target, self.actor), (self.critic_target, self.critic)):
            target.load_state_dict(online.state_dict())
            target.requires_grad_(False)
        self.support = torch.linspace(v_min, v_max, num_atoms, device=self.device) if distributional else None
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=critic_lr)
        self.steps = 0
        self.grad_sync = None   # set by data-parallel replicas: averages gradients before clipping

    def to_device(self, batch: Batch) -> dict[str, torch.Tensor]:
        def t(x):
            return device_tensor(x, self.device)
        return {"obs": t(batch.obs).float(), "next_obs": t(batch.next_obs).float(),
                "action": t(batch.action).float(), "ret": t(batch.ret).float(),
                "discount": t(batch.discount).float(), "weights": t(batch.weights).float()}

    def _value(self, out: torch.Tensor) -> torch.Tensor:
        """Critic output -> Q [B] (the expected value for D4PG)."""
        return expected_value(out, self.support) if self.distributional else out

    def critic_step(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One critic gradient step; returns (loss, mean Q(s, a), priorities [B]) on the device."""
        with torch.no_grad():
            next_out = self.critic_target(b["next_obs"], self.actor_target(b["next_obs"]))
        out = self.critic(b["obs"], b["action"])
        if self.distributional:
            with torch.no_grad():
                target = categorical_projection(next_out.softmax(dim=-1), b["ret"], b["discount"], self.support)
            per_sample = categorical_loss(out, target)                        # cross-entropy [B]
            priorities = per_sample.detach()
        else:
            y = b["ret"] + b["discount"] * next_out
            per_sample = 0.5 * (y - out).pow(2)
            priorities = (y - out.detach()).abs()
        loss = (b["weights"] * per_sample).mean()
        gradient_step(loss, self.critic, self.critic_opt, self.clip_norm, self.grad_sync)
        mean_q = self._value(out.detach()).mean()
        return loss.detach(), mean_q, priorities

    def actor_loss(self, obs: torch.Tensor) -> torch.Tensor:
        """-mean Q(s, pi(s)), the critic evaluated with detached parameters: gradient reaches only the actor."""
        frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
        frozen.update({k: v.detach() for k, v in self.critic.named_buffers()})
        return -self._value(functional_call(self.critic, frozen, (obs, self.actor(obs)))).mean()

    def actor_step(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = self.actor_loss(b["obs"])
        gradient_step(loss, self.actor, self.actor_opt, self.clip_norm, self.grad_sync)
        return loss.detach()

    def launch(self, b: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Critic step, then actor step (against the updated critic), then targets; returns stats
        ("loss" (critic), "actor_loss", "mean_q") and new priorities [B], still on the device (`update`
        returns them on the host)."""
        loss, mean_q, priorities = self.critic_step(b)
        actor_loss = self.actor_step(b)
        self.steps += 1
        follow_target(self.actor_target, self.actor, self.steps, self.tau, self.target_period)
        follow_target(self.critic_target, self.critic, self.steps, self.tau, self.target_period)
        return {"loss": loss, "actor_loss": actor_loss, "mean_q": mean_q}, priorities

    def weights(self) -> dict[str, torch.Tensor]:
        """The online actor's weights on the CPU, for agents and the evaluator (see `make_actor`)."""
        return {k: v.detach().cpu().clone() for k, v in self.actor.state_dict().items()}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.actor_opt, self.critic_opt]

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "actor_target": self.actor_target.state_dict(), "critic_target": self.critic_target.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "steps": self.steps, "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.steps = int(state["steps"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
