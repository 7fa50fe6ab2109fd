"""Checkpoints: what a run needs to continue or to be tested, in one file written atomically.

Layout: model/<alg>_<net>/<env>/<suffix>/iter_<learner_steps>.pt. Loading uses torch.load(weights_only=True):
tensors, numbers, strings, lists and dicts only, never arbitrary pickled objects.
"""
from __future__ import annotations

import json
import os

import torch

from agents.config import IDENTITY, Config, UsageError

FORMAT = 2   # 2: R2D2's replay_start counts steps; the DQN family's tau is used (soft target updates)


def checkpoint_dir(cfg: Config) -> str:
    return os.path.join(cfg.run.modeldir, f"{cfg.alg.alg}_{cfg.alg.net_name}", cfg.run.env_dir, cfg.run.suffix)


def save_checkpoint(path: str, cfg: Config, learner_state: dict, counters: dict) -> str:
    """Write to a temporary file then rename, so a crash never leaves a truncated checkpoint behind."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    payload = {"format": FORMAT, "config": json.dumps(cfg.to_dict()), "learner": learner_state,
               "counters": counters, "torch_rng": torch.get_rng_state()}
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str) -> dict:
    """The checkpoint's payload; UsageError (one line) for a missing, truncated or foreign file."""
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path!r} does not exist; give --resume the path of an iter_<N>.pt file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # truncated zip, not a torch file, or a pickle that is not weights-only
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"checkpoint {path!r} cannot be read ({reason[:160]}); is it complete?") from None
    if not isinstance(payload, dict) or payload.get("format") not in (1, FORMAT) or "config" not in payload:
        raise UsageError(f"{path!r} is not a checkpoint written by this trainer")
    payload["config"] = upgrade_config(json.loads(payload["config"]), payload["format"])
    return payload


def upgrade_config(saved: dict, fmt: int) -> dict:
    """A format-1 checkpoint's config in today's units: R2D2's replay_start counted sequences (now steps),
    and tau, then DDPG's alone, held its default 0.005 for the DQN family, which now uses it."""
    if fmt == 1:
        alg = saved["alg"]
        if alg["alg"] == "R2D2":
            saved["replay"]["replay_start"] *= alg["seq_len"] - alg["overlap"]
        if alg["alg"] not in ("DDPG", "D4PG"):
            alg["tau"] = 0.0
    return saved


def merge_checkpoint_config(cfg: Config, given: set, saved: dict, path: str) -> Config:
    """Check the checkpoint fits what the user asked for; flags the user did not give follow the checkpoint."""
    saved_cfg = Config.from_dict(saved)
    if saved_cfg.run.env != cfg.run.env:
        raise UsageError(f"checkpoint {path!r} is for {saved_cfg.run.env}, not {cfg.run.env}")
    for section, name in IDENTITY:
        mine, theirs = getattr(getattr(cfg, section), name), getattr(getattr(saved_cfg, section), name)
        if (section, name) in given and mine != theirs:
            raise UsageError(f"checkpoint {path!r} was trained with --{name}={theirs}, not {mine}; "
                             f"drop --{name} or pick a matching checkpoint")
    for section, name in IDENTITY:
        setattr(getattr(cfg, section), name, getattr(getattr(saved_cfg, section), name))
    for section, sub in (("replay", cfg.replay), ("alg", cfg.alg)):   # training settings follow the run
        for key, value in vars(getattr(saved_cfg, section)).items():
            if (section, key) not in given:
                setattr(sub, key, value)
    if saved_cfg.preset:   # the training settings came from the run's presets, not today's
        cfg.preset = saved_cfg.preset
    return cfg
