"""The roles of agents/roles.py as Ray actors, each named after its role (ps and the dashboard show
ray::Agent, ray::Replay, ray::Loader, ray::Learner, ray::Evaluator): the transport between them (Ray
calls, object refs, data-parallel process groups) and nothing of the driver, which is agents/driver.py."""
from __future__ import annotations

import os
import time
from collections import deque

import numpy as np
import ray

from agents.algorithms import decoder_for
from agents.config import Config
from agents.roles import (
    BatchLoader,
    EnvRunner,
    EvalRunner,
    LearnerLoop,
    PrefetchQueue,
    ReplayServer,
    ShardedSampler,
    guarded,
)
from buffers.shards import route_update
from envs import EnvInfo

PUSHES_IN_FLIGHT = 4
LOADER_DOWN_S = 60.0   # a loader dead this long is not being restarted: stop the learner


class OnNode:
    def node(self) -> str:
        """The id of the node this actor runs on."""
        return ray.get_runtime_context().get_node_id()


class Replay(OnNode, ReplayServer):
    @guarded   # a failed replay is never saved
    def save(self, path: str) -> str:
        """Write the replay next to a checkpoint, atomically."""
        tmp = path + ".tmp"
        self.memory.save(tmp)
        os.replace(tmp, path)
        return path

    @guarded
    def load(self, path: str) -> int:
        self.memory.load(path)
        self.limiter.inserted, self.limiter.sampled = self.memory.inserted, self.memory.sampled
        return len(self.memory)


class Agent(OnNode, EnvRunner):
    def __init__(self, index: int, cfg: Config, info: EnvInfo, replay, steps: int = 0):
        self.replay = replay
        self.inflight: deque = deque()
        # a generation from the replay, above its predecessor's if this process is a restart
        generation = ray.get(replay.new_generation.remote())
        super().__init__(index, cfg, info, send=self._send, wait=self._wait, generation=generation)
        self.steps = steps

    def _send(self, pushes) -> bool:
        self.inflight.append(self.replay.add.remote(pushes))
        allowed = True
        while len(self.inflight) > PUSHES_IN_FLIGHT:
            allowed = ray.get(self.inflight.popleft())
        return allowed

    def _wait(self) -> None:
        while not ray.get(self.replay.insert_allowed.remote()):
            time.sleep(0.01)

    def run_chunk(self, steps: int, weights: list, steps_so_far: int) -> dict:
        """`weights` is [(version, ObjectRef)]: fetched only when newer than what the agent has, so a
        restarted agent loads the latest weights before it acts; `steps_so_far` continues its schedule."""
        version, ref = weights[0]
        if version > self.version:
            self.set_weights(version, ray.get(ref))
        self.steps = max(self.steps, steps_so_far)
        return {**self.run(steps), "pid": os.getpid(), "node": self.node()}

    def pid(self) -> int:
        return os.getpid()


class Loader(OnNode, BatchLoader):
    """Samples from the replay (one batch ahead, so the replay prepares the next while this one decodes),
    or across K replay shards; forwards priority updates to the shard each item came from."""

    def __init__(self, replays, cfg: Config, seed: int = 0):
        self.replays = replays if isinstance(replays, list) else [replays]
        self.ahead = None
        k = len(self.replays)
        if k == 1:
            sample, update = self._sample, lambda u: self.replays[0].update_priorities.remote(u)
        else:
            sample = ShardedSampler(lambda wanted: ray.get([self.replays[i].sample.remote(n) for i, n in wanted]),
                                    lambda: ray.get([r.mass.remote() for r in self.replays]), k,
                                    cfg.replay.buffer == "pmdb", seed)
            update = self._route
        super().__init__(sample=sample, update=update, batch_size=cfg.alg.batch_size, decode=decoder_for(cfg))

    def _sample(self, n: int):
        ref = self.ahead if self.ahead is not None else self.replays[0].sample.remote(n)
        self.ahead = self.replays[0].sample.remote(n)   # the replay prepares the next batch while we decode
        return ray.get(ref)

    def _route(self, update) -> None:
        for k, part in route_update(update, len(self.replays)).items():
            self.replays[k].update_priorities.remote(part)


class Learner(OnNode, LearnerLoop):
    """The learner, or one of `world` data-parallel replicas (torch.distributed: NCCL on GPUs, gloo on
    the CPU). Each replica trains on its own loaders' batches; gradients are averaged before clipping,
    so replicas stay bit-identical; replica 0 publishes weights and is checkpointed; every replica sends
    its priority updates. Replicas agree on every step (all have a batch) and on stopping."""

    def __init__(self, cfg: Config, info: EnvInfo, loaders: list, device: str, rank: int = 0, world: int = 1):
        super().__init__(cfg, info, device)
        self.loaders = loaders   # or given later by `attach`, once they have been placed on this node
        self.rank, self.world = rank, world
        self.queue = None
        self.returns: list = []     # (loader, update) requests to issue before the next fetch
        self.held = None            # (loader, staged batch): fetched, moved to the device, not trained yet
        self.prioritized = cfg.replay.buffer == "pmdb"
        self.last_stats: dict = {}
        self.loader_down: dict[int, float] = {}   # loader -> when it was first found dead

    def attach(self, loaders: list) -> None:
        self.loaders = loaders

    def loaders_away(self) -> int:
        """How many of this learner's loaders run on another node."""
        here = self.node()
        return sum(node != here for node in ray.get([loader.node.remote() for loader in self.loaders]))

    # --- data parallel ---------------------------------------------------------------------------
    def rendezvous(self) -> str:
        """Replica 0: the address the process group meets at (this node, a free port)."""
        import socket

        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"

    def join(self, address: str) -> None:
        import datetime

        import torch.distributed as dist

        from agents.optim import make_grad_sync

        backend = "nccl" if self.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=address, rank=self.rank, world_size=self.world,
                                timeout=datetime.timedelta(seconds=120))
        self.learner.grad_sync = make_grad_sync(self.world)

    def _agree(self, have: bool, stop: bool) -> tuple[bool, bool]:
        """(every replica has a batch, some replica wants to stop); one tiny all-reduce per step."""
        if self.world == 1:
            return have, stop
        import torch
        import torch.distributed as dist

        flags = torch.tensor([float(not have), float(stop)], device=self.device)
        dist.all_reduce(flags)
        missing, stopping = flags.tolist()
        return missing == 0, stopping > 0

    def digest(self) -> dict:
        """A fingerprint of this replica's whole learner state (networks, optimizer), to check replicas agree."""
        import hashlib

        import torch

        h = hashlib.sha256()

        def walk(x):
            if isinstance(x, torch.Tensor):
                h.update(x.detach().cpu().contiguous().numpy().tobytes())
            elif isinstance(x, dict):
                for k in sorted(x, key=str):
                    if k != "torch_rng":
                        walk(x[k])
            elif isinstance(x, (list, tuple)):
                for v in x:
                    walk(v)
            else:
                h.update(repr(x).encode())

        walk(self.learner.state_dict())
        return {"rank": self.rank, "steps": self.steps, "sha256": h.hexdigest(), "loss": self.last_stats.get("loss")}

    # --- training --------------------------------------------------------------------------------
    def publish(self) -> list:
        """One ray.put of the CPU weights, shared by every agent and the evaluator."""
        return [(self.steps, ray.put(self.learner.weights()))]

    def _fetch(self):
        """The next batch from the loaders, staged on the device; None if the replay held it back."""
        for loader, update in self.returns:
            self.queue.give_back(loader, update)
        self.returns = []
        i, ref = self.queue.next()
        try:
            batch = ray.get(ref)
            self.loader_down.pop(i, None)
        except ray.exceptions.RayActorError as e:   # the loader died; Ray restarts it, ask it again
            since = self.loader_down.setdefault(i, time.monotonic())
            if time.monotonic() - since > LOADER_DOWN_S:   # it does not come back (its constructor fails)
                raise RuntimeError(f"loader {i} has been dead for {LOADER_DOWN_S:.0f} s: {e}") from None
            time.sleep(0.05)
            batch = None
        if batch is None:
            self.returns.append((i, None))
            return None
        return i, self.stage(batch)

    def train(self, seconds: float) -> dict:
        if self.queue is None:
            self.queue = PrefetchQueue(lambda i, u: self.loaders[i].next.remote(u), len(self.loaders))
        stats: dict[str, list[float]] = {}
        updates = 0
        deadline = time.monotonic() + seconds
        while True:
            stop = time.monotonic() >= deadline
            if self.held is None and not stop:
                self.held = self._fetch()
            go, stop = self._agree(self.held is not None, stop)
            if stop:
                break
            if not go:
                continue
            i, staged = self.held
            self.held = None

            def prefetch():   # the next batch is fetched and its copy started while this update runs
                self.held = self._fetch() if time.monotonic() < deadline else None
            step_stats, update = self.train_staged(staged, prefetch)
            self.returns.append((i, update if self.prioritized else None))
            updates += 1
            for k, v in step_stats.items():
                stats.setdefault(k, []).append(v)
        self.last_stats = {k: float(np.mean(v)) for k, v in stats.items()}
        out = {"steps": self.steps, "updates": updates, "stats": self.last_stats}
        if self.rank == 0 and self.publish_due():
            out["weights"] = self.publish()
        return out

    def state_dict(self) -> dict:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)
        self.last_publish = self.steps


class Evaluator(EvalRunner):
    def evaluate(self, weights: list, episodes: int) -> list[float]:
        return self.play(ray.get(weights[0][1]), episodes)
