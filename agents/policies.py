"""How agents and the evaluator act, one class per family of algorithms (no Ray, no learning).

A policy owns the acting network and whatever it carries between steps (LSTM states, noise
processes), acts for a list of envs with one batched forward pass, and tells each env stream's writer
what it needs (Q estimates for initial priorities, recurrent states for R2D2 sequences).
The loop that steps the envs is agents/roles.py's EnvRunner (training) and EvalRunner (evaluation).
"""
from __future__ import annotations

import functools
import time

import numpy as np
import torch

from agents.config import Config
from agents.distributional import categorical_priority, expected_value, make_support
from agents.dqn import env_epsilons, epsilon_greedy
from buffers import StreamWriter
from envs import EnvInfo
from networks import QNetwork
from networks.noisy import reset_noise, set_noise
from networks.quantized import RecentObservations, int8_copy, int8_unsupported


# at most this share of an agent's time goes to re-quantising (--agent_int8): a new version's copy waits until the
# time since the last copy is 1 / INT8_COPY_SHARE times what that copy took
INT8_COPY_SHARE = 0.05


def _batch(obs) -> np.ndarray:
    """The envs' observations as one array [E, ...] (an env batch may already give one)."""
    return obs if isinstance(obs, np.ndarray) else np.stack(obs)


class Policy:
    """Acts for `num_envs` envs. `explore=False` is the evaluator's (and --test's) behaviour."""

    int8 = False   # acts on an int8 copy of its network (QPolicy with --agent_int8)

    def __init__(self, cfg: Config, info: EnvInfo, index: int, num_envs: int, explore: bool, seed: int):
        self.cfg, self.info, self.index, self.num_envs, self.explore = cfg, info, index, num_envs, explore
        self.rng = np.random.default_rng(seed)
        self.prioritized = explore and cfg.replay.buffer == "pmdb"
        torch.manual_seed(seed)
        self.noise_gen = torch.Generator().manual_seed(seed)
        self._eps: np.ndarray | None = None   # epsilon-greedy policies' fixed Ape-X epsilons, once computed

    def _frozen(self, net: torch.nn.Module) -> torch.nn.Module:
        """The acting network: no gradients; its noisy layers (if any) on for agents, off (the mean weights)
        for the evaluator and --test."""
        net.eval()
        net.requires_grad_(False)
        set_noise(net, self.explore)
        return net

    def _draw_noise(self, net: torch.nn.Module) -> None:
        """Noisy nets: exploring agents draw new noise before every step, so each step explores anew as an
        epsilon does (the learner draws its own noise per update)."""
        if self.explore and self.cfg.alg.noisy:
            reset_noise(net, self.noise_gen)

    def load(self, weights: dict) -> None:
        self.net.load_state_dict(weights)

    def writer(self, stream: int):
        a = self.cfg.alg
        return StreamWriter(stream, a.nstep, a.gamma, image=self.info.image, priorities=self.prioritized)

    def act(self, obs: list, writers: list | None, steps: int) -> tuple[list, list]:
        """(actions to store in replay, actions to give the envs), one per env."""
        raise NotImplementedError

    def observe(self, j: int, action, reward: float) -> None:
        """Env j took `action` and received `reward`."""

    def truncated(self, j: int, obs, writer) -> None:
        """Env j's episode was cut short at `obs`: its writer may want V(obs) to bootstrap a priority."""

    def reset(self, j: int) -> None:
        """Env j starts a new episode."""

    def stats(self, steps: int) -> dict[str, float]:
        """What TensorBoard shows under agents/<i>/."""
        return {}


class QPolicy(Policy):
    """DQN / DDQN / Rainbow: epsilon-greedy on a feed-forward Q network (Ape-X epsilons across agents), or with
    --noisy greedy on a noisy one. Rainbow's network outputs value distributions: agents act on their means and
    give their writers the logits for the cross-entropy priority."""

    def __init__(self, cfg, info, index, num_envs, explore, seed):
        super().__init__(cfg, info, index, num_envs, explore, seed)
        a = cfg.alg
        self.net = self._frozen(QNetwork(info.obs_shape, info.num_actions, a.dueling, a.norm, atoms=a.atoms,
                                         noisy=a.noisy))
        self.support = make_support(a.v_min, a.v_max, a.atoms) if a.atoms > 1 else None
        # agents (never the evaluator) may act with an int8 copy, made from each new version's weights
        self.int8 = explore and cfg.run.agent_int8 and int8_unsupported(self.net) is None
        self._int8_net: torch.nn.Module | None = None
        self._recent = RecentObservations()   # what the next int8 copy is calibrated on
        self.int8_copies = 0
        self._int8_stale = False      # weights newer than the int8 copy's were loaded
        self._int8_made = 0.0         # when the copy was made (self.clock)
        self._int8_cost = 0.0         # how long making it took (s)
        self.clock = time.monotonic

    def load(self, weights: dict) -> None:
        super().load(weights)
        self._int8_stale = True

    def _int8_copy(self, x: torch.Tensor) -> torch.nn.Module:
        """The int8 copy to act on for `x` (whose rows join the calibration ring). A copy of the newest weights
        is made at the first step, then at the first step after a new version once the time since the last
        copy is at least its cost / INT8_COPY_SHARE: weight versions can come faster than an agent should
        re-quantise (a GPU learner's hundred updates take a second or less; a copy takes about 0.1 s), and
        meanwhile the agent acts on the previous version's copy."""
        self._recent.add(x)
        now = self.clock()
        due = self._int8_stale and now - self._int8_made >= self._int8_cost / INT8_COPY_SHARE
        if self._int8_net is None or due:
            self._int8_net = int8_copy(self.net, self._recent.get())
            self._int8_made = self.clock()
            self._int8_cost = self._int8_made - now
            self._int8_stale = False
            self.int8_copies += 1
        return self._int8_net

    def writer(self, stream: int):
        a = self.cfg.alg
        fn = None if self.support is None else functools.partial(categorical_priority, atoms=self.support)
        return StreamWriter(stream, a.nstep, a.gamma, image=self.info.image, priorities=self.prioritized,
                            priority_fn=fn)

    def epsilons(self, steps: int) -> np.ndarray:
        """[num_envs]: the epsilon each env acts with (agents/dqn.py's env_epsilons)."""
        a = self.cfg.alg
        if not self.explore:
            return np.full(self.num_envs, self.cfg.run.eval_epsilon)
        if a.noisy and not a.noisy_eps:
            return np.zeros(self.num_envs)
        if self._eps is None or self.cfg.run.num_agents * self.num_envs == 1:   # a lone env anneals
            self._eps = env_epsilons(self.index, self.cfg.run.num_agents, self.num_envs, steps, a.eps_steps,
                                     a.eps_final)
        return self._eps

    def epsilon(self, steps: int) -> float:
        """The largest of this agent's epsilons (its env 0's)."""
        return float(self.epsilons(steps).max())

    def _forward(self, obs: list) -> tuple[np.ndarray, np.ndarray | None]:
        """(Q [E, A], logits [E, A, K] or None)."""
        self._draw_noise(self.net)
        x = torch.as_tensor(_batch(obs))
        net = self._int8_copy(x) if self.int8 else self.net
        out = net(x)
        if self.support is None:
            return out.numpy(), None
        return expected_value(out, self.support).numpy(), out.numpy()

    def q_values(self, obs) -> np.ndarray:
        """Q [E, A] of the envs' observations, as the policy acts on them."""
        return self._forward(obs)[0]

    def act(self, obs, writers, steps):
        q, logits = self._forward(obs)
        actions = epsilon_greedy(q, self.epsilons(steps), self.rng).tolist()
        if self.prioritized:
            rows = np.arange(len(q))   # indexed and reduced once for all envs, not env by env
            if logits is None:
                taken, best = q[rows, actions], q.max(axis=1)
            else:
                taken, best = logits[rows, actions], logits[rows, q.argmax(axis=1)]
            for w, t, b in zip(writers, taken, best):
                w.act(t, b)
        return actions, actions

    def truncated(self, j, obs, writer):
        if self.prioritized:
            q, logits = self._forward([obs])
            writer.value(float(q[0].max()) if logits is None else logits[0, q[0].argmax()])

    def stats(self, steps):
        eps = self.epsilons(steps)
        out = {"epsilon": float(eps.max())}
        if len(eps) > 1:
            out["epsilon_min"] = float(eps.min())
        if self.int8:
            out["int8_copies"] = float(self.int8_copies)   # one per weight version re-quantised
        return out


class DPGPolicy(Policy):
    """DDPG / D4PG: a deterministic actor in [-1, 1] plus each agent's own exploration noise (Gaussian
    or Ornstein-Uhlenbeck, Ape-X DPG scales); actions are scaled to the env's bounds only for the env,
    the replay keeps them normalised. New transitions enter the replay with its running-max priority."""

    def __init__(self, cfg, info, index, num_envs, explore, seed):
        from agents.ddpg import GaussianNoise, OUNoise, agent_noise_scale
        from networks.continuous import Actor

        super().__init__(cfg, info, index, num_envs, explore, seed)
        a = cfg.alg
        self.prioritized = False
        self.net = self._frozen(Actor(info.obs_shape[0], info.num_actions, hidden=(a.hidden, a.hidden)))
        self.low, self.high = np.asarray(info.action_low, np.float32), np.asarray(info.action_high, np.float32)
        n = cfg.run.num_agents
        self.sigma = agent_noise_scale(index, n, a.noise_min, a.noise_max)
        kind = OUNoise if a.noise == "ou" else GaussianNoise
        self.noises = [kind(info.num_actions, self.sigma, self.rng) for _ in range(num_envs)]

    def act(self, obs, writers, steps):
        from agents.ddpg import explore, scale_action

        u = self.net(torch.as_tensor(_batch(obs))).numpy()        # [E, A] in [-1, 1]
        if self.explore:
            u = np.stack([explore(u[j], self.noises[j].sample()) for j in range(len(u))]).astype(np.float32)
        return list(u), [scale_action(x, self.low, self.high) for x in u]

    def reset(self, j):
        self.noises[j].reset()

    def stats(self, steps):
        return {"noise": self.sigma if self.explore else 0.0}


class R2D2Policy(Policy):
    """R2D2: epsilon-greedy on a recurrent Q network; each env carries its LSTM state, previous action
    and reward; the writer stores the state at each sequence's first step, and (pmdb) the sequence's
    initial priority from the agent's own Q values."""

    def __init__(self, cfg, info, index, num_envs, explore, seed):
        from networks.recurrent import RecurrentQNetwork

        super().__init__(cfg, info, index, num_envs, explore, seed)
        a = cfg.alg
        self.net = self._frozen(RecurrentQNetwork(info.obs_shape, info.num_actions, hidden=a.lstm,
                                                  dueling=a.dueling, norm=a.norm, noisy=a.noisy))
        self.h = torch.zeros(num_envs, a.lstm)
        self.c = torch.zeros(num_envs, a.lstm)
        self.prev_action = np.full(num_envs, -1, dtype=np.int64)
        self.prev_reward = np.zeros(num_envs, dtype=np.float32)

    epsilons, epsilon, stats = QPolicy.epsilons, QPolicy.epsilon, QPolicy.stats

    def writer(self, stream: int):
        from buffers.sequence import SequenceWriter

        a = self.cfg.alg
        return SequenceWriter(stream, a.seq_len, a.overlap, a.gamma, image=self.info.image, state_size=a.lstm,
                              priority_fn=self._priority if self.prioritized else None)

    def _priority(self, q: np.ndarray, action: np.ndarray, reward: np.ndarray, discount: np.ndarray) -> float:
        """A sequence's initial priority from this agent's own Q values (online and target alike)."""
        from agents.r2d2 import r2d2_loss_and_priorities

        a = self.cfg.alg
        t = torch.as_tensor
        qt = t(q, dtype=torch.float32)[None]
        _, prio, _ = r2d2_loss_and_priorities(
            qt, qt, t(action, dtype=torch.long)[None], t(reward, dtype=torch.float32)[None],
            t(discount, dtype=torch.float32)[None], torch.tensor([len(action)]), torch.ones(1),
            burn_in=a.burn_in, n=a.nstep, eta=a.eta)
        return float(prio[0])

    def _step(self, obs: list, rows: list[int]):
        self._draw_noise(self.net)
        o = torch.as_tensor(_batch(obs))[:, None]
        pa = torch.as_tensor(self.prev_action[rows])[:, None]
        pr = torch.as_tensor(self.prev_reward[rows])[:, None]
        q, (h, c) = self.net(o, pa, pr, (self.h[rows], self.c[rows]))
        return q[:, 0].numpy(), h, c

    def act(self, obs, writers, steps):
        rows = list(range(len(obs)))
        q, h, c = self._step(obs, rows)
        if writers is not None:
            for j, w in enumerate(writers):
                w.act(torch.stack([self.h[j], self.c[j]]).numpy(), q[j] if self.prioritized else None)
        self.h, self.c = h, c
        actions = epsilon_greedy(q, self.epsilons(steps), self.rng).tolist()
        return actions, actions

    def observe(self, j, action, reward):
        self.prev_action[j], self.prev_reward[j] = action, reward

    def truncated(self, j, obs, writer):
        if self.prioritized:
            writer.value(self._step([obs], [j])[0][0])

    def reset(self, j):
        self.h[j] = 0.0
        self.c[j] = 0.0
        self.prev_action[j], self.prev_reward[j] = -1, 0.0


def acting_note(cfg: Config, info: EnvInfo) -> str | None:
    """With --agent_int8: the line that says how the agents act (int8, or float32 and why); else None."""
    if not cfg.run.agent_int8:
        return None
    from agents.algorithms import algorithm

    why = int8_unsupported(algorithm(cfg).policy(cfg, info, 0, 1, explore=True, seed=0).net)
    return ("agents act with int8 copies of the Q network (--agent_int8)" if why is None
            else f"--agent_int8: {why}; agents act in float32")
