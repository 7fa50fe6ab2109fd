"""Typed configuration: one dataclass per concern, each field's help text beside it; the command line
is generated from these, so `--help` and the code cannot disagree. Derived values are properties."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass, field, fields

from agents import preset

ALGORITHMS = ("DQN", "DDQN", "Rainbow", "R2D2", "DDPG", "D4PG")
DISCRETE_ALGORITHMS = ("DQN", "DDQN", "Rainbow", "R2D2")
NOISES = ("gaussian", "ou")
BUFFERS = ("mmdb", "pmdb")
NORMS = ("none", "gn")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RunConfig:
    env: str = _f("CartPole-v1", "game (Pong, Asterix, ...) or gymnasium id (CartPole-v1, ALE/Pong-v5, module:Env-v0)",
                  positional=True)
    suffix: str = _f("run", "names the run: logs/<env>/<suffix>, model/<alg>_<net>/<env>/<suffix>")
    num_agents: int = _f(2, "agent actors stepping environments")
    envs_per_agent: int = _f(1, "environments per agent, stepped together with one batched forward pass (Atari: on "
                                   "ale-py's C++ vector env); each env is one of the Ape-X epsilons' actors")
    agent_int8: bool = _f(False, "agents act with an int8 copy of the Q network, re-quantised for new weight "
                                 "versions (at most 5 %% of an agent's time) on its last 64 observations (DQN, "
                                 "DDQN, Rainbow without noisy layers; Nature or MinAtar torso); the learner, the "
                                 "evaluator and --test stay float32")
    num_loaders: int = _f(1, "loader actors sampling, decompressing and batching for the learner")
    max_steps: int = _f(10_000_000, "stop after this many env steps (agent steps, all agents together)")
    max_time: float = _f(0.0, "stop after this many seconds of training (0: no limit)")
    save_period: int = _f(20_000, "checkpoint every this many learner steps (and at the end)")
    eval_period: int = _f(100_000, "evaluate every this many env steps and at the end (0: never)")
    eval_episodes: int = _f(5, "whole games per evaluation")
    stop_return: float = _f(float("inf"), "stop once an evaluation's mean return reaches this")
    eval_epsilon: float = _f(0.001, "epsilon of the evaluator and of --test")
    test_episodes: int = _f(30, "games played by --test")
    test: bool = _f(False, "play --test_episodes games with the checkpoint given by --resume and print scores")
    record: bool = _f(False, "with --test: write a GIF of the best game under exp/")
    resume: str = _f("", "checkpoint to continue training from (or to --test); its saved replay too, if any")
    save_replay: bool = _f(False, "save the replay with each checkpoint (newest only), so --resume skips the warm-up")
    sticky: bool = _f(False, "sticky actions (repeat_action_probability 0.25) on Atari")
    num_gpus: int = _f(-1, "GPUs for the learner (0: CPU; -1: one if this machine has a GPU, else none)")
    learner_replicas: int = _f(1, "learner replicas in data parallel, each with its own loaders (CPU: gloo); "
                                  "--num_gpus N > 1 makes N replicas, one GPU each (NCCL)")
    address: str = _f("", "join an existing Ray cluster (auto or HOST:PORT); empty starts a local Ray")
    dashboard: bool = _f(False, "start Ray's dashboard (local Ray only), bound to 127.0.0.1:8265; off by default")
    num_cpus: int = _f(0, "CPUs Ray may use when it starts locally (0: all of this machine's)")
    seed: int = _f(0, "random seed; agent i uses seed + i")
    logdir: str = _f("logs", "TensorBoard root; runs go to <logdir>/<env>/<suffix>")
    modeldir: str = _f("model", "checkpoint root")
    status_period: float = _f(5.0, "seconds between status lines")
    show_config: bool = _f(False, "print the resolved configuration, with where each value came from (flag, "
                                  "preset, default), then exit")

    @property
    def replicas(self) -> int:
        return self.num_gpus if self.num_gpus > 1 else self.learner_replicas

    @property
    def env_dir(self) -> str:
        return self.env.replace("/", "-").replace(":", "-")


@dataclass
class ReplayConfig:
    buffer: str = _f("pmdb", "replay: mmdb (uniform) or pmdb (proportional prioritized)", choices=BUFFERS)
    replay_size: int = _f(1_000_000, "replay capacity in transitions (R2D2: steps, held as sequences of seq_len - overlap new steps each)")
    replay_start: int = _f(20_000, "transitions in replay before the learner starts (R2D2: steps, as --replay_size)")
    replay_shards: int = _f(1, "replay actors; agent i writes to shard i %% K, loaders sample across shards in "
                               "proportion to their sizes (pmdb: priority totals); shards spread over nodes")
    speed: float = _f(8.0, "replay ratio: transitions sampled per transition inserted (R2D2: sequences), held by a rate limiter")
    alpha: float = _f(0.6, "pmdb priority exponent")
    beta0: float = _f(0.4, "pmdb initial importance-sampling exponent, annealed to 1")
    beta_steps: int = _f(200_000, "learner steps over which beta anneals to 1")


@dataclass
class AlgConfig:
    alg: str = _f("DQN", "algorithm", choices=ALGORITHMS)
    lr: float = _f(1e-4, "Adam learning rate")
    batch_size: int = _f(64, "transitions per learner step")
    gamma: float = _f(0.99, "discount")
    nstep: int = _f(3, "n of the n-step return")
    dueling: bool = _f(False, "dueling head")
    norm: str = _f("none", "network normalisation: none, or gn (GroupNorm variant of the DeepMind network)",
                   choices=NORMS)
    target_period: int = _f(2500, "learner steps between target network copies")
    clip_norm: float = _f(40.0, "gradient norm clip")
    publish_period: int = _f(100, "learner steps between weight publications to agents")
    eps_steps: int = _f(250_000, "single agent: env steps over which epsilon anneals from 1 to eps_final")
    eps_final: float = _f(0.01, "single agent: final epsilon")
    sync_period: int = _f(400, "agent steps between weight pulls")
    # R2D2
    seq_len: int = _f(80, "R2D2: steps per replayed sequence, burn-in included")
    overlap: int = _f(40, "R2D2: steps shared by consecutive sequences of an episode")
    burn_in: int = _f(40, "R2D2: leading steps of a sequence that only warm up the LSTM state (no gradient)")
    lstm: int = _f(512, "R2D2: LSTM size")
    eta: float = _f(0.9, "R2D2: sequence priority = eta * max|TD| + (1 - eta) * mean|TD|")
    # DDPG / D4PG
    hidden: int = _f(256, "DDPG/D4PG: width of the two hidden layers of actor and critic")
    actor_lr: float = _f(1e-4, "DDPG/D4PG: actor learning rate (--lr is the critic's)")
    lr_decay: bool = _f(False, "learning rates fall linearly to 0 over the learner steps the run will take (those "
                               "--max_steps allows at --speed), so the final policy stops drifting")
    lr_decay_start: float = _f(0.0, "with --lr_decay: the fraction of the planned learner steps at which the decay "
                                    "begins (0: from the first step); the rates stay constant until then")
    tau: float = _f(0.0, "soft target updates: every learner step moves the target networks by tau toward the "
                         "online ones (0: a copy every --target_period steps)")
    noise: str = _f("gaussian", "DDPG/D4PG: exploration noise, gaussian or ou (Ornstein-Uhlenbeck)", choices=NOISES)
    noise_max: float = _f(0.4, "DDPG/D4PG: noise scale of agent 0 (fraction of the action half-range)")
    noise_min: float = _f(0.05, "DDPG/D4PG: noise scale of the last agent; agents between are spaced geometrically")
    num_atoms: int = _f(51, "D4PG and Rainbow: atoms of the categorical value distribution")
    v_min: float = _f(-150.0, "D4PG and Rainbow: lowest atom of the value distribution's support")
    v_max: float = _f(150.0, "D4PG and Rainbow: highest atom of the value distribution's support")
    noisy: bool = _f(False, "DQN, DDQN, Rainbow, R2D2: noisy nets (factorised Gaussian, sigma0 0.5) in the value "
                            "head; agents explore by the noise, drawn afresh every step, with epsilon 0")
    noisy_eps: bool = _f(False, "with --noisy: agents also act epsilon-greedily with the Ape-X epsilons")

    @property
    def double(self) -> bool:
        return self.alg in ("DDQN", "Rainbow", "R2D2")

    @property
    def atoms(self) -> int:
        """Atoms of the Q network's value distributions: --num_atoms for Rainbow, else 1 (plain Q values)."""
        return self.num_atoms if self.alg == "Rainbow" else 1

    @property
    def discrete(self) -> bool:
        return self.alg in DISCRETE_ALGORITHMS

    @property
    def steps_per_item(self) -> int:
        """Agent steps one replay item adds: 1 for a transition, seq_len - overlap for an R2D2 sequence."""
        return self.seq_len - self.overlap if self.alg == "R2D2" else 1

    @property
    def net_name(self) -> str:
        if self.alg in ("DDPG", "D4PG"):
            return f"mlp{self.hidden}"
        base = ("dueling" if self.dueling else "q") + ("_gn" if self.norm == "gn" else "") + \
            ("_noisy" if self.noisy else "")
        return f"lstm{self.lstm}_{base}" if self.alg == "R2D2" else base


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    alg: AlgConfig = field(default_factory=AlgConfig)
    # which presets applied: {"file", "env", "family", "values": {flag: source}}; recorded in config.json
    preset: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return cls(run=RunConfig(**d["run"]), replay=ReplayConfig(**d["replay"]), alg=AlgConfig(**d["alg"]),
                   preset=d.get("preset", {}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def planned_learner_steps(cfg: Config) -> int:
    """Learner steps a run to --max_steps takes: the rate limiter samples --speed items per item inserted
    after --replay_start, --batch_size items a step."""
    r, rp, a = cfg.run, cfg.replay, cfg.alg
    return max(1, round(max(0, r.max_steps - rp.replay_start) * rp.speed / (a.batch_size * a.steps_per_item)))


SECTIONS = (("run", RunConfig), ("replay", ReplayConfig), ("alg", AlgConfig))
# flags that define what a checkpoint is: a mismatch with the checkpoint is an error, not a silent override
IDENTITY = (("alg", "alg"), ("alg", "dueling"), ("alg", "norm"), ("alg", "lstm"), ("alg", "hidden"),
            ("alg", "num_atoms"), ("alg", "noisy"))
class UsageError(ValueError):
    """Bad input from the user: main.py prints it on one line and exits with code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


RESOLUTION = ("A value comes from the first of: the flag you give; the preset for the env id; the preset for "
              "its family (atari, minatar, classic: discrete classic control, continuous); the algorithm's "
              "defaults; the flag's default below. Presets: agents/presets/<ALG>.toml. --show_config prints "
              "the result and each value's source.")


@functools.lru_cache(maxsize=None)
def shipped_preset(alg: str) -> dict:
    """The preset file of `alg`, read and checked once per process (every parse_args needs them all for
    --help's defaults, and the algorithm's own to fill the config)."""
    return preset.load(alg, SECTIONS)


def _alg_defaults() -> dict[str, dict]:
    return {alg: shipped_preset(alg)["defaults"] for alg in ALGORITHMS}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="main.py", description="Distributed Ape-X style deep RL on Ray. " + RESOLUTION,
                argument_default=argparse.SUPPRESS)
    alg_defaults = _alg_defaults()
    for section, cls in SECTIONS:
        group = p.add_argument_group(section)
        for f in fields(cls):
            meta, name = f.metadata, f.name
            special = "; ".join(f"{alg}: {d[name]}" for alg, d in alg_defaults.items() if name in d)
            kw = {"help": meta["help"] + f" (default: {f.default}" + (f"; {special}" if special else "") + ")"}
            if meta.get("positional"):
                group.add_argument(name, help=meta["help"])
            elif f.type == "bool" or isinstance(f.default, bool):
                group.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, **kw)
            else:
                typ = type(f.default)
                group.add_argument(f"--{name}", type=typ, choices=meta.get("choices"), **kw)
    return p


FLAG_SECTION = {f.name: section for section, cls in SECTIONS for f in fields(cls)}


def parse_args(argv: list[str]) -> tuple[Config, set[tuple[str, str]]]:
    """Flags -> (Config, the (section, field) pairs the user gave explicitly); the presets fill the rest."""
    ns = vars(build_parser().parse_args(argv))
    cfg, given = Config(), set()
    for section, cls in SECTIONS:
        sub = getattr(cfg, section)
        for f in fields(cls):
            if f.name in ns:
                setattr(sub, f.name, ns[f.name])
                given.add((section, f.name))
    apply_presets(cfg, given)
    return cfg, given


def apply_presets(cfg: Config, given: set) -> None:
    """Fill the flags the user did not give from the algorithm's preset file; record what applied."""
    from envs import env_family

    family = env_family(cfg.run.env)
    table = shipped_preset(cfg.alg.alg)
    values = preset.resolve(table, cfg.run.env, family, {name for _, name in given})
    for name, (value, _) in values.items():
        setattr(getattr(cfg, FLAG_SECTION[name]), name, value)
    root = os.path.dirname(os.path.dirname(preset.PRESET_DIR))
    cfg.preset = {"file": os.path.relpath(preset.preset_path(cfg.alg.alg), root),
                  "env": cfg.run.env if cfg.run.env in table["env"] else None,
                  "family": family if family in table["family"] else None,
                  "values": {name: source for name, (_, source) in sorted(values.items())}}


def describe(cfg: Config, given: set) -> str:
    """The resolved configuration, one flag per line with its source: what --show_config prints."""
    lines = [f"# {cfg.alg.alg} on {cfg.run.env}: preset file {cfg.preset.get('file')}, env table "
             f"{cfg.preset.get('env') or '-'}, family table {cfg.preset.get('family') or '-'}"]
    sources = cfg.preset.get("values", {})
    for section, cls in SECTIONS:
        lines.append(f"[{section}]")
        for f in fields(cls):
            value = getattr(getattr(cfg, section), f.name)
            source = preset.FLAG if (section, f.name) in given else sources.get(f.name, preset.DEFAULT)
            lines.append(f"{f.name} = {value!r}".ljust(40) + f"# {source}")
    return "\n".join(lines)


def validate(cfg: Config) -> None:
    """Refuse values that cannot work, before anything starts; raises UsageError with what to do."""
    r, rp, a = cfg.run, cfg.replay, cfg.alg

    def need(cond: bool, msg: str):
        if not cond:
            raise UsageError(msg)

    for name, value in (("num_agents", r.num_agents), ("envs_per_agent", r.envs_per_agent),
                        ("num_loaders", r.num_loaders), ("learner_replicas", r.learner_replicas),
                        ("replay_shards", rp.replay_shards), ("max_steps", r.max_steps), ("batch_size", a.batch_size),
                        ("replay_size", rp.replay_size), ("nstep", a.nstep), ("target_period", a.target_period),
                        ("save_period", r.save_period), ("test_episodes", r.test_episodes),
                        ("eval_episodes", r.eval_episodes), ("publish_period", a.publish_period),
                        ("sync_period", a.sync_period), ("seq_len", a.seq_len), ("lstm", a.lstm),
                        ("hidden", a.hidden), ("num_atoms", a.num_atoms)):
        need(value >= 1, f"--{name} must be at least 1, got {value}")
    for name, value in (("lr", a.lr), ("speed", rp.speed), ("clip_norm", a.clip_norm)):
        need(math.isfinite(value) and value > 0, f"--{name} must be a positive number, got {value}")
    need(0 <= a.gamma <= 1, f"--gamma must be within [0, 1], got {a.gamma}")
    need(0 <= a.lr_decay_start < 1, f"--lr_decay_start must be within [0, 1), got {a.lr_decay_start}")
    need(r.max_time >= 0 and r.eval_period >= 0 and r.num_cpus >= 0 and rp.replay_start >= 0,
         "--max_time, --eval_period, --num_cpus and --replay_start cannot be negative")
    need(r.num_gpus <= 1 or r.learner_replicas in (1, r.num_gpus),
         f"--learner_replicas ({r.learner_replicas}) must equal --num_gpus ({r.num_gpus}): one replica per GPU")
    need(r.num_loaders >= r.replicas, f"--num_loaders ({r.num_loaders}) must be at least the number of learner "
         f"replicas ({r.replicas}): each replica has its own loaders")
    need(r.num_gpus >= -1, f"--num_gpus must be -1 (auto), 0 (CPU) or a number of GPUs, got {r.num_gpus}")
    need(0 <= rp.alpha and 0 <= rp.beta0 <= 1, "--alpha must be >= 0 and --beta0 within [0, 1]")
    need(0 <= r.eval_epsilon <= 1 and 0 <= a.eps_final <= 1, "epsilons must be within [0, 1]")
    need(rp.replay_start <= rp.replay_size,
         f"--replay_start ({rp.replay_start}) cannot exceed --replay_size ({rp.replay_size})")
    need(rp.replay_shards <= r.num_agents,
         f"--replay_shards ({rp.replay_shards}) cannot exceed --num_agents ({r.num_agents}): agent i writes to "
         f"shard i % {rp.replay_shards}, so a shard without an agent would stay empty")
    need(not r.test or r.resume, "--test needs --resume PATH of a checkpoint to play")
    need(not r.record or r.test, "--record goes with --test")
    if a.alg == "R2D2":
        need(0 <= a.overlap < a.seq_len, f"--overlap must be within [0, --seq_len), got {a.overlap}")
        need(0 <= a.burn_in < a.seq_len, f"--burn_in must be within [0, --seq_len), got {a.burn_in}")
        need(0 <= a.eta <= 1, f"--eta must be within [0, 1], got {a.eta}")
    per_item = a.steps_per_item   # after the R2D2 checks: overlap < seq_len
    need(rp.replay_start // per_item >= a.batch_size or rp.replay_start >= rp.replay_size,
         f"--replay_start ({rp.replay_start}) must hold at least --batch_size ({a.batch_size}) "
         + (f"sequences: {a.batch_size * per_item} steps" if per_item > 1 else "transitions"))
    need(0 <= a.tau <= 1, f"--tau must be within [0, 1], got {a.tau}")
    need(not a.noisy or a.discrete, f"--noisy is for DQN, DDQN, Rainbow and R2D2, not {a.alg}")
    if a.alg == "Rainbow":
        need(a.v_min < a.v_max, f"--v_min ({a.v_min}) must be below --v_max ({a.v_max})")
        need(a.num_atoms >= 2, f"--num_atoms must be at least 2, got {a.num_atoms}")
    if a.alg in ("DDPG", "D4PG"):
        need(math.isfinite(a.actor_lr) and a.actor_lr > 0, f"--actor_lr must be a positive number, got {a.actor_lr}")
        need(0 <= a.noise_min <= a.noise_max, "--noise_min and --noise_max must satisfy 0 <= min <= max")
        need(a.v_min < a.v_max, f"--v_min ({a.v_min}) must be below --v_max ({a.v_max})")
        need(a.num_atoms >= 2, f"--num_atoms must be at least 2, got {a.num_atoms}")
