"""The algorithms the trainer knows, and what each needs from the rest of the program: the policy its
agents act with, its learner, its replay (transitions or sequences) and how loaders decode batches."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.config import Config
from agents.policies import DPGPolicy, Policy, QPolicy, R2D2Policy
from buffers import decode_batch, make_replay
from envs import EnvInfo


@dataclass(frozen=True)
class Algorithm:
    policy: type[Policy]
    sequences: bool          # R2D2 replays sequences; the others n-step transitions
    weights_key: str         # the learner state entry that agents and --test load
    life_loss_clip: bool = True   # Atari agents train with life-loss terminals and clipped rewards;
    #                               R2D2 sees whole games and raw rewards (value rescaling instead)


FAMILIES = {"DQN": Algorithm(QPolicy, False, "net"), "DDQN": Algorithm(QPolicy, False, "net"),
            "Rainbow": Algorithm(QPolicy, False, "net"),
            "R2D2": Algorithm(R2D2Policy, True, "net", life_loss_clip=False),
            "DDPG": Algorithm(DPGPolicy, False, "actor"), "D4PG": Algorithm(DPGPolicy, False, "actor")}


def algorithm(cfg: Config) -> Algorithm:
    return FAMILIES[cfg.alg.alg]


def make_learner(cfg: Config, info: EnvInfo, device: str = "cpu"):
    a = cfg.alg
    if a.alg in ("DDPG", "D4PG"):
        from agents.ddpg import DDPGLearner

        return DDPGLearner(info.obs_shape[0], info.num_actions, distributional=a.alg == "D4PG",
                           hidden=(a.hidden, a.hidden), actor_lr=a.actor_lr, critic_lr=a.lr, tau=a.tau,
                           target_period=a.target_period, clip_norm=a.clip_norm, num_atoms=a.num_atoms,
                           v_min=a.v_min, v_max=a.v_max, device=device)
    if a.alg == "R2D2":
        from agents.r2d2 import R2D2Learner

        return R2D2Learner(info.obs_shape, info.num_actions, hidden=a.lstm, dueling=a.dueling, lr=a.lr,
                           clip_norm=a.clip_norm, target_period=a.target_period, burn_in=a.burn_in,
                           nstep=a.nstep, eta=a.eta, norm=a.norm, tau=a.tau, noisy=a.noisy, device=device)
    from agents.dqn import DQNLearner

    return DQNLearner(info.obs_shape, info.num_actions, double=a.double, dueling=a.dueling, norm=a.norm,
                      lr=a.lr, clip_norm=a.clip_norm, target_period=a.target_period, tau=a.tau, atoms=a.atoms,
                      v_min=a.v_min, v_max=a.v_max, noisy=a.noisy, device=device)


def replay_items(cfg: Config, steps: int) -> int:
    """Replay items that hold `steps` agent steps: transitions, or R2D2 sequences of seq_len - overlap
    new steps each (--replay_size and --replay_start count steps for every algorithm)."""
    return max(1, steps // cfg.alg.steps_per_item) if steps > 0 else 0


def make_memory(cfg: Config, info: EnvInfo, capacity: int | None = None):
    """The replay of the run's algorithm and buffer kind; `capacity` in transitions (R2D2: steps,
    held as sequences that each add seq_len - overlap new steps)."""
    rp, a = cfg.replay, cfg.alg
    capacity = capacity or rp.replay_size
    prio = dict(alpha=rp.alpha, beta0=rp.beta0, beta_steps=rp.beta_steps)
    if a.alg == "R2D2":
        from buffers.sequence import make_sequence_replay

        return make_sequence_replay(rp.buffer, replay_items(cfg, capacity), info.obs_shape, a.seq_len, a.lstm,
                                    seed=cfg.run.seed, **prio)
    action = dict(action_shape=(info.num_actions,), action_dtype=np.float32) if not a.discrete else {}
    return make_replay(rp.buffer, capacity, info.obs_shape, seed=cfg.run.seed, window=max(32, a.nstep + 8),
                       **action, **prio)


def decoder_for(cfg: Config):
    """The loaders' decode function: SampledBatch -> Batch, or SampledSequences -> SequenceBatch."""
    if cfg.alg.alg == "R2D2":
        from buffers.sequence import decode_sequences

        return decode_sequences
    return decode_batch
