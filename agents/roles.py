"""The roles of the program as plain Python classes: they run and test without Ray. agents/actors.py
wraps each as a Ray actor (Agent, Replay, Loader, Learner, Evaluator) and supplies the transport;
agents/driver.py wires them."""
from __future__ import annotations

import functools
import time
import traceback
import warnings
from collections import deque
from typing import Callable

import numpy as np
import torch

from agents.algorithms import algorithm, make_learner, make_memory, replay_items
from agents.config import Config, planned_learner_steps
from agents.optim import lr_scale, scale_learning_rates, settle
from agents.policies import Policy
from buffers import PriorityUpdate, Push, SampledBatch, decode_batch
from buffers.frames import FrameDecoder, StalePush
from buffers.rate_limiter import RateLimiter
from buffers.shards import concat_batches, reweight, split_counts
from envs import EnvInfo
from envs.batch import make_env_batch


def make_policy(cfg: Config, info: EnvInfo, index: int, num_envs: int, explore: bool, seed: int) -> Policy:
    return algorithm(cfg).policy(cfg, info, index, num_envs, explore, seed)


class ReplayFailed(RuntimeError):
    """The replay met an internal error: its state can no longer be trusted, so it serves nothing more."""


def guarded(method):
    """A ReplayServer method that stops the replay for good at its first error: the memory may be half
    updated, so this call and every later one raise ReplayFailed with the first error's text."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if self.failure is not None:
            raise ReplayFailed(self.failure)
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            self.failure = f"{type(e).__name__}: {e}"
            self.failure_trace = traceback.format_exc()
            raise ReplayFailed(self.failure) from e
    return call


class ReplayServer:
    """The replay memory behind its rate limiter. Moves bytes and updates trees, nothing else."""

    def __init__(self, cfg: Config, info: EnvInfo):
        rp = cfg.replay
        self.memory = make_memory(cfg, info)
        tolerance = max(4 * cfg.alg.batch_size * cfg.run.num_loaders, rp.speed * 1000)
        self.limiter = RateLimiter(rp.speed, replay_items(cfg, min(rp.replay_start, rp.replay_size)), tolerance)
        self.dropped_pushes = 0
        self.failure: str | None = None   # the first internal error, after which the replay refuses all work
        self.failure_trace = ""

    @guarded
    def add(self, pushes: list[Push]) -> bool:
        """Store pushes; True while the agents may go on inserting.

        The one push that may be dropped is a stale one (a dead agent's last push arriving after its
        restarted successor's first), recognised before it changes anything, and counted. Any other
        error stops the replay (ReplayFailed) and, through the driver, the run."""
        with self.memory.one_priority_write():   # one sum tree walk for the whole call
            for push in pushes:
                try:
                    self.limiter.inserted += self.memory.add(push)
                except StalePush:
                    self.dropped_pushes += 1
        return self.limiter.can_insert()

    @guarded
    def new_generation(self) -> int:
        """The generation a (re)started agent stamps on its pushes; older generations' pushes are stale."""
        return self.memory.new_generation()

    @guarded
    def insert_allowed(self) -> bool:
        return self.limiter.can_insert()

    @guarded
    def sample(self, batch_size: int) -> SampledBatch | None:
        """A batch, or None while the rate limiter holds sampling back."""
        if not self.limiter.can_sample(batch_size):
            return None
        self.limiter.sampled += batch_size
        return self.memory.sample(batch_size)

    @guarded
    def mass(self) -> float:
        """This replay's sampling mass (priority total, or size), for loaders that sample across shards."""
        return self.memory.mass

    @guarded
    def update_priorities(self, update: PriorityUpdate) -> int:
        return self.memory.update_priorities(update.ids, update.priority, update.step)

    def failure_reason(self) -> tuple[str, str] | None:
        """(the error that stopped this replay, its traceback), or None while it works."""
        return None if self.failure is None else (self.failure, self.failure_trace)

    def stats(self) -> dict:
        s = self.memory.stats()
        s["ratio"] = self.limiter.ratio()
        s["dropped_pushes"] = self.dropped_pushes
        return s


class _Waiting:
    """The writer of an env whose next episode has not started yet (an Atari game restarting in C++): the
    policy's estimates at the ended episode's last observation belong to no transition."""

    def act(self, *args) -> None:
        pass


WAITING = _Waiting()


class EnvRunner:
    """Agent i: steps its envs (envs/batch.py: Atari games in C++, anything else one by one) with one batched
    forward pass of its policy, writes n-step transitions or sequences (frames lz4-compressed here) and hands
    pushes to `send`, which returns False while the replay wants the agent to wait."""

    def __init__(self, index: int, cfg: Config, info: EnvInfo, send: Callable[[list[Push]], bool],
                 wait: Callable[[], None] = lambda: None, push_period: int = 50, generation: int = 0):
        torch.set_num_threads(1)
        self.index, self.cfg, self.info = index, cfg, info
        self.send, self.wait, self.push_period = send, wait, push_period
        run = cfg.run
        e = run.envs_per_agent
        train = algorithm(cfg).life_loss_clip   # R2D2: whole games, raw rewards
        self.envs = make_env_batch(run.env, e, train=train, seed=run.seed + index * e, sticky=run.sticky)
        self.policy = make_policy(cfg, info, index, e, explore=True, seed=run.seed + index)
        self.writers = [self.policy.writer(index * e + j) for j in range(e)]
        for w in self.writers:   # from the replay: a restarted agent's pushes outrank its predecessor's
            w.generation = generation
        self.version = -1
        self.steps = 0
        self.obs = self.envs.reset()   # [E, ...] array (Atari) or list: the batch the policy acts on next
        for w, o in zip(self.writers, self.obs):
            w.reset(o)
        self.waiting = [False] * e   # the env's episode ended and its next one has not started
        self.game_raw = np.zeros(e)
        self.game_clipped = np.zeros(e)
        self.finished: list[tuple[float, float]] = []   # (raw, clipped) returns of whole games
        self._since_push = 0

    def set_weights(self, version: int, weights: dict) -> None:
        if version > self.version:
            self.policy.load(weights)
            self.version = version

    def run(self, steps: int) -> dict:
        """Step every env `steps // envs_per_agent` times; return stats of the chunk. `steps` counts the
        transitions written: a step that only restarts an env's game is not one."""
        with torch.inference_mode():   # measured: a few per cent faster than no_grad at batches of 8 to 32
            self._run(max(1, steps // self.envs.num_envs))
        finished, self.finished = self.finished, []
        return {"steps": self.steps, "stats": self.policy.stats(self.steps), "returns": finished,
                "version": self.version}

    def _run(self, iterations: int) -> None:
        e = self.envs.num_envs
        policy, writers = self.policy, self.writers
        for _ in range(iterations):
            acting = [WAITING if waits else w for waits, w in zip(self.waiting, writers)]
            stored, actions = policy.act(self.obs, acting, self.steps)
            obs, reward, term, trunc, info = self.envs.step(actions)
            self.game_raw += info["raw_reward"]
            self.game_clipped += reward
            for j in np.flatnonzero(info["game_over"]):
                self.finished.append((float(self.game_raw[j]), float(self.game_clipped[j])))
                self.game_raw[j] = self.game_clipped[j] = 0.0
            # the per-env part in plain Python values (indexing numpy arrays element by element costs more)
            restart, idle = info["restart"].tolist(), info["idle"].tolist()
            rewards, terms, truncs = reward.tolist(), term.tolist(), trunc.tolist()
            newest = info.get("newest")   # Atari: the newest frames, contiguous, for the writers to compress
            for j in range(e):
                if restart[j]:
                    self._start(j, obs[j])
                elif not idle[j]:
                    w, o = writers[j], obs[j]
                    w.step(stored[j], rewards[j], o, terms[j], truncs[j], None if newest is None else newest[j])
                    policy.observe(j, stored[j], rewards[j])
                    self.steps += 1
                    if terms[j] or truncs[j]:
                        if truncs[j] and not terms[j]:
                            policy.truncated(j, o, w)
                        self.waiting[j] = True
                        new = self.envs.reset_one(j)
                        if new is not None:
                            obs[j] = self._start(j, new)
            self.obs = obs
            self._since_push += 1
            if self._since_push >= self.push_period:
                self.flush()
        self.flush()

    def _start(self, j: int, obs):
        """Env j's next episode starts at `obs`."""
        self.writers[j].reset(obs)
        self.policy.reset(j)
        self.waiting[j] = False
        return obs

    def flush(self) -> None:
        self._since_push = 0
        pushes = [p for p in (w.take() for w in self.writers) if p is not None]
        if pushes and not self.send(pushes):
            self.wait()


class ShardedSampler:
    """Draws one batch across K replay shards: items per shard in proportion to their masses; parts that
    arrive while another shard's rate limiter holds its part back are kept until the batch is whole."""

    def __init__(self, request: Callable[[list[tuple[int, int]]], list], masses: Callable[[], list[float]],
                 num_shards: int, prioritized: bool, seed: int = 0):
        self.request, self.masses, self.num_shards, self.prioritized = request, masses, num_shards, prioritized
        self.rng = np.random.default_rng(seed)
        self.missing: dict[int, int] | None = None
        self.parts: dict = {}
        self.blind = False

    def __call__(self, batch_size: int) -> list | None:
        """The batch's parts (global ids, merged importance weights), or None while one is held back."""
        if self.missing is None:
            masses = self.masses()
            counts = split_counts(batch_size, masses, self.rng)
            self.missing = {k: int(c) for k, c in enumerate(counts) if c > 0}
            self.parts = {}
            self.blind = sum(masses) <= 0   # every shard empty: the split is a guess
        wanted = sorted(self.missing.items())
        for (k, _), sb in zip(wanted, self.request(wanted)):
            if sb is not None:
                self.parts[k] = sb
                del self.missing[k]
        if self.missing:
            if self.blind:   # a guess may wait on a shard that stays empty: split anew by the masses next time
                self.missing = None
            return None
        self.missing = None
        return reweight(self.parts, self.num_shards, self.prioritized)


class BatchLoader:
    """Samples from the replay, decodes and stacks; forwards the learner's priority updates."""

    def __init__(self, sample: Callable[[int], SampledBatch | None], update: Callable[[PriorityUpdate], None],
                 batch_size: int, poll_s: float = 0.005, give_up_s: float = 1.0, decode: Callable = decode_batch):
        self.sample_fn, self.update_fn, self.batch_size, self.decode = sample, update, batch_size, decode
        self.poll_s, self.give_up_s = poll_s, give_up_s
        self.decoder = FrameDecoder()
        self.batches = 0

    def next(self, update: PriorityUpdate | None = None):
        """A decoded Batch, or None if the rate limiter held sampling back for `give_up_s`."""
        if update is not None:
            self.update_fn(update)
        deadline = time.monotonic() + self.give_up_s
        pause = self.poll_s
        while True:
            sb = self.sample_fn(self.batch_size)
            if sb is not None:
                break
            if time.monotonic() > deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)   # back off while the replay fills or the agents catch up
        parts = sb if isinstance(sb, list) else [sb]
        if parts[0].frame_shape and self.decoder.frame_shape != tuple(parts[0].frame_shape):
            self.decoder = FrameDecoder(parts[0].frame_shape)
        self.batches += 1
        return concat_batches([self.decode(p, self.decoder) for p in parts])


class Stager:
    """Moves a decoded batch to the learner's device. On a GPU: through pinned host buffers (two sets,
    reused) with non-blocking copies on a side stream, so the next batch travels while the current
    update runs; the update waits on the copy's event. On the CPU: the arrays as tensors, no copy."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.pools: list[dict] = [{}, {}]
        self.copied: list = [None, None]   # each pool's last copy to the device, which reads its buffers
        self.turn = 0

    def _pinned(self, batch):
        pool = self.pools[self.turn]
        if self.copied[self.turn] is not None:   # never overwrite a buffer a pending copy still reads
            self.copied[self.turn].synchronize()
        fields = {}
        for name, value in vars(batch).items():
            if isinstance(value, np.ndarray) and value.dtype != object:
                dtype = torch.from_numpy(np.empty(0, value.dtype)).dtype
                buf = pool.get(name)
                if buf is None or tuple(buf.shape) != value.shape or buf.dtype != dtype:
                    buf = pool[name] = torch.empty(value.shape, dtype=dtype).pin_memory()
                with warnings.catch_warnings():   # arrays from Ray's object store are read-only; copy_ only reads
                    warnings.simplefilter("ignore", UserWarning)
                    buf.copy_(torch.from_numpy(value))
                fields[name] = buf
            else:
                fields[name] = value
        return type(batch)(**fields)

    def __call__(self, batch, to_device):
        """(device tensors, event to wait on or None)."""
        if not self.cuda:
            return to_device(batch), None
        pinned = self._pinned(batch)
        with torch.cuda.stream(self.stream):
            dev = to_device(pinned)
            event = torch.cuda.Event()
            event.record(self.stream)
        self.copied[self.turn] = event
        self.turn ^= 1
        for t in dev.values():   # the update runs on the default stream: keep the memory until it has
            t.record_stream(torch.cuda.current_stream())
        return dev, event


class LearnerLoop:
    """Gradient steps on decoded batches: `stage` moves one to the device, `train_staged` updates on it."""

    def __init__(self, cfg: Config, info: EnvInfo, device: str = "cpu"):
        torch.manual_seed(cfg.run.seed)
        self.cfg = cfg
        self.device = torch.device(device)
        self.learner = make_learner(cfg, info, device)
        self.stager = Stager(self.device)
        self.last_publish = -cfg.alg.publish_period
        self.lr_decay_steps = planned_learner_steps(cfg) if cfg.alg.lr_decay else 0
        self.lr_decay_from = round(cfg.alg.lr_decay_start * self.lr_decay_steps)

    @property
    def steps(self) -> int:
        return self.learner.steps

    def stage(self, batch):
        return np.asarray(batch.ids), self.stager(batch, self.learner.to_device)

    def train_staged(self, staged, meanwhile: Callable[[], object] | None = None) -> tuple[dict, PriorityUpdate]:
        """One update on a staged batch. `meanwhile` (fetching and staging the next batch) runs on the host
        after the update is queued on the device and before its results are read back, so on a GPU the
        two overlap."""
        ids, (dev, event) = staged
        if event is not None:
            torch.cuda.current_stream().wait_event(event)
        if self.lr_decay_steps:
            scale = lr_scale(self.steps, self.lr_decay_from, self.lr_decay_steps)
            scale_learning_rates(self.learner.optimizers(), scale)
        launched = self.learner.launch(dev)
        if meanwhile is not None:
            meanwhile()
        stats, prio = settle(*launched)
        return stats, PriorityUpdate(ids, prio, self.steps)

    def train_on(self, batch) -> tuple[dict, PriorityUpdate]:
        return self.train_staged(self.stage(batch))

    def publish_due(self) -> bool:
        if self.steps - self.last_publish >= self.cfg.alg.publish_period:
            self.last_publish = self.steps
            return True
        return False


class EvalRunner:
    """Plays whole games (no-op starts, raw scores, no episodic life) with the policy's evaluation
    behaviour (a small epsilon, or no noise), through the same env batch as the agents (one env)."""

    def __init__(self, cfg: Config, info: EnvInfo, seed_offset: int = 10_000, render: bool = False):
        torch.set_num_threads(1)
        self.cfg, self.info = cfg, info
        self.env = make_env_batch(cfg.run.env, 1, train=False, seed=cfg.run.seed + seed_offset,
                                  sticky=cfg.run.sticky, render_mode="rgb_array" if render else None)
        self.policy = make_policy(cfg, info, 0, 1, explore=False, seed=cfg.run.seed + seed_offset)

    def play(self, weights: dict, episodes: int, on_frame: Callable | None = None) -> list[float]:
        """Raw returns of `episodes` whole games; `on_frame(episode, rgb)` sees every rendered frame."""
        self.policy.load(weights)
        with torch.inference_mode():
            return [self._play_one(ep, on_frame) for ep in range(episodes)]

    def _play_one(self, ep: int, on_frame: Callable | None) -> float:
        """The raw return of one whole game."""
        policy = self.policy
        obs = self.env.reset()
        policy.reset(0)
        total, done = 0.0, False
        while not done:
            if on_frame is not None:
                on_frame(ep, self.env.render())
            stored, actions = policy.act(obs, None, 0)
            obs, r, term, trunc, info = self.env.step(actions)
            policy.observe(0, stored[0], r[0])
            total += info["raw_reward"][0]
            done = term[0] or trunc[0]
        return float(total)


class PrefetchQueue:
    """Learner side: keep `depth` requests in flight per loader; hand them out oldest first."""

    def __init__(self, request: Callable[[int, PriorityUpdate | None], object], num_loaders: int, depth: int = 2):
        self.request = request
        self.inflight: deque = deque()
        for i in range(num_loaders):
            for _ in range(depth):
                self.give_back(i, None)

    def give_back(self, loader: int, update: PriorityUpdate | None) -> None:
        """Ask `loader` for another batch, carrying the priority update of its last one (or None)."""
        self.inflight.append((loader, self.request(loader, update)))

    def next(self):
        """The oldest request: (loader, request)."""
        return self.inflight.popleft()
