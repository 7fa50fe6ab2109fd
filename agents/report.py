"""What a user sees: TensorBoard scalars and a status line (a live bar on a terminal, plain lines in a log)."""
from __future__ import annotations

import sys
import time

import numpy as np
from torch.utils.tensorboard import SummaryWriter


class Reporter:
    def __init__(self, logdir: str, status_period: float, stream=None, clock=time.monotonic):
        self.clock = clock
        self.tb = SummaryWriter(logdir)
        self.status_period = status_period
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last_time = self.clock()
        self.last_env_steps = None
        self.last_learner_steps = None
        self.recent_returns: list[float] = []
        self.last_eval: float | None = None

    def episode(self, agent: int, env_steps: int, raw: float, clipped: float) -> None:
        self.tb.add_scalar("charts/episode_return", raw, env_steps)
        self.tb.add_scalar("charts/episode_return_clipped", clipped, env_steps)
        self.tb.add_scalar(f"agents/{agent}/episode_return", raw, env_steps)
        self.tb.add_scalar(f"agents/{agent}/episode_return_clipped", clipped, env_steps)
        self.recent_returns = (self.recent_returns + [raw])[-20:]

    def agent_stats(self, agent: int, env_steps: int, stats: dict[str, float]) -> None:
        """The agent's exploration: agents/<i>/epsilon, or agents/<i>/noise."""
        for k, v in stats.items():
            self.tb.add_scalar(f"agents/{agent}/{k}", v, env_steps)

    def learner(self, env_steps: int, stats: dict[str, float]) -> None:
        """Learner means over its last chunk: losses/loss, losses/mean_q (DDPG/D4PG: losses/actor_loss)."""
        for k, v in stats.items():
            self.tb.add_scalar(f"losses/{k}", v, env_steps)

    def evaluation(self, env_steps: int, returns: list[float]) -> None:
        self.last_eval = float(np.mean(returns))
        self.tb.add_scalar("eval/return", self.last_eval, env_steps)
        self.tb.add_scalar("eval/return_std", float(np.std(returns)), env_steps)

    def start(self, env_steps: int, learner_steps: int) -> None:
        """The counts the first status line's rates are measured from (a resumed run's, or 0), from now."""
        self.last_time, self.last_env_steps, self.last_learner_steps = self.clock(), env_steps, learner_steps

    def due(self) -> bool:
        return self.clock() - self.last_time >= self.status_period

    def status(self, env_steps: int, learner_steps: int, replay: dict, max_steps: int, wall_s: float) -> None:
        """Rates since the last status; scalars to TensorBoard; one line to the user."""
        now = self.clock()
        dt = max(now - self.last_time, 1e-9)
        sps = 0.0 if self.last_env_steps is None else (env_steps - self.last_env_steps) / dt
        ups = 0.0 if self.last_learner_steps is None else (learner_steps - self.last_learner_steps) / dt
        self.last_time, self.last_env_steps, self.last_learner_steps = now, env_steps, learner_steps
        tb = self.tb
        tb.add_scalar("charts/env_steps_per_s", sps, env_steps)
        tb.add_scalar("charts/updates_per_s", ups, env_steps)
        tb.add_scalar("charts/learner_steps", learner_steps, env_steps)
        tb.add_scalar("replay/size", replay.get("size", 0), env_steps)
        tb.add_scalar("replay/bytes", replay.get("bytes", 0), env_steps)
        tb.add_scalar("replay/sampled_per_inserted", replay.get("ratio", 0.0), env_steps)
        # stale pushes of dead agents, summed over shards: the only pushes a replay may drop
        tb.add_scalar("replay/dropped_pushes", replay.get("dropped_pushes", 0), env_steps)
        ret = f"{np.mean(self.recent_returns):.1f}" if self.recent_returns else "-"
        ev = f"{self.last_eval:.1f}" if self.last_eval is not None else "-"
        line = (f"env_steps {env_steps:,} | {sps:,.0f} steps/s | learner {learner_steps:,} ({ups:,.1f} upd/s) | "
                f"replay {replay.get('size', 0):,} | return {ret} | eval {ev} | {wall_s:,.0f}s")
        if self.tty:
            frac = min(env_steps / max_steps, 1.0) if max_steps else 0.0
            bar = "#" * int(frac * 20) + "-" * (20 - int(frac * 20))
            self.stream.write(f"\r[{bar}] {frac:6.1%} {line}\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        tb.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.tb.flush()
        self.tb.close()
