"""Off-policy estimates against on-policy values, in the simulator where both are known.

Quickstart users in a copies run (the same users and first contexts in every arm): stochastic logging
arms (random, ε-greedy with ε = 0.5) log their propensities, and greedy and MMR are logged as targets
that never serve there; greedy and MMR also run as arms, which gives their on-policy value on the
same first slates. Prints IPS, SNIPS and DR estimates of clicks per first slate with user-bootstrap
95% intervals (``recoworld.evaluation.ope.ope_table``) beside the on-policy value.

    python benchmarks/ope.py [--users 3000] [--seed 11]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from recoworld.evaluation import RunLogs
from recoworld.evaluation.ope import ope_table
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario

ARMS = {"random": "random", "egreedy": "ε-greedy (ε = 0.5)"}
TARGETS = ("greedy", "mmr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    scenario = load_scenario("quickstart", {
        "seed": args.seed, "users": {"n_users": args.users},
        "env": {"horizon_days": 1, "num_candidates": 20, "slate_size": 5},
        "recommenders": [{"name": "random"}, {"name": "egreedy", "params": {"epsilon": 0.5}}, {"name": "greedy"}, {"name": "mmr"}],
        "run": {"ope_targets": [{"name": t} for t in TARGETS]},
    })
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        PopulationRun(scenario, output=Path(tmp) / "run").run()
        table = ope_table(RunLogs.load(Path(tmp) / "run"), scope="first", seed=1)
    assert table is not None
    print(f"{args.users:,} users, seed {args.seed}, first slates; {time.perf_counter() - start:.0f} s\n")
    print("| logging arm | target | IPS | SNIPS | DR | on-policy |\n| --- | --- | --- | --- | --- | --- |")
    for target in TARGETS:
        for arm, label in ARMS.items():
            rows = table[(table["arm"] == arm) & (table["target"] == target)].set_index("estimator")
            cells = [f"{r.value:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f})" for r in (rows.loc[e] for e in ("IPS", "SNIPS", "DR"))]
            print(f"| {label} | {target} | {' | '.join(cells)} | {rows['on_policy'].iloc[0]:.3f} |")


if __name__ == "__main__":
    main()
