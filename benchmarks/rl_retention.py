"""PPO trained for retention vs the baselines on held-out users, on the default decision.

Trains the slate policy of ``recoworld.agents.rl`` (one shared network scores every candidate,
Plackett-Luce slates) with the retention rewards on quickstart's default problem (100 candidates,
slates of 10; ``--candidates 20 --slate 5`` gives the former reduced problem), stepping 64 users
as one batch in the vector env (``PPO_VECTOR``), then serves the same held-out users (seeds
100_000..) with PPO and each baseline in the same config and prints mean days active ± sem,
episode reward, clicks and churn, plus PPO's per-user difference to each baseline (the users are
the same people, so differences are paired by user). Training throughput is printed as a ratio
to PPO on CartPole-v1 measured in the same process, and the load average is printed (the
machine may be shared). ``--seed`` sets the training seed (the held-out users stay the same). ``--precision bfloat16`` trains
the slate policy under CPU autocast (``SlatePolicy``'s ``precision``); ``--settings fast`` trains with ``PPO_FAST``
instead of ``PPO_VECTOR``; ``--set n_epochs=1`` (repeatable) overrides one of the settings' PPO hyperparameters and
``--lr-decay`` makes the learning rate fall linearly to 0.
``--curve-every N`` keeps the policy's weights every N training steps and scores each copy on the
same held-out users afterwards, printing days active against training wall time and the first
time PPO reached instruction_following's days active. The seconds spent in PPO's updates (the rest of the
training is rollouts, validation runs included) are printed beside the training throughput.

    python benchmarks/rl_retention.py [--timesteps 600000] [--users 500] [--out ppo_retention.zip] [--curve-every 50000]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from recoworld.agents.rl.evaluation import evaluate
from recoworld.agents.rl.training import PPO_DEFAULTS, PPO_SETTINGS as SETTINGS
from recoworld.agents.rl.policy import PRECISIONS, Snapshots
from recoworld.agents.rl_vs_baselines import compare, format_table

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


class UpdateSeconds(BaseCallback):
    """Sums the wall time of PPO's updates: from each rollout's end to the next rollout's start, or to the end of
    training."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds, self._rollout_end = 0.0, None

    def _on_rollout_end(self) -> None:
        self._rollout_end = time.perf_counter()

    def _on_rollout_start(self) -> None:
        if self._rollout_end is not None:
            self.seconds += time.perf_counter() - self._rollout_end
            self._rollout_end = None

    def _on_training_end(self) -> None:
        self._on_rollout_start()

    def _on_step(self) -> bool:
        return True


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    d = np.asarray(a) - np.asarray(b)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def learning_curve(snapshots: Snapshots, users: int, config: dict, target: float) -> list[dict[str, float]]:
    """Each kept copy of the weights scored on the held-out users (the trained model's own weights are
    put back afterwards); prints a row per copy and when days active first reached ``target``."""
    model, final = snapshots.model, copy.deepcopy(snapshots.model.policy.state_dict())
    rows = []
    print(f"{'steps':>9} {'train s':>8} {'days active':>15}")
    for steps, seconds, state in snapshots.snapshots:
        model.policy.load_state_dict(state)
        res = evaluate(model, n_users=users, config=config)
        rows.append({"steps": steps, "seconds": seconds, "days_active": res["days_active_mean"], "sem": res["days_active_sem"]})
        print(f"{steps:>9,} {seconds:>8.0f} {res['days_active_mean']:>8.2f} ± {res['days_active_sem']:.2f}", flush=True)
    model.policy.load_state_dict(final)
    reached = next((r for r in rows if r["days_active"] >= target), None)
    print(f"first reached instruction_following's {target:.2f} days active: "
          + (f"at {reached['steps']:,} steps, {reached['seconds']:.0f} s of training" if reached else "not within the run"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=600_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--slate", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="save the trained model here")
    parser.add_argument("--curve-every", type=int, default=0, help="score a copy of the weights every N steps")
    parser.add_argument("--json", type=Path, default=None, help="write every number (with per-user values) here")
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="vector",
                        help="PPO_VECTOR (the default) or PPO_FAST (one epoch in bfloat16, the learning rate decaying from 3e-3)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the slate policy's precision (SlatePolicy's policy_kwargs.precision; default: the settings')")
    parser.add_argument("--threads", type=int, default=1, help="threads torch uses while training (train's torch_threads)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a PPO hyperparameter over the settings', e.g. n_epochs=1 (repeatable; values read as JSON)")
    parser.add_argument("--lr-decay", action="store_true", help="the learning rate falls linearly to 0 (train's lr_decay)")
    args = parser.parse_args()

    overrides = {"env": {"num_candidates": args.candidates, "slate_size": args.slate}}
    snapshots = Snapshots(args.curve_every) if args.curve_every else None
    updates = UpdateSeconds()
    settings = SETTINGS[args.settings]
    train_kwargs = {**settings, "callbacks": [updates, *([snapshots] if snapshots else [])], "torch_threads": args.threads}
    if args.precision is not None:
        train_kwargs["policy_kwargs"] = {**settings["policy_kwargs"], "precision": args.precision}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set: '{item}' is not KEY=VALUE")
        try:
            train_kwargs["hyperparams"] = {**train_kwargs["hyperparams"], key: json.loads(value)}
        except json.JSONDecodeError:
            parser.error(f"--set: the value of '{item}' is not JSON (a number, true or false, or a quoted string)")
    if args.lr_decay:
        train_kwargs["lr_decay"] = True
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores)", flush=True)
    cartpole = cartpole_ppo_steps_per_second()
    report = compare(
        args.timesteps, "ppo", args.users, args.out, overrides=overrides, seed=args.seed, baselines=BASELINES,
        train_kwargs=train_kwargs,
    )
    report["load_average_end"] = os.getloadavg()[0]
    report["settings"] = {"name": args.settings, "set": args.set, "lr_decay": args.lr_decay, "precision": args.precision}
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
    print(f"updates: {updates.seconds:.0f} s of the {train['wall_seconds']:.0f} s of training "
          f"({100 * updates.seconds / train['wall_seconds']:.0f}%; the rest is rollouts and validation runs)")
    if snapshots is not None:
        print()
        target = next(r["days_active_mean"] for r in report["results"] if r["policy"] == "instruction_following")
        report["curve"] = learning_curve(snapshots, args.users, report["config"], target)
    print(f"load average at the end: {report['load_average_end']:.1f} (2 cores)")
    if args.json is not None:
        report["cartpole_ppo_steps_per_second"] = cartpole
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
