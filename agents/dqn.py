"""DQN, Double DQN and Rainbow over n-step returns (Mnih et al. 2015; van Hasselt et al. 2016; Horgan et al.
2018; Hessel et al. 2018: a categorical value head and noisy nets on double Q, dueling and prioritized replay).

Pure pieces first (epsilons, targets, loss, priorities), then the learner that owns the networks and
the optimizer. No Ray here.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agents.distributional import categorical_loss, categorical_q_target, expected_value, make_support
from agents.optim import OnlineTargetState, device_tensor, follow_target, gradient_step
from buffers.records import Batch
from buffers.replay import linear_schedule
from networks import QNetwork


# --- exploration ---------------------------------------------------------------------------------
def apex_epsilon(i: int, n: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X: agent i of n (from 0) acts with base^(1 + alpha * i / (n - 1))."""
    if n < 2:
        raise ValueError("apex_epsilon needs at least 2 agents; a single agent anneals instead")
    return base ** (1.0 + alpha * i / (n - 1))


def agent_epsilon(i: int, n: int, env_steps: int, eps_steps: int, eps_final: float) -> float:
    """The epsilon agent i of n acts with after `env_steps` of its own steps."""
    if n == 1:
        return linear_schedule(env_steps, 1.0, eps_final, eps_steps)
    return apex_epsilon(i, n)


def env_epsilons(agent: int, num_agents: int, envs: int, env_steps: int, eps_steps: int,
                 eps_final: float) -> np.ndarray:
    """[envs]: each env of each agent is one of the Ape-X formula's num_agents * envs actors; env j of agent i is
    actor j * num_agents + i, so every agent's envs spread over the whole range (agent 0's env 0 explores most)."""
    n = num_agents * envs
    return np.array([agent_epsilon(j * num_agents + agent, n, env_steps, eps_steps, eps_final) for j in range(envs)])


def epsilon_greedy(q: np.ndarray, epsilon: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """q [E, A] -> actions [E]: argmax, or uniformly random with probability epsilon (one for all, or [E])."""
    greedy = q.argmax(axis=1)
    explore = rng.random(len(q)) < epsilon
    return np.where(explore, rng.integers(0, q.shape[1], len(q)), greedy)


# --- targets and loss ----------------------------------------------------------------------------
def q_targets(ret: torch.Tensor, discount: torch.Tensor, next_q_target: torch.Tensor,
              next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """n-step target R + discount * V(s_{t+m}) [B].

    DQN: V = max_a Q_target(s', a). Double DQN (`next_q_online` given): V = Q_target(s', argmax_a Q_online(s', a)).
    """
    if next_q_online is None:
        value = next_q_target.max(dim=1).values
    else:
        value = next_q_target.gather(1, next_q_online.argmax(dim=1, keepdim=True)).squeeze(1)
    return ret + discount * value


def weighted_huber_loss(q_taken: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_i w_i * huber(target_i - q_i), Huber with delta 1."""
    return (weights * F.smooth_l1_loss(q_taken, target, reduction="none")).mean()


# --- learner -------------------------------------------------------------------------------------
class DQNLearner(OnlineTargetState):
    """Online and target Q networks, Adam, gradient clipping; one `update` per batch.

    `atoms` > 1 (Rainbow): the networks output categorical logits over `atoms` atoms on [v_min, v_max]; the
    loss is the importance-weighted cross-entropy to the projected n-step target (categorical_q_target) and the
    priorities are the per-sample cross-entropies. `noisy`: both networks draw new noise before every update.
    """

    def __init__(self, obs_shape: tuple, num_actions: int, *, double: bool, dueling: bool, norm: str,
                 lr: float, adam_eps: float = 1.5e-4, clip_norm: float = 40.0, target_period: int = 2500,
                 tau: float = 0.0, atoms: int = 1, v_min: float = -10.0, v_max: float = 10.0, noisy: bool = False,
                 device: str = "cpu"):
        self.device = torch.device(device)
        self.double, self.clip_norm, self.target_period, self.tau = double, clip_norm, target_period, tau
        self.noisy = noisy
        self.support = make_support(v_min, v_max, atoms, self.device) if atoms > 1 else None
        self.net = QNetwork(obs_shape, num_actions, dueling, norm, atoms=atoms, noisy=noisy).to(self.device)
        self.target = QNetwork(obs_shape, num_actions, dueling, norm, atoms=atoms, noisy=noisy).to(self.device)
        self.target.load_state_dict(self.net.state_dict())
        self.target.requires_grad_(False)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, eps=adam_eps)
        self.steps = 0
        self.grad_sync = None   # set by data-parallel replicas: averages gradients before clipping

    def to_device(self, batch: Batch) -> dict[str, torch.Tensor]:
        def t(x):
            return device_tensor(x, self.device)
        return {"obs": t(batch.obs), "next_obs": t(batch.next_obs), "action": t(batch.action).long(),
                "ret": t(batch.ret), "discount": t(batch.discount), "weights": t(batch.weights)}

    def launch(self, b: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Queue one gradient step on a device batch; stats (loss, mean_q) and new priorities |TD| [B],
        still on the device (`update` returns them on the host)."""
        if self.noisy:
            self.draw_noise()
        if self.support is not None:
            return self._launch_categorical(b)
        q = self.net(b["obs"])                                                  # [B, A]
        q_taken = q.gather(1, b["action"].unsqueeze(1)).squeeze(1)             # [B]
        with torch.no_grad():
            next_target = self.target(b["next_obs"])
            next_online = self.net(b["next_obs"]) if self.double else None
            target = q_targets(b["ret"], b["discount"], next_target, next_online)
        loss = weighted_huber_loss(q_taken, target, b["weights"])
        gradient_step(loss, self.net, self.opt, self.clip_norm, self.grad_sync)
        self.steps += 1
        follow_target(self.target, self.net, self.steps, self.tau, self.target_period)
        priorities = (target - q_taken.detach()).abs()
        return {"loss": loss.detach(), "mean_q": q_taken.detach().mean()}, priorities

    def _launch_categorical(self, b: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        logits = self.net(b["obs"])                                                  # [B, A, K]
        taken = logits[torch.arange(len(logits), device=logits.device), b["action"]]  # [B, K]
        with torch.no_grad():
            next_online = self.net(b["next_obs"]) if self.double else None
            target = categorical_q_target(self.target(b["next_obs"]), b["ret"], b["discount"], self.support,
                                          next_online)
        per_sample = categorical_loss(taken, target)                                 # [B]
        loss = (b["weights"] * per_sample).mean()
        gradient_step(loss, self.net, self.opt, self.clip_norm, self.grad_sync)
        self.steps += 1
        follow_target(self.target, self.net, self.steps, self.tau, self.target_period)
        mean_q = expected_value(taken.detach(), self.support).mean()
        return {"loss": loss.detach(), "mean_q": mean_q}, per_sample.detach()
