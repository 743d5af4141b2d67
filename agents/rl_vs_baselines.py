"""Train an RL recommender for retention and compare it with the baselines on held-out users.

    python -m recoworld.agents.rl_vs_baselines --timesteps 200000 --algo ppo --users 200 --out models/ppo_retention.zip

The RL policy and every baseline run in the same env config (``retention_config()`` unless
``--set`` overrides it) on the same held-out users (seeds ``seed_offset + i``, disjoint from the
training and validation seeds; see ``recoworld.agents.rl``), and are scored on the same metric:
mean days active per user, with its standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recoworld.agents.rl.envs import HELD_OUT_OFFSET, retention_config
from recoworld.agents.rl.evaluation import evaluate
from recoworld.agents.rl.training import save, train
from recoworld.progress import reporting, stage
from recoworld.scenario import deep_merge

BASELINES: tuple[str, ...] = ("random", "popular", "greedy", "mmr", "linucb")


def compare(
    timesteps: int = 200_000,
    algo: str = "ppo",
    users: int = 200,
    out: str | Path | None = None,
    scenario: str = "quickstart",
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    baselines: Sequence[str] = BASELINES,
    seed_offset: int = HELD_OUT_OFFSET,
    eval_freq: int = 25_000,
    eval_episodes: int = 50,
    progress: bool = True,
    train_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``algo`` for retention, then evaluate it and ``baselines`` on ``users`` held-out users.

    Returns ``{"config", "train": {...}, "results": [evaluate() dicts, RL policy first]}``; with
    ``out`` the model is saved there as an SB3 zip. ``train_kwargs`` go to ``recoworld.agents.rl.train``
    (``n_envs``, ``hyperparams``, ``policy_kwargs`` ...). ``progress`` prints a line after each step; the
    stages (training, evaluating each policy) show under :func:`recoworld.progress.reporting`.
    """
    from recoworld.agents import make_recommender
    from recoworld.agents.rl.training import _algo_class

    _algo_class(algo)  # an unusable algo (dqn) fails here, before anything runs
    config = deep_merge(retention_config(), overrides or {})

    def say(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    say(f"training {algo} for {timesteps:,} steps on {scenario} (env {config.get('env', {})}) ...")
    start = time.perf_counter()
    model = train(
        algo, timesteps, scenario=scenario, config=config, seed=seed, eval_freq=eval_freq, eval_episodes=eval_episodes,
        **(train_kwargs or {}),
    )
    train_seconds = time.perf_counter() - start
    info = dict(getattr(model, "recoworld_info", {}))
    info["wall_seconds"] = train_seconds
    say(f"trained in {train_seconds:.0f} s" + (f" (best validation step {info['best_step']:,})" if info.get("best_step") else ""))
    if out is not None:
        info["saved_to"] = str(save(model, out))
        say(f"model saved to {info['saved_to']}")
    results = []
    policies: list[tuple[str, Any]] = [(algo, model)] + [(name, make_recommender(name, seed=seed)) for name in baselines]
    for label, policy in policies:
        start = time.perf_counter()
        with stage(f"evaluating {label}"):
            res = evaluate(policy, n_users=users, seed_offset=seed_offset, scenario=scenario, config=config)
        res["policy"] = label
        res["eval_seconds"] = time.perf_counter() - start
        results.append(res)
        say(f"evaluated {label} on {users} held-out users in {res['eval_seconds']:.1f} s")
    return {"config": config, "train": info, "results": results}


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: days active ± sem, reward ± sem, steps, clicks, churned share."""
    w = max([16, *(len(r["policy"]) for r in results)])
    head = f"{'policy':<{w}} {'days active':>15} {'episode reward':>17} {'steps':>8} {'clicks':>8} {'churned':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        days = f"{r['days_active_mean']:.2f} ± {r['days_active_sem']:.2f}"
        reward = f"{r['reward_mean']:.1f} ± {r['reward_sem']:.1f}"
        lines.append(
            f"{r['policy']:<{w}} {days:>15} {reward:>17} {r['steps_mean']:>8.1f} {r['clicks_mean']:>8.1f} {r['churned_share']:>8.1%}"
        )
    n = results[0]["n_users"] if results else 0
    lo, hi = results[0]["seeds"] if results else (0, 0)
    lines.append(f"(means ± standard errors over {n} held-out users, seeds {lo}..{hi - 1})")
    return "\n".join(lines)


def _json_ready(report: dict[str, Any]) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--algo", choices=["ppo", "a2c", "dqn"], default="ppo")
    parser.add_argument("--users", type=int, default=200, help="held-out users per policy")
    parser.add_argument("--out", type=Path, default=None, help="save the trained model here (SB3 zip)")
    parser.add_argument("--scenario", default="quickstart")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated registry names")
    parser.add_argument("--set", dest="set_", action="append", default=[], help="config override key.path=value")
    parser.add_argument("--json", type=Path, default=None, help="write the results (with per-user values) here")
    args = parser.parse_args(argv)
    from recoworld.scenario import parse_overrides

    try:
        with reporting():
            report = compare(
                args.timesteps, args.algo, args.users, args.out, args.scenario, parse_overrides(args.set_), args.seed,
                [b for b in args.baselines.split(",") if b], progress=False,
            )
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if report["train"].get("saved_to"):
        print(f"model saved to {report['train']['saved_to']}")
    print(format_table(report["results"]))
    if args.json is not None:
        args.json.write_text(json.dumps(_json_ready(report), indent=2) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
