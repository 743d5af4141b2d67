"""A whole population run, as an analyst runs it: ``creator_economy`` (10k parametric users × 30
days × 3 arms, 300 creators) with Parquet logs and a checkpoint every day, timed end to end.

Prints the wall time of the run, and of the run plus its report (what `recoworld run` does), against
the one-minute target, and the run's throughput in user-steps (slates served) per second as a
ratio to CartPole-v1 steps/s measured in this process.

    python benchmarks/population_run.py [--scenario creator_economy] [--engine local|ray] [--shards 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gymnasium as gym

from recoworld.evaluation import RunLogs
from recoworld.evaluation.report import write_report
from recoworld.runs.logs import read_table
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario

TARGET_SECONDS = 60.0


def cartpole_steps_per_second(seconds: float = 2.0) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        n += 1
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="creator_economy")
    parser.add_argument("--engine", default="local")
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, {"run": {"engine": args.engine, "shards": args.shards}})
    # compile (or load the cached kernels) outside the timed run
    PopulationRun(load_scenario(scenario, {"users": {"n_users": 300}, "env": {"horizon_days": 2}})).run()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        result = PopulationRun(scenario, output=out).run()
        wall = time.perf_counter() - start
        write_report([RunLogs.load(out)], out / "report")
        with_report = time.perf_counter() - start
        slates = sum(int(r.totals["slates"].sum()) for r in result.arms.values())
        rows = len(read_table(out, "impressions", ["day"]))
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    cartpole = cartpole_steps_per_second()
    arms = len(result.arms)
    print(f"{args.scenario}: {scenario.users.n_users:,} users × {scenario.env.horizon_days} days × {arms} arms, "
          f"{scenario.creators.count} creators, engine {args.engine}, {args.shards} shard(s)")
    print(f"wall time, run         {wall:8.1f} s   ({wall / TARGET_SECONDS:.2f}× the {TARGET_SECONDS:.0f} s target)")
    print(f"wall time, run+report  {with_report:8.1f} s   ({with_report / TARGET_SECONDS:.2f}× the target)")
    print(f"slates served          {slates:8,d}      impressions logged {rows:,} ({size:.0f} MB on disk)")
    print(f"user-steps/s           {slates / wall:8,.0f}      CartPole-v1 steps/s {cartpole:,.0f}")
    print(f"ratio to CartPole      {slates / wall / cartpole:8.2f}×")


if __name__ == "__main__":
    main()
