"""A language-model recommender tuned by GRPO in the world, measured on held-out users.

Trains SmolLM2-135M-Instruct (LoRA, top layers) with TRL's GRPO on decision states of training users
(seeds below 100,000) of the instruction_following scenario, then scores, on decision states of held-out
users (seeds from 100,000), the session return that follows each decision and the reading of the words
(agreement with the rule parser's plan) for: the tuned model, the same model untuned, the rule parser
(instruction_following's reading) and no reading at all (the greedy ranker alone). Paired bootstrap
intervals over held-out decisions; the learning curve (mean rollout return per update); wall time and
peak memory.

Then whole held-out episodes (``--episode-users`` users of task instruction-following-v1, its own held-out
seeds, served by the task's code): days active, return and compliance per user for each tuned agent, the
untuned model, instruction_following, greedy and PPO trained on the retention reward (``--ppo``, the
leaderboard's retention-v1 model by default), with paired bootstrap intervals of tuned minus each other.
``--agents FOLDER ...`` adds agents trained earlier (no training when ``--seeds`` is empty).

Resumable: ``--out/results.json`` is rewritten after every stage (the held-out decisions, each policy's
episodes). Started again with the same ``--out`` and the same arguments, the benchmark takes from it what was
already measured, and reuses an agent folder of ``--out`` whose ``agent.json`` records the same training
configuration instead of training it again; with other arguments it measures everything again.

Usage: python benchmarks/agent_rl.py [--updates 12 --held-out 60 --seeds 0 1 --episode-users 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import numpy as np  # noqa: E402

from recoworld.agents.language.agent import LanguageAgent, read_settings  # noqa: E402
from recoworld.agents.language.plan import Plan, rules_plan  # noqa: E402
from recoworld.agents.language.rollouts import decision_states, group_returns  # noqa: E402
from recoworld.agents.language.training import AgentTrainConfig, train_agent  # noqa: E402
from recoworld.stats import mean_interval  # noqa: E402
from recoworld.tasks import get_task  # noqa: E402
from recoworld.tasks.evaluate import serve  # noqa: E402
from recoworld.tasks.policies import resolve_policy  # noqa: E402
from recoworld.tasks.worlds import data_home  # noqa: E402

HELD_OUT = 100_000


def plans_of(agent: LanguageAgent | None, states, rule: bool = False) -> list[Plan]:
    if rule:
        return [rules_plan(s.words, s.topics) for s in states]
    if agent is None:
        return [Plan() for _ in states]
    return [agent.read(s.words, s.topics) for s in states]


def episodes(policies: dict[str, str], users: int, done: dict[str, dict[str, list[float]]],
             save: Callable[[dict[str, dict[str, list[float]]]], None]) -> dict[str, dict[str, list[float]]]:
    """Whole held-out episodes of instruction-following-v1 per policy (name -> POLICY), paired by user; a policy
    in ``done`` (measured earlier with the same settings) is not served again, and ``save`` gets every policy's
    episodes as soon as they are measured."""
    task = get_task("instruction-following-v1")
    seeds = range(task.held_out_seeds.start, task.held_out_seeds.start + users)
    per: dict[str, dict[str, np.ndarray]] = {}
    for name, spec in policies.items():
        if name in done:
            per[name] = {k: np.array(v, dtype=float) for k, v in done[name].items()}
            print(f"  {name}: measured earlier (results.json)", flush=True)
            continue
        t0 = time.perf_counter()
        totals, _ = serve(resolve_policy(spec, task), task, seeds)
        n = totals["compliance_n"].to_numpy(dtype=float)
        per[name] = {"days active": totals["days_active"].to_numpy(dtype=float), "return": totals["reward"].to_numpy(dtype=float),
                     "compliance": np.where(n > 0, totals["compliance_sum"].to_numpy(dtype=float) / np.maximum(n, 1), np.nan)}
        save({k: {m: v.tolist() for m, v in metrics.items()} for k, metrics in per.items()})
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\nwhole held-out episodes: {users} users of {task.id} (seeds {seeds.start}..{seeds.stop - 1})")
    print(f"{'policy':<24} {'days active':>12} {'return':>9} {'compliance':>11}")
    for name, m in per.items():
        print(f"{name:<24} {m['days active'].mean():12.2f} {m['return'].mean():9.1f} {np.nanmean(m['compliance']):11.3f}")
    rng = np.random.default_rng(0)
    for name in [k for k in per if k.startswith("tuned")]:
        for other in [k for k in per if k != name]:
            cells = []
            for metric in ("days active", "return", "compliance"):
                d = per[name][metric] - per[other][metric]
                d = d[~np.isnan(d)]
                lo, hi = mean_interval(d, rng)
                cells.append(f"{metric} {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]")
            print(f"{name} - {other}: " + "; ".join(cells))
    return {name: {k: v.tolist() for k, v in m.items()} for name, m in per.items()}


class Results:
    """``--out/results.json``: what this run measured so far, rewritten after every stage, and what an earlier run
    with the same settings measured (``earlier``: taken instead of measuring it again)."""

    def __init__(self, out: str, settings: dict[str, Any]) -> None:
        self.path = Path(out) / "results.json"
        self.data: dict[str, Any] = {"settings": settings, "returns": {}, "curves": {}, "episodes": {}}
        self.earlier: dict[str, Any] = {"returns": {}, "curves": {}, "episodes": {}}
        if self.path.is_file():
            old = json.loads(self.path.read_text())
            if old.get("settings") == settings:
                self.earlier = {k: old.get(k, {}) for k in self.earlier}
                print(f"{self.path}: an earlier run with the same settings; what it measured is taken, not measured again")
            else:
                print(f"{self.path}: an earlier run with other settings; it is measured again and replaced")

    def save(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name("results.json.tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


def trained(folder: str, config: AgentTrainConfig) -> dict[str, Any]:
    """The training summary of the agent in ``folder``: trained now, or earlier with the same configuration."""
    if os.path.isfile(f"{folder}/agent.json"):
        summary = read_settings(folder).trained or {}
        if summary.get("config") == config.model_dump():
            print(f"{folder}: trained earlier with the same configuration; reused")
            return summary
    return train_agent(folder, config)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=12)
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--held-out", type=int, default=60)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--sft", type=int, default=0)
    ap.add_argument("--out", default="agent-rl-out")
    ap.add_argument("--agents", nargs="*", default=[], help="agent folders trained earlier, scored alongside")
    ap.add_argument("--episode-users", type=int, default=20)
    ap.add_argument("--ppo", default=str(data_home() / "leaderboard-models" / "ppo-retention-v1-300000.zip"))
    args = ap.parse_args()
    names = [f"tuned[{folder.rstrip('/').split('/')[-1]}]" for folder in args.agents]
    if len(set(names)) < len(names):
        raise SystemExit(f"--agents: two agents would share a name ({', '.join(names)}); give the folders distinct last names")
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    results = Results(args.out, {**{k: v for k, v in vars(args).items() if k not in ("out", "agents")},
                                 "agents": [os.path.abspath(a) for a in args.agents]})
    held = decision_states("instruction_following", range(HELD_OUT, HELD_OUT + args.held_out * 3))[: args.held_out]
    untuned = LanguageAgent()
    readings: dict[str, list[Plan]] = {"rules": plans_of(None, held, rule=True), "nothing": plans_of(None, held),
                                        "untuned": plans_of(untuned, held)}
    curves = {}
    for seed in args.seeds:
        folder = f"{args.out}/seed{seed}"
        summary = trained(folder, AgentTrainConfig(prompts=args.prompts, updates=args.updates, group=args.group,
                                                   sft_examples=args.sft, seed=seed))
        curves[str(seed)] = summary["curve"]
        readings[f"tuned{seed}"] = plans_of(LanguageAgent(folder=folder), held)
    results.save("curves", curves)
    tuned = {f"tuned{seed}": f"{args.out}/seed{seed}" for seed in args.seeds}
    for name, folder in zip(names, args.agents):
        tuned[name] = folder
        readings[name] = plans_of(LanguageAgent(folder=folder), held)
    returns: dict[str, list[float]] = {}
    for name, plans in readings.items():
        returns[name] = results.earlier["returns"].get(name) or [group_returns(s, [p], untuned.policy)[0] for s, p in zip(held, plans)]
    results.save("returns", returns)
    rules = readings["rules"]
    rng = np.random.default_rng(0)
    print(f"held-out decisions: {len(held)} (users from seed {HELD_OUT}); return = the scenario's reward until the session ends")
    print(f"{'policy':<10} {'return':>8} {'reads more':>11} {'reads less':>11}")
    for name, plans in readings.items():
        more = np.mean([p.more == r.more for p, r in zip(plans, rules)])
        less = np.mean([p.less == r.less for p, r in zip(plans, rules)])
        print(f"{name:<10} {np.mean(returns[name]):8.2f} {more:11.2f} {less:11.2f}")
    for name in [k for k in readings if k.startswith("tuned")]:
        for other in ("untuned", "rules", "nothing"):
            d = np.array(returns[name]) - np.array(returns[other])
            lo, hi = mean_interval(d, rng)
            print(f"{name} - {other}: {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] (paired, 95%)")
    for seed, curve in curves.items():
        print(f"curve seed {seed} (mean rollout return per update): " + " ".join(f"{c:.2f}" for c in curve))
    if args.episode_users:
        others = {"untuned": "language_agent", "instruction_following": "instruction_following", "greedy": "greedy"}
        if os.path.isfile(args.ppo):
            others["ppo (retention reward)"] = args.ppo
        else:
            print(f"no PPO model at {args.ppo} (python benchmarks/leaderboard.py trains it): PPO left out")
        episodes({**tuned, **others}, args.episode_users, results.earlier["episodes"], lambda per: results.save("episodes", per))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"wall {time.perf_counter() - start:.0f} s, peak RSS {peak:.2f} GiB, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
