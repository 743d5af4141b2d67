"""Regenerate the leaderboard's result files: every shipped policy on every task it can act in.

For each task, each shipped recommender is scored with ``recoworld.tasks.evaluate_task`` (what
``recoworld evaluate`` runs) and its result written to ``leaderboard/<task>/<policy>.json``; the wall
time of each evaluation is printed (and kept in the file). PPO is trained with the project's PPO code
(``recoworld.agents.rl.train``, the slate policy with ``PPO_FAST``'s settings, or ``PPO_VECTOR``'s with
``--ppo-settings vector``, validation on seeds 50,000.. every 25,000 steps, best checkpoint kept) on the
training seeds of each retention-type task (retention, creator economy, ML-100K) with ``--ppo-timesteps``
steps; the zips go to ``--models`` (outside the repository; reused when present). LERL runs its
heuristic planner over the task's PPO model. The retention model also acts in instruction following
(same slates, 10 of 100). ML-100K needs the user's copy of the data (``python benchmarks/ml100k.py``);
without it that task is listed as missing.
A tuned language agent (``--agent FOLDER``, from ``recoworld train-agent``) is scored on the first
``--agent-users`` held-out users of instruction following, next to the rule parser on the same users;
a full score of it takes hours on a CPU, so it is listed with those figures rather than ranked.
Then ``python -m recoworld.tasks.leaderboard`` writes the page.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/leaderboard.py [--tasks retention-v1,...] \
        [--ppo-settings fast] [--ppo-timesteps 600000] [--agent FOLDER]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from recoworld.progress import reporting
from recoworld.tasks.definitions import TASKS, Task
from recoworld.tasks.evaluate import evaluate_task
from recoworld.tasks.leaderboard import Meta, Missing
from recoworld.tasks.worlds import data_home, ml100k_folder, task_world

RECOMMENDERS = ("random", "popular", "greedy", "mmr", "egreedy", "linucb", "mf", "instruction_following", "toolrec", "sasrec")
PPO_TASKS = ("retention-v1", "creator-economy-v1", "ml100k-v2")  # retention-type: days active in the metric
PPO_BORROWED = {"instruction-following-v1": "retention-v1"}  # the same slates (10 of 100): the retention model acts there
AGENT_TASK = "instruction-following-v1"  # where the tuned language agent acts (it reads the users' words)


def portable(value):
    """A path under the data home written as ``$RECOWORLD_DATA/...`` (result files name no machine's folders)."""
    home = str(data_home())
    return "$RECOWORLD_DATA" + value[len(home):] if isinstance(value, str) and value.startswith(home + os.sep) else value


def agent_reason(folder: Path | None, users: int, data: Path | None) -> str:
    """Why the tuned language agent has no official result, with what it scores on the first ``users`` held-out
    users next to the rule parser on the same users (a full score costs too long on this CPU)."""
    if folder is None:
        return "no tuned agent folder given (python benchmarks/leaderboard.py --agent FOLDER, from recoworld train-agent)"
    task = TASKS[AGENT_TASK]
    seeds = range(task.held_out_seeds.start, task.held_out_seeds.start + users)
    rules = evaluate_task("instruction_following", task, seeds=seeds, data=data)
    agent = evaluate_task(str(folder), task, seeds=seeds, data=data)
    per_user = agent.wall_seconds / users
    return (f"scored on the first {users} of {task.held_out_users} held-out users only ({per_user:.1f} s per user on "
            f"this CPU, so about {per_user * task.held_out_users / 3600:.1f} h for all): compliance "
            f"{agent.score.value:.3f} [{agent.score.low:.3f}, {agent.score.high:.3f}] against instruction_following's "
            f"{rules.score.value:.3f} [{rules.score.low:.3f}, {rules.score.high:.3f}] on the same users; days active "
            f"{agent.secondary['days_active']:.2f} against {rules.secondary['days_active']:.2f} (how it was tuned: "
            f"docs/figures/agent-rl.md)")


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, no GPU, one thread per process"


PPO_NOTES = {  # --ppo-settings (recoworld.agents.rl.training.PPO_SETTINGS): what the note says of each
    "fast": "PPO_FAST settings: 64 users per batch, one epoch in bfloat16, the learning rate decaying from 3e-3",
    "vector": "PPO_VECTOR settings: 64 users per batch, three epochs",
}


def ppo_model(task: Task, models: Path, timesteps: int, data: Path | None, settings: str = "fast") -> tuple[Path, str]:
    """The task's PPO zip (trained now unless present) and a note saying how it was trained."""
    from recoworld.agents.rl.training import PPO_SETTINGS, save, train

    path = models / f"ppo-{settings}-{task.id}-{timesteps}.zip"
    note = (f"PPO (slate policy, {PPO_NOTES[settings]}) trained {timesteps:,} steps on {task.id}'s "
            f"training seeds with its reward, best validation checkpoint kept; training seed 0")
    if not path.is_file():
        scenario, config = task_world(task, data)
        start = time.perf_counter()
        model = train("ppo", timesteps, scenario=scenario, config=config, seed=0, eval_freq=25_000, eval_episodes=50,
                      **PPO_SETTINGS[settings])
        save(model, path)
        print(f"trained PPO on {task.id}: {timesteps:,} steps in {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    return path, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--policies", default=",".join([*RECOMMENDERS, "ppo", "lerl"]))
    parser.add_argument("--ppo-settings", choices=sorted(PPO_NOTES), default="fast")
    parser.add_argument("--ppo-timesteps", type=int, default=600_000)
    parser.add_argument("--results", type=Path, default=Path("leaderboard"))
    parser.add_argument("--models", type=Path, default=data_home() / "leaderboard-models")
    parser.add_argument("--data", type=Path, default=None, help="MovieLens-100K folder (default $RECOWORLD_DATA/ml-100k)")
    parser.add_argument("--agent", type=Path, default=None, help="a tuned language agent's folder (recoworld train-agent)")
    parser.add_argument("--agent-users", type=int, default=20, help="held-out users the language agent is scored on")
    args = parser.parse_args()
    tasks = [TASKS[t] for t in args.tasks.split(",") if t]
    wanted = [p for p in args.policies.split(",") if p]
    meta_path = args.results / "meta.json"
    old = Meta.model_validate_json(meta_path.read_text()) if meta_path.is_file() else Meta()
    missing = [m for m in old.missing if m.task not in {t.id for t in tasks}]
    load_start = os.getloadavg()[0]
    print(f"load average at start: {load_start:.1f} ({machine()})", flush=True)
    start = time.perf_counter()
    walls: list[tuple[str, str, float]] = []
    with reporting():
        for task in tasks:
            if task.needs_data:
                try:
                    ml100k_folder(args.data)
                except FileNotFoundError as exc:
                    missing += [Missing(task=task.id, policy=p, reason=str(exc)) for p in wanted]
                    print(f"skipping {task.id}: {exc}", flush=True)
                    continue
            runs: list[tuple[str, str, dict, str]] = [(p, p, {}, "") for p in wanted if p in RECOMMENDERS]
            source = task.id if task.id in PPO_TASKS else PPO_BORROWED.get(task.id)
            if source is not None and ({"ppo", "lerl"} & set(wanted)):
                zip_path, note = ppo_model(TASKS[source], args.models, args.ppo_timesteps, args.data, args.ppo_settings)
                if source != task.id:
                    note = f"the retention-v1 model, acting here unchanged: {note}"
                if "ppo" in wanted:
                    runs.append(("ppo", str(zip_path), {}, note))
                if "lerl" in wanted:
                    runs.append(("lerl", "lerl", {"policy_path": str(zip_path)},
                                 f"heuristic planner over the PPO model below it ({note})"))
            elif source is None:
                from recoworld.scenario import load_scenario

                env = load_scenario(*task_world(task, args.data)).env
                reason = (f"no PPO model: PPO is trained on the retention-type tasks ({', '.join(PPO_TASKS)}), and this "
                          f"task's slates ({env.slate_size} of {env.num_candidates} candidates) fit none of those models")
                missing += [Missing(task=task.id, policy=p, reason=reason if p == "ppo" else
                                    "needs a low-level PPO model that fits the task (see ppo)") for p in ("ppo", "lerl") if p in wanted]
            if task.id == AGENT_TASK:
                missing.append(Missing(task=task.id, policy="language_agent (RL-tuned)",
                                       reason=agent_reason(args.agent, args.agent_users, args.data)))
            for name, spec, params, note in runs:
                result = evaluate_task(spec, task, params, data=args.data)
                result.note = note
                result.policy_name = name  # the entry's name on the page (an SB3 zip's stem says which model; policy keeps the path)
                result.policy, result.params = portable(result.policy), {k: portable(v) for k, v in result.params.items()}
                result.write(args.results / task.id / f"{name}.json")
                walls.append((task.id, name, result.wall_seconds))
                print(f"{task.id:26s} {name:24s} {result.score.value:8.3f} [{result.score.low:.3f}, {result.score.high:.3f}] "
                      f"normalised {result.normalised.value:7.1f}   {result.wall_seconds:7.1f} s", flush=True)
    total = time.perf_counter() - start
    load_end = os.getloadavg()[0]
    meta = Meta(machine=machine(), load_average=[round(load_start, 1), round(load_end, 1)], total_seconds=round(total),
                command=f"python benchmarks/leaderboard.py --ppo-settings {args.ppo_settings} "
                f"--ppo-timesteps {args.ppo_timesteps}"
                + (f" --agent AGENT --agent-users {args.agent_users}" if args.agent else ""), missing=missing)
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(meta.model_dump_json(indent=2) + "\n")
    print("\nwall time per evaluation (s):")
    for task_id, name, wall in walls:
        print(f"  {task_id:26s} {name:24s} {wall:7.1f}")
    print(f"total {total:.0f} s; load average at the end: {load_end:.1f}")


if __name__ == "__main__":
    main()
