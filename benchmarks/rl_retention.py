"""PPO trained for retention vs the baselines on 500 held-out users (a longer run than the test's).

Trains the slate policy of ``recoworld.agents.rl`` with the retention rewards on quickstart with
20 candidates and slates of 5 (``retention_config()``), then serves the same held-out users
(seeds 100_000..) with PPO and each baseline in the same config and prints mean days active ± sem,
episode reward, clicks and churn, plus PPO's per-user difference to each baseline (the users are
the same people, so differences are paired by user). Training throughput is printed as a ratio
to PPO on CartPole-v1 measured in the same process. About 6 minutes on 2 cores at the defaults.

    python benchmarks/rl_retention.py [--timesteps 500000] [--users 500] [--out ppo_retention.zip]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from recoworld.agents.rl.training import PPO_DEFAULTS
from recoworld.agents.train import compare, format_table

BASELINES = ("random", "popular", "greedy", "mmr", "linucb", "instruction_following")


def cartpole_ppo_steps_per_second(timesteps: int = 20_480, n_envs: int = 8) -> float:
    """PPO (SB3's MlpPolicy, the same update settings) training steps/s on CartPole-v1."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
        model = PPO("MlpPolicy", env, seed=0, device="cpu", **PPO_DEFAULTS)
        start = time.perf_counter()
        model.learn(timesteps)
        return model.num_timesteps / (time.perf_counter() - start)
    finally:
        th.set_num_threads(threads)


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    d = np.asarray(a) - np.asarray(b)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=500_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="save the trained model here")
    parser.add_argument("--json", type=Path, default=None, help="write every number (with per-user values) here")
    args = parser.parse_args()

    cartpole = cartpole_ppo_steps_per_second()
    report = compare(args.timesteps, "ppo", args.users, args.out, seed=args.seed, baselines=BASELINES)
    train = report["train"]
    fps = train["timesteps"] / train["wall_seconds"]
    print()
    print(format_table(report["results"]))
    print()
    ppo = report["results"][0]
    for other in report["results"][1:]:
        mean, sem = paired(ppo["per_user"]["days_active"], other["per_user"]["days_active"])
        print(f"ppo - {other['policy']:<24s} {mean:+6.2f} ± {sem:.2f} days active (paired by user)")
    print()
    best = f", best validation at step {train['best_step']:,}" if train.get("best_step") else ""
    print(f"training: {train['timesteps']:,} steps in {train['wall_seconds']:.0f} s{best}")
    print(f"PPO on CartPole-v1              {cartpole:10,.0f} steps/s")
    print(f"PPO on RecoWorld-v0 (retention) {fps:10,.0f} steps/s   ratio {fps / cartpole:6.3f}x")
    if args.json is not None:
        report["cartpole_ppo_steps_per_second"] = cartpole
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
