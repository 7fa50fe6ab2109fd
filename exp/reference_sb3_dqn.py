"""The reference itself, on more seeds: Stable-Baselines3's DQN with RL Baselines3 Zoo's tuned hyperparameters
(`hyperparams/dqn.yml`), the runs behind the Zoo's one-run figures that the classic-control presets are measured
against. Not a dependency of the trainer; it needs `pip install stable-baselines3` (with torch installed first,
as for the trainer).

    python -m exp.reference_sb3_dqn MountainCar-v0 --seeds 1 2 3 4 5

Each seed trains for the Zoo's budget, then plays 30 test games deterministically (greedy), as
bench/learning.py tests our final checkpoints. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

# RL Baselines3 Zoo, hyperparams/dqn.yml (net_arch [256, 256] throughout)
ZOO = {
    "CartPole-v1": dict(n_timesteps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                        learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                        gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04),
    "Acrobot-v1": dict(n_timesteps=100_000, learning_rate=6.3e-4, batch_size=128, buffer_size=50_000,
                       learning_starts=0, gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                       exploration_fraction=0.12, exploration_final_eps=0.1),
    "MountainCar-v0": dict(n_timesteps=120_000, learning_rate=4e-3, batch_size=128, buffer_size=10_000,
                           learning_starts=1000, gamma=0.98, target_update_interval=600, train_freq=16,
                           gradient_steps=8, exploration_fraction=0.2, exploration_final_eps=0.07),
}


def run(env_id: str, seed: int, test_games: int = 30) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN

    torch.set_num_threads(1)
    hp = dict(ZOO[env_id])
    steps = hp.pop("n_timesteps")
    env = gym.make(env_id)
    t0 = time.monotonic()
    model = DQN("MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256]), seed=seed, verbose=0, **hp)
    model.learn(total_timesteps=steps)
    returns = []
    for k in range(test_games):
        obs, _ = env.reset(seed=10_000 + k)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return {"seed": seed, "test_mean": round(float(np.mean(returns)), 1), "test_std": round(float(np.std(returns)), 1),
            "env_steps": steps, "wall_s": round(time.monotonic() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("env", choices=sorted(ZOO))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = p.parse_args()
    rows = []
    for seed in args.seeds:
        rows.append(run(args.env, seed))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"env": args.env, "implementation": "stable-baselines3 DQN, RL Zoo hyperparams/dqn.yml",
                      "test_means": [r["test_mean"] for r in rows], "seeds": args.seeds}))


if __name__ == "__main__":
    main()
