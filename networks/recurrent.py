"""A recurrent Q network for R2D2 (Kapturowski et al. 2019): torso, LSTM, plain or dueling head.

The LSTM input is the torso's features, optionally with the one-hot previous action and the previous
reward. Agents call it with T = 1 per step and carry the state; the learner unrolls whole sequences.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from networks.heads import DuelingHead, QHead
from networks.torsos import NatureTorso, make_torso

State = tuple[torch.Tensor, torch.Tensor]


class RecurrentQNetwork(nn.Module):
    """obs [B, T, *obs_shape], prev_action [B, T], prev_reward [B, T], (h, c) [B, H] -> Q [B, T, A], (h, c).

    Atari stacks (3-D obs) go through the Nature torso (512 features, dueling streams of 512 hidden
    units as in R2D2), MinAtar frames through the MinAtar torso, vectors through a (256, 256) ReLU MLP.
    `norm`: "gn" (conv GroupNorm) or "ln" (MLP LayerNorm), else none. A previous action of -1 (episode
    start) one-hot encodes as all zeros.
    """

    def __init__(self, obs_shape: tuple, num_actions: int, hidden: int = 512, dueling: bool = True,
                 prev_action_reward: bool = True, norm: str = "none", noisy: bool = False):
        super().__init__()
        self.num_actions, self.state_size, self.prev_action_reward = num_actions, hidden, prev_action_reward
        self.obs_shape = tuple(obs_shape)
        self.torso = make_torso(obs_shape, norm)
        head_hidden = 512 if dueling and isinstance(self.torso, NatureTorso) else 0
        lstm_in = self.torso.out_features + (num_actions + 1 if prev_action_reward else 0)
        self.lstm = nn.LSTM(lstm_in, hidden, batch_first=True)
        self.head = (DuelingHead(hidden, num_actions, head_hidden, noisy=noisy) if dueling
                     else QHead(hidden, num_actions, noisy=noisy))

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """Zero (h, c), each [batch_size, hidden]."""
        z = torch.zeros(batch_size, self.state_size, device=device)
        return z, z.clone()

    def forward(self, obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor,
                state: State) -> tuple[torch.Tensor, State]:
        B, T = obs.shape[:2]
        x = self.torso(obs.reshape(B * T, *obs.shape[2:])).reshape(B, T, -1)           # [B, T, F]
        if self.prev_action_reward:
            a = prev_action.long()
            onehot = F.one_hot(a.clamp(min=0), self.num_actions).to(x.dtype) * (a >= 0).unsqueeze(-1).to(x.dtype)
            x = torch.cat([x, onehot, prev_reward.to(x.dtype).unsqueeze(-1)], dim=-1)   # [B, T, F + A + 1]
        h, c = state
        out, (h, c) = self.lstm(x, (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()))  # [B, T, H]
        q = self.head(out.reshape(B * T, -1)).reshape(B, T, self.num_actions)
        return q, (h.squeeze(0), c.squeeze(0))
