"""`--test`: play whole no-op-start games with a checkpoint's network, in this process (no Ray)."""
from __future__ import annotations

import json
import os

import numpy as np
from gymnasium.error import DependencyNotInstalled

from agents.algorithms import algorithm
from agents.checkpoint import load_checkpoint, merge_checkpoint_config
from agents.config import Config, UsageError
from agents.roles import EvalRunner
from envs import env_info

GIF_WIDTH = 160      # px; frames are downscaled and every other frame kept, so a GIF stays a few hundred KB
GIF_FRAME_STEP = 2
EXP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "exp")


def test(cfg: Config, given: set) -> dict:
    ckpt = load_checkpoint(cfg.run.resume)
    cfg = merge_checkpoint_config(cfg, given, ckpt["config"], cfg.run.resume)
    if ("run", "suffix") not in given:
        cfg.run.suffix = ckpt["config"]["run"]["suffix"]
    info = env_info(cfg.run.env)
    from agents.driver import check_action_space
    check_action_space(cfg, info)
    runner = EvalRunner(cfg, info, seed_offset=20_000, render=cfg.run.record)
    weights = ckpt["learner"][algorithm(cfg).weights_key]
    try:
        runner.policy.load(weights)
    except RuntimeError as e:
        raise UsageError(f"checkpoint {cfg.run.resume!r} does not fit this network: "
                         f"{str(e).splitlines()[0][:160]}") from None
    returns, best_frames, current = [], [], []

    def on_frame(_, rgb):
        if len(current) % GIF_FRAME_STEP == 0:
            current.append(_downscale(rgb))
        else:
            current.append(None)

    for _ in range(cfg.run.test_episodes):
        current.clear()
        try:
            r = runner.play(weights, 1, on_frame=on_frame if cfg.run.record else None)[0]
        except DependencyNotInstalled as e:   # rendering for --record needs the env's optional renderer
            raise UsageError(f"--record cannot render {cfg.run.env}: {str(e).strip()}") from None
        if cfg.run.record and (not returns or r > max(returns)):
            best_frames = [f for f in current if f is not None]
        returns.append(r)
    result = {"episodes": len(returns), "mean": float(np.mean(returns)), "std": float(np.std(returns)),
              "min": float(np.min(returns)), "max": float(np.max(returns))}
    if cfg.run.record and best_frames:
        result["gif"] = write_gif(best_frames, os.path.join(
            EXP_DIR, "gifs", f"{cfg.run.env_dir}_{cfg.alg.alg}_{cfg.run.suffix}.gif"))
    rundir = os.path.join(cfg.run.logdir, cfg.run.env_dir, cfg.run.suffix)
    if os.path.isdir(rundir):   # beside the run's summary.json, for exp/table.py
        with open(os.path.join(rundir, "test.json"), "w") as f:
            json.dump({**result, "gif": result.get("gif"), "checkpoint": cfg.run.resume}, f, indent=2)
    return result


def _downscale(rgb: np.ndarray):
    from PIL import Image

    img = Image.fromarray(np.asarray(rgb))
    if img.width > GIF_WIDTH:
        img = img.resize((GIF_WIDTH, int(img.height * GIF_WIDTH / img.width)))
    return img.convert("P", palette=Image.ADAPTIVE, colors=64)


def write_gif(images: list, path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0, optimize=True)
    return path


def print_result(result: dict) -> None:
    print(f"{result['episodes']} episodes: mean {result['mean']:.2f} std {result['std']:.2f} "
          f"min {result['min']:.2f} max {result['max']:.2f}" + (f" | gif {result['gif']}" if "gif" in result else ""))
    print(json.dumps({k: result[k] for k in ("episodes", "mean", "std", "min", "max")}))
