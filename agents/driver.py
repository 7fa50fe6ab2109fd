"""The driver: starts Ray, checks that the run can work, places and wires the actors of agents/actors.py,
runs the loop that feeds agents their weights, aggregates statistics, evaluates, checkpoints and stops,
and turns a failed actor into one line that says what failed and how to resume."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time

import numpy as np
import ray

from agents.actors import Agent, Evaluator, Learner, Loader, Replay
from agents.algorithms import make_memory
from agents.checkpoint import (
    checkpoint_dir,
    load_checkpoint,
    merge_checkpoint_config,
    save_checkpoint,
)
from agents.config import Config, UsageError
from agents.placement import cpu_nodes, near, spread
from agents.policies import acting_note
from agents.report import Reporter
from agents.roles import EnvRunner
from envs import EnvInfo, env_info

LEARNER_CHUNK_S = 0.5


def replay_path(checkpoint: str, shard: int = 0, shards: int = 1) -> str:
    """The replay saved with checkpoint `.../iter_N.pt` is `.../iter_N.replay.npz` (shard k of K > 1:
    `.../iter_N.replay<k>.npz`)."""
    base = checkpoint[:-3] if checkpoint.endswith(".pt") else checkpoint
    return f"{base}.replay{shard if shards > 1 else ''}.npz"


def shard_config(cfg: Config, shard: int) -> Config:
    """The config of replay shard k of K: its share of the capacity and of the warm-up, its own seed."""
    k = cfg.replay.replay_shards
    shard_cfg = Config.from_dict(cfg.to_dict())
    shard_cfg.replay.replay_size = max(1, cfg.replay.replay_size // k)
    shard_cfg.replay.replay_start = cfg.replay.replay_start // k
    shard_cfg.run.seed = cfg.run.seed + 1000 * shard
    return shard_cfg


def merge_replay_stats(stats: list[dict]) -> dict:
    """The shards' statistics as one replay's: sums, and the mean sampled-per-inserted ratio."""
    out = {k: sum(s[k] for s in stats) for k in stats[0] if k != "ratio"}
    out["ratio"] = float(np.mean([s["ratio"] for s in stats]))
    return out


def init_ray(cfg: Config) -> bool:
    """Join --address, or start a local Ray of our own (never silently join a stray `ray start` cluster).
    Returns True if this process started Ray and must shut it down."""
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # workers import agents/, buffers/, ...
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    if cfg.run.address:   # the project sits at the same path on every node (or is pip-installed there)
        ray.init(address=cfg.run.address, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **common)
        return True
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["PYTHONPATH"] = pythonpath
    if cfg.run.dashboard:   # never on a public interface: reach it from elsewhere through an SSH tunnel
        import importlib.util
        if importlib.util.find_spec("aiohttp") is None:
            raise UsageError("--dashboard needs Ray's dashboard packages: pip install 'ray[default]'")
        common.update(include_dashboard=True, dashboard_host="127.0.0.1")
    ray.init(address="local", num_cpus=cfg.run.num_cpus or os.cpu_count(),
             num_gpus=cfg.run.num_gpus or None, **common)
    return True


def replay_bytes_per_transition(cfg: Config, info: EnvInfo, steps: int = 600) -> float:
    """Bytes one transition (R2D2: one step of a sequence) costs in the replay, measured on a short
    fill by an agent with untrained weights (frames compressed as in a run) into a small replay of the
    configured kind. One env, whatever --envs_per_agent says: a short fill spread over many envs would be mostly
    episode starts (Pong, 32 envs: 252 B against 211 B), and each Atari env costs start-up time (6 s against 1.3 s)."""
    pushes = []
    one_env = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, envs_per_agent=1))
    runner = EnvRunner(0, one_env, info, send=lambda p: pushes.extend(p) or True)
    runner.run(steps)
    memory = make_memory(cfg, info, capacity=steps)
    memory.add(pushes)
    runner.envs.close()
    held = memory.nbytes
    if info.image:   # each compressed frame is a bytes object: its header and the pointer to it
        held += (sys.getsizeof(b"") + 8) * memory.frames.live
    return held / max(len(memory) * cfg.alg.steps_per_item, 1)


def check_replay_fits(cfg: Config, info: EnvInfo) -> None:
    """Refuse a replay that cannot fit in the memory Ray reports for its largest node."""
    per = replay_bytes_per_transition(cfg, info)
    need = per * cfg.replay.replay_size / cfg.replay.replay_shards   # shards may sit on different nodes
    nodes = [n.get("Resources", {}).get("memory", 0.0) for n in ray.nodes() if n.get("Alive")]
    have = max(nodes, default=0.0)
    if have and need > 0.9 * have:
        raise UsageError(f"a replay of {cfg.replay.replay_size:,} transitions "
                         f"({cfg.replay.replay_shards} shard(s)) needs about {need / 1e9:,.1f} GB per shard "
                         f"({per:,.0f} B per transition, measured on random play), more than the "
                         f"{have / 1e9:,.1f} GB Ray reports for its largest node; lower --replay_size")

def command_line(cfg: Config, given: set) -> str:
    """The command that reproduces this run: the env and every flag the user gave."""
    flags = []
    for section, name in sorted(given):
        if (section, name) == ("run", "env"):
            continue
        value = getattr(getattr(cfg, section), name)
        flags.append(f"--{name}" if value is True else f"--no-{name}" if value is False else f"--{name}={value}")
    return " ".join(["python main.py", cfg.run.env, *flags])


def hardware(cfg: Config) -> str:
    cpu = f"{os.cpu_count()}-core CPU"
    if cfg.run.num_gpus > 0:
        import torch
        if torch.cuda.is_available():
            return f"{cpu}, {cfg.run.num_gpus}x {torch.cuda.get_device_name(0)}"
    return cpu


def check_action_space(cfg: Config, info: EnvInfo) -> None:
    if cfg.alg.discrete and not info.discrete:
        raise UsageError(f"{cfg.alg.alg} needs discrete actions; {cfg.run.env} has continuous ones: "
                         "use --alg=DDPG or --alg=D4PG")
    if not cfg.alg.discrete and not info.discrete and len(info.obs_shape) != 1:
        raise UsageError(f"{cfg.alg.alg} takes vector observations; {cfg.run.env} has {info.obs_shape}")
    if not cfg.alg.discrete and info.discrete:
        raise UsageError(f"{cfg.alg.alg} needs continuous actions; {cfg.run.env} has discrete ones: "
                         "use --alg=DQN, DDQN or R2D2")


def run_paths(cfg: Config, resuming: bool) -> tuple[str, str]:
    """(log folder, checkpoint folder). A new run never writes into an earlier run's folders."""
    base_suffix = cfg.run.suffix
    n = 1
    while True:
        logdir = os.path.join(cfg.run.logdir, cfg.run.env_dir, cfg.run.suffix)
        if resuming or not (os.path.exists(logdir) or os.path.exists(checkpoint_dir(cfg))):
            return logdir, checkpoint_dir(cfg)
        n += 1
        cfg.run.suffix = f"{base_suffix}_{n}"


class RunFailed(RuntimeError):
    """An actor the run cannot do without died or failed: the run stops, saying what failed (`what`) and
    how to resume. `details` holds the remote traceback, if any."""

    def __init__(self, role: str, what: str, checkpoint: str | None, env: str, details: str = ""):
        how = (f"resume with: python main.py {env} --resume {checkpoint}" if checkpoint
               else "no checkpoint was written yet; start the run again")
        super().__init__(f"the {role} {what}; the run stopped; {how}")
        self.role, self.checkpoint, self.details = role, checkpoint, details


class _CallFailed(Exception):
    """A role's call raised (the actor itself lives on): which role, and the Ray error."""

    def __init__(self, role: str, error: Exception):
        super().__init__(role)
        self.role, self.error = role, error


def _innermost(error: Exception) -> Exception:
    """The exception a Ray error wraps: a RayTaskError raised inside another actor's call wraps another."""
    cause = getattr(error, "cause", None) or error
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    return cause


def _first_line(error: Exception) -> str:
    """`Type: message` of the exception a Ray error wraps (its innermost cause), on one line."""
    cause = _innermost(error)
    if isinstance(cause, ray.exceptions.RayTaskError) or not str(cause):
        return type(cause).__name__
    return f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}"


def _failed_role(replays: list, learners: list) -> tuple[str, str, str] | None:
    """(role, what happened, traceback) for the first replay or learner that died or failed, if any. A
    replay that failed tells why (ReplayServer.failure_reason): the root cause of whatever failed after it."""
    for k, replay in enumerate(replays):
        name = "Replay" if len(replays) == 1 else f"Replay shard {k}"
        try:
            failure = ray.get(replay.failure_reason.remote(), timeout=10)
        except ray.exceptions.GetTimeoutError:
            continue   # busy, not dead
        except ray.exceptions.RayActorError as e:
            return name, f"actor died ({type(e).__name__})", ""
        if failure:
            return name, f"failed ({failure[0]})", failure[1]
    for learner in learners:
        try:
            ray.get(learner.__ray_ready__.remote(), timeout=10)
        except ray.exceptions.GetTimeoutError:
            continue
        except ray.exceptions.RayActorError as e:
            return "Learner", f"actor died ({type(e).__name__})", ""
    return None


def save_learner(learner, cfg: Config, modeldir: str, counters: dict, replays: list | None = None) -> str:
    """Checkpoint the learner as iter_<learner_steps>.pt; given `replays` (the shards), save them beside
    (newest only: each replay file can be hundreds of MB)."""
    state = ray.get(learner.state_dict.remote())
    path = os.path.join(modeldir, f"iter_{int(state['steps'])}.pt")
    if replays:
        os.makedirs(modeldir, exist_ok=True)
        mine = [replay_path(path, k, len(replays)) for k in range(len(replays))]
        ray.get([r.save.remote(p) for r, p in zip(replays, mine)])
        for old in os.listdir(modeldir):
            if ".replay" in old and old.endswith(".npz") and os.path.join(modeldir, old) not in mine:
                os.remove(os.path.join(modeldir, old))
    return save_checkpoint(path, cfg, state, {**counters, "learner_steps": int(state["steps"])})


def latest_checkpoint(modeldir: str) -> str | None:
    paths = [p for p in os.listdir(modeldir) if p.startswith("iter_") and p.endswith(".pt")] \
        if os.path.isdir(modeldir) else []
    return os.path.join(modeldir, max(paths, key=lambda p: int(p[5:-3]))) if paths else None


class _Stop:
    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        self.signal = signum


def train(cfg: Config, given: set) -> dict:
    """Train until max_steps or max_time (or SIGINT/SIGTERM); return the summary."""
    info = env_info(cfg.run.env)
    ckpt = None
    if cfg.run.resume:
        ckpt = load_checkpoint(cfg.run.resume)
        cfg = merge_checkpoint_config(cfg, given, ckpt["config"], cfg.run.resume)
        cfg.run.suffix = ckpt["config"]["run"]["suffix"]
    check_action_space(cfg, info)
    counters = dict(env_steps=0, wall_s=0.0, episodes=0, agent_restarts=0, agent_steps=[0] * cfg.run.num_agents,
                    best_eval_return=None, last_eval_return=None, evaluations=[])
    if ckpt is not None:
        saved = ckpt["counters"]
        counters.update({k: saved[k] for k in counters if k in saved})
        steps = list(counters["agent_steps"]) + [0] * cfg.run.num_agents
        counters["agent_steps"] = steps[:cfg.run.num_agents]

    if cfg.run.num_gpus < 0:
        import torch
        cfg.run.num_gpus = 1 if torch.cuda.is_available() else 0
    started = init_ray(cfg)
    try:
        check_replay_fits(cfg, info)   # before any folder is made: a refused run leaves nothing behind
    except UsageError:
        if started:
            ray.shutdown()
        raise
    logdir, modeldir = run_paths(cfg, resuming=ckpt is not None)
    os.makedirs(logdir, exist_ok=True)
    with open(os.path.join(logdir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    note = acting_note(cfg, info)
    if note is not None:
        print(note, flush=True)
    stop = _Stop()
    # after ray.init, which installs handlers of its own: ours turn a signal into a clean, saved stop
    old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    callers, called = [], []   # the roles that call others stop first, so no call of theirs fails on a killed role
    pending, others = {}, []   # the driver's calls in flight
    reporter = Reporter(logdir, cfg.run.status_period)
    try:
        shards = cfg.replay.replay_shards
        nodes = cpu_nodes()
        replays = [ray.remote(Replay).options(**spread(k, nodes)).remote(
            shard_config(cfg, k), info) for k in range(shards)]
        restartable = {"num_cpus": 0, "max_restarts": -1}
        device = "cuda" if cfg.run.num_gpus > 0 else "cpu"
        world = cfg.run.replicas
        # a CPU learner stays on this node; a GPU learner goes where Ray finds a GPU
        placed = {"num_gpus": 1, "num_cpus": 0} if device == "cuda" \
            else near(ray.get_runtime_context().get_node_id(), nodes)
        learners = [ray.remote(Learner).options(**placed).remote(cfg, info, [], device, r, world)
                    for r in range(world)]
        learner = learners[0]
        # loaders beside their learner: a decoded batch (Pong, 512: 29 MB) should not cross the network
        learner_nodes = ray.get([lr.node.remote() for lr in learners])
        loaders = [ray.remote(Loader).options(**{**restartable, **near(learner_nodes[j % world], nodes)}).remote(
            replays, cfg, cfg.run.seed + j) for j in range(cfg.run.num_loaders)]
        ray.get([lr.attach.remote(loaders[r::world]) for r, lr in enumerate(learners)])
        if world > 1:
            address = ray.get(learner.rendezvous.remote())
            ray.get([lr.join.remote(address) for lr in learners])
        if ckpt is not None:
            try:
                ray.get([lr.load_state_dict.remote(ckpt["learner"]) for lr in learners])
            except ray.exceptions.RayTaskError as e:
                raise UsageError(f"checkpoint {cfg.run.resume!r} does not fit this network: "
                                 f"{str(e.cause).splitlines()[0][:160]}") from None
            saved = [replay_path(cfg.run.resume, k, shards) for k in range(shards)]
            if all(os.path.exists(p) for p in saved):
                try:
                    ray.get([r.load.remote(p) for r, p in zip(replays, saved)])
                except ray.exceptions.RayTaskError as e:
                    raise UsageError(f"replay {saved[0]!r} cannot be restored: "
                                     f"{str(e.cause).splitlines()[0][:160]}") from None
        weights = ray.get(learner.publish.remote())
        agents = [ray.remote(Agent).options(**{**restartable, **spread(i, nodes)}).remote(
            i, cfg, info, replays[i % shards], counters["agent_steps"][i]) for i in range(cfg.run.num_agents)]
        evaluator = ray.remote(Evaluator).options(**restartable).remote(cfg, info)
        # agents and the evaluator call the replays; learners call their loaders; loaders call the replays
        callers, called = [*agents, evaluator, *learners], [*loaders, *replays]
        reporter.start(counters["env_steps"], int(ckpt["learner"]["steps"]) if ckpt is not None else 0)
        try:
            result = _loop(cfg, counters, agents, learners, replays, evaluator, weights, reporter, modeldir, stop,
                           pending, others)
        except (ray.exceptions.RayError, _CallFailed) as e:
            failed = _failed_role(replays, learners)
            if failed is None and not isinstance(e, _CallFailed):
                raise
            role, what, details = failed or (e.role, f"failed ({_first_line(e.error)})", str(e.error))
            # the learner's weights are fine unless the learner itself failed: save them (never a failed
            # replay, whose state may be half updated; the resumed run refills its replay)
            saved = None
            if role != "Learner":
                try:
                    saved = save_learner(learner, cfg, modeldir, counters)
                except ray.exceptions.RayError:
                    saved = None
            raise RunFailed(role, what, saved or latest_checkpoint(modeldir), cfg.run.env, details) from None
        summary = {"env": cfg.run.env, "alg": cfg.alg.alg, "buffer": cfg.replay.buffer, **result,
                   "logdir": logdir, "signal": stop.signal, "command": command_line(cfg, given),
                   "hardware": hardware(cfg)}
        with open(os.path.join(logdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        summary["summary_path"] = os.path.join(logdir, "summary.json")
        return summary
    finally:
        reporter.close()
        for a in callers:
            ray.kill(a)
        _take_ended([*pending, *others])
        for a in called:
            ray.kill(a)
        if started:
            ray.shutdown()
        for s, h in old_handlers.items():
            signal.signal(s, h)


def _take_ended(refs: list, timeout: float = 10.0) -> None:
    """Take the results of the driver's calls still in flight when their actors were killed at the run's end:
    Ray would log each such reference, once dropped, as an "Unhandled error" with the killed call's traceback.
    A call that failed for another reason than the kill is said in one line, never hidden."""
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout) if refs else ([], [])
    for ref in ready:
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError:
            pass
        except ray.exceptions.RayTaskError as e:
            if not isinstance(_innermost(e), ray.exceptions.RayActorError):
                print(f"a call in flight at the end of the run failed: {_first_line(e)}", flush=True)


def _loop(cfg, counters, agents, learners, replays, evaluator, weights, reporter, modeldir, stop,
          pending: dict, others: list) -> dict:
    """`pending` (the driver's calls in flight: ref -> (kind, index)) and `others` (replicas 1..'s training
    round: they train in rounds with replica 0) are the caller's, which takes what is left of them."""
    run = cfg.run
    learner = learners[0]
    t0 = time.monotonic() - counters["wall_s"]
    for i, agent in enumerate(agents):
        pending[agent.run_chunk.remote(cfg.alg.sync_period, weights, counters["agent_steps"][i])] = ("agent", i)
    def train_round():
        pending[learner.train.remote(LEARNER_CHUNK_S)] = ("learner", None)
        others[:] = [lr.train.remote(LEARNER_CHUNK_S) for lr in learners[1:]]

    train_round()
    learner_steps = 0
    next_save = None
    next_eval = counters["env_steps"] + run.eval_period if run.eval_period else None
    eval_call, last_ckpt, replay_stats = None, None, {}
    agent_pids: dict[int, int] = {}
    agent_nodes: dict[int, str] = {}

    def evaluated(returns):
        mean = float(np.mean(returns))
        counters["last_eval_return"] = mean
        best = counters["best_eval_return"]
        counters["best_eval_return"] = mean if best is None else max(best, mean)
        counters["evaluations"] = [*counters["evaluations"], [counters["env_steps"], round(mean, 3)]]
        reporter.evaluation(counters["env_steps"], returns)

    def checkpoint():
        counters["wall_s"] = time.monotonic() - t0
        return save_learner(learner, cfg, modeldir, counters, replays if cfg.run.save_replay else None)

    while stop.signal is None:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
        for ref in ready:
            kind, i = pending.pop(ref)
            try:
                res = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                if kind == "agent":   # Ray restarts it; its unfinished chunk is lost, the run goes on
                    print(f"agent {i} died ({type(e).__name__}); Ray restarts it", flush=True)
                    pending[agents[i].run_chunk.remote(cfg.alg.sync_period, weights,
                                                       counters["agent_steps"][i])] = ("agent", i)
                    continue
                if kind == "eval":
                    eval_call = None
                    continue
                raise
            except ray.exceptions.RayTaskError as e:   # the call raised: the run stops, never swallows it
                role = {"agent": f"agent {i}", "learner": "Learner", "eval": "Evaluator"}[kind]
                raise _CallFailed(role, e) from None
            if kind == "agent":
                if agent_pids.get(i, res["pid"]) != res["pid"]:   # a new process: the agent was restarted
                    counters["agent_restarts"] += 1
                agent_pids[i] = res["pid"]
                agent_nodes[i] = res["node"]
                counters["env_steps"] += res["steps"] - counters["agent_steps"][i]
                counters["agent_steps"][i] = res["steps"]
                for raw, clipped in res["returns"]:
                    counters["episodes"] += 1
                    reporter.episode(i, counters["env_steps"], raw, clipped)
                reporter.agent_stats(i, counters["env_steps"], res["stats"])
                pending[agents[i].run_chunk.remote(cfg.alg.sync_period, weights,
                                                   counters["agent_steps"][i])] = ("agent", i)
            elif kind == "learner":
                ray.get(others)   # the replicas stop with replica 0 (they agree on it)
                learner_steps = res["steps"]
                if next_save is None:
                    next_save = (learner_steps // run.save_period + 1) * run.save_period
                if res["stats"]:
                    reporter.learner(counters["env_steps"], res["stats"])
                if "weights" in res:
                    weights = res["weights"]
                train_round()
                if learner_steps >= next_save:
                    last_ckpt = checkpoint()
                    next_save = (learner_steps // run.save_period + 1) * run.save_period
            elif kind == "eval":
                evaluated(res)
                eval_call = None
        if next_eval is not None and counters["env_steps"] >= next_eval and eval_call is None:
            eval_call = evaluator.evaluate.remote(weights, run.eval_episodes)
            pending[eval_call] = ("eval", None)
            next_eval = counters["env_steps"] + run.eval_period
        wall = time.monotonic() - t0
        if reporter.due():
            replay_stats = merge_replay_stats(ray.get([r.stats.remote() for r in replays]))
            reporter.status(counters["env_steps"], learner_steps, replay_stats, run.max_steps, wall)
        if (counters["env_steps"] >= run.max_steps or (run.max_time and wall >= run.max_time)
                or (counters["last_eval_return"] is not None and counters["last_eval_return"] >= run.stop_return)):
            break

    # wind down: agents stop with the actors; evaluate the final weights unless a signal asked us to hurry
    if stop.signal is None and run.eval_period > 0:
        if eval_call is not None:
            evaluated(ray.get(eval_call))
        else:
            evaluated(ray.get(evaluator.evaluate.remote(ray.get(learner.publish.remote()), run.eval_episodes)))
    last_ckpt = checkpoint()
    learner_steps = int(ray.get(learner.state_dict.remote())["steps"])
    replay_stats = merge_replay_stats(ray.get([r.stats.remote() for r in replays]))
    reporter.status(counters["env_steps"], learner_steps, replay_stats, run.max_steps, time.monotonic() - t0)
    replicas = ray.get([lr.digest.remote() for lr in learners]) if len(learners) > 1 else None
    return {"env_steps": counters["env_steps"], "learner_steps": learner_steps, "learner_replicas": replicas,
            "agent_nodes": len(set(agent_nodes.values())),
            "replay_nodes": len(set(ray.get([r.node.remote() for r in replays]))),
            "loaders_off_learner_node": sum(ray.get([lr.loaders_away.remote() for lr in learners])),
            "wall_s": round(time.monotonic() - t0, 2), "episodes": counters["episodes"],
            "best_eval_return": counters["best_eval_return"], "last_eval_return": counters["last_eval_return"],
            "evaluations": counters["evaluations"], "agent_restarts": counters["agent_restarts"],
            "replay_size": replay_stats["size"],
            "replay_inserted": replay_stats["inserted"], "dropped_pushes": replay_stats["dropped_pushes"],
            "checkpoint": last_ckpt}
