"""RecoWorld-v0 throughput as ratios to CartPole-v1 measured in the same process.

Single env: steps/s of gym.make("RecoWorld-v0") with 10k items, 100 candidates, slate 10, random actions.
Batched: user-steps/s of the shared batched world step over 4,096 users, the code path the
population runner and the env both use. Candidates are a uniform random draw, so serving the
first K of them is a random policy at no policy cost: the figure is the world's own speed.

    python benchmarks/env_throughput.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import recoworld  # noqa: F401  (registers RecoWorld-v0)
from recoworld.scenario import load_scenario
from recoworld.world.simulation import Simulation

CONFIG = {"catalog": {"synthetic": {"n_items": 10_000}}, "env": {"num_candidates": 100, "slate_size": 10}}


def env_steps_per_second(env: gym.Env, seconds: float) -> float:
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.step(actions[-1])  # compile (or load the cached kernels) outside the timed loop
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(actions[n % 1000])
        n += 1
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


def batched_user_steps_per_second(n_users: int, seconds: float) -> float:
    scenario = load_scenario("quickstart", {**CONFIG, "env": {**CONFIG["env"], "horizon_days": 10_000, "churn_window_days": 10_000}})
    sim = Simulation.sample(scenario, n_users, np.random.default_rng(0))
    k = scenario.env.slate_size
    sim.step(slice(None), sim.retrieve(slice(None))[:, :k])  # compile outside the timed loop
    user_steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sim.step(slice(None), sim.candidates[:, :k])  # the step also draws the next candidates
        user_steps += n_users
    return user_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=4096)
    args = parser.parse_args()
    cartpole = env_steps_per_second(gym.make("CartPole-v1"), args.seconds)
    single = env_steps_per_second(gym.make("RecoWorld-v0", config=CONFIG), args.seconds)
    batched = batched_user_steps_per_second(args.users, args.seconds)
    print(f"CartPole-v1 (gym.make)          {cartpole:12,.0f} steps/s")
    print(f"RecoWorld-v0 (gym.make)         {single:12,.0f} steps/s       ratio {single / cartpole:6.3f}x  (target >= 0.25x)")
    print(f"batched world step, {args.users} users {batched:12,.0f} user-steps/s  ratio {batched / cartpole:6.3f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
