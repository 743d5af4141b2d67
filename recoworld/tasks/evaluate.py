"""Scoring a policy on a task: the held-out users only, the task metric with a bootstrap interval, the
secondary metrics, and the normalised score (random 0, the task's reference 100), as a
:class:`TaskResult` that is written as JSON with the versions, seeds and settings.

Episode tasks serve each held-out user's life in RecoWorld-v0 (``recoworld.agents.rl.evaluation``:
recommenders one user after another, carrying what they learn online; SB3 models batched);
population tasks run the held-out population (``recoworld.runs.runner.run_population``). Random and
the reference are scored on the same users in the same process (kept for the process's later calls).
The same policy, task and seeds give the same result, digit for digit (wall times aside).
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.evaluation import headline as H
from recoworld.stats import percentile_interval, resampled_means, resampled_sums
from recoworld.tasks.definitions import HELD_OUT_START, METRIC_TEXT, TRAINING, VALIDATION, Task, get_task
from recoworld.tasks.policies import Policy, PolicyError, resolve_policy
from recoworld.tasks.worlds import task_world

COLUMNS = ("days_active", "clicks", "reviewed", "compliance_sum", "compliance_n", "churned", "reward", "steps", "sessions")
FROM_POPULATION = {"clicks": "click", "steps": "slates"}  # a population run's names for the same totals
LEVEL = 0.95


class Interval(BaseModel):
    """A value with its bootstrap interval."""

    value: float
    low: float
    high: float


class TaskResult(BaseModel):
    """One policy on one task: what ``recoworld evaluate`` prints and writes."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="Task id, e.g. retention-v1.")
    gym_id: str
    fingerprint: str = Field(description="The task definition's fingerprint (recoworld.tasks.definitions).")
    policy: str = Field(description="POLICY as given.")
    policy_kind: str
    policy_name: str
    params: dict[str, Any] = Field(default_factory=dict)
    metric: str
    metric_text: str
    score: Interval = Field(description="The task metric, with its 95% bootstrap interval over held-out users.")
    normalised: Interval = Field(description="100 x (score - random) / (reference - random), interval likewise.")
    random_score: float
    reference: str
    reference_score: float
    secondary: dict[str, float | None] = Field(description="CTR, churn, compliance, days active, ... (None: undefined).")
    users: int
    seeds: list[int] = Field(description="[first, last + 1] of the held-out seeds served.")
    official: bool = Field(description="Scored on the task's own held-out set (what the leaderboard accepts).")
    settings: dict[str, Any]
    versions: dict[str, str]
    wall_seconds: float = Field(description="Serving and scoring this policy (random and the reference not included).")
    note: str = Field("", description="How the policy was made (e.g. a PPO model's training budget), for the leaderboard.")

    def write(self, path: str | Path) -> Path:
        """Write the result as indented JSON to ``path`` (folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


# ------------------------------------------------------------------ serving the held-out users
def check_seeds(task: Task, seeds: range) -> None:
    """One ``ValueError`` line unless every seed is held out (never a training or validation seed)."""
    if len(seeds) == 0:
        raise ValueError("--seeds: no seeds")
    if seeds.start < HELD_OUT_START:
        raise ValueError(f"--seeds {seeds.start}..{seeds.stop - 1}: task {task.id} trains on seeds {TRAINING[0]}..{TRAINING[1] - 1} "
                         f"and validates on {VALIDATION[0]}..{VALIDATION[1] - 1}; evaluate on held-out seeds "
                         f"({HELD_OUT_START} and up)")
    if task.mode == "population" and len(seeds) != 1:
        raise ValueError(f"--seeds: task {task.id} runs one held-out population; give one seed (e.g. {HELD_OUT_START})")


def _check_model(policy: Policy, scenario: Any, config: dict[str, Any], task: Task) -> None:
    from recoworld.env.single import RecoWorldEnv

    env = RecoWorldEnv(scenario, {**config, "env": {**config.get("env", {}), "action_mode": "slate"}})
    theirs, ours = policy.model.action_space, env.action_space
    if getattr(theirs, "shape", None) != ours.shape or not np.array_equal(getattr(theirs, "nvec", None), ours.nvec):
        raise PolicyError(f"policy '{policy.spec}': its actions {theirs} do not fit task {task.id}'s slates "
                          f"({env.slate_size} of {env.n_candidates} candidates, {ours})")
    if set(getattr(policy.model.observation_space, "spaces", {})) != set(env.observation_space.spaces):
        raise PolicyError(f"policy '{policy.spec}': its observations are not RecoWorld-v0's")


def serve(policy: Policy, task: Task, seeds: range, data: str | Path | None = None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Per-user totals (``COLUMNS``) of ``policy`` on the held-out ``seeds``, and for a population task
    whether each creator agent still publishes at the end."""
    scenario, config = task_world(task, data)
    if task.mode == "episodes":
        from recoworld.agents.rl.evaluation import evaluate

        if policy.kind == "sb3":
            _check_model(policy, scenario, config, task)
            target: Any = policy.model
        else:
            target = policy.as_recommender()
        out = evaluate(target, n_users=len(seeds), seed_offset=seeds.start, scenario=scenario, config=config,
                       retrain_every=task.retrain_every)
        return pd.DataFrame({c: out["per_user"][c] for c in COLUMNS}), None
    from recoworld.runs.runner import run_population
    from recoworld.scenario import load_scenario
    from recoworld.world.simulation import build_catalog

    scn = load_scenario(scenario, config)
    catalog = build_catalog(scn.catalog, scn.seed)  # the scenario's catalog; the held-out seed draws users and creators
    res = run_population(scn, policy.as_recommender(), n_users=task.held_out_users, seed=seeds.start, catalog=catalog)
    return pd.DataFrame({c: res.totals[FROM_POPULATION.get(c, c)] for c in COLUMNS}), res.creators_active


# ------------------------------------------------------------------ metrics
def _metrics(sums: pd.DataFrame, n: int, horizon: int, creators_kept: pd.Series | None) -> dict[str, pd.Series]:
    """Every metric, one value per row of ``sums`` (column totals over users: the data, or a bootstrap resample)."""
    users = pd.Series(float(n), index=sums.index)
    days = H.per_user(sums["days_active"], users)
    out = {
        "days_active": days,
        "ctr": H.ctr(sums["clicks"], sums["reviewed"]),
        "churn_rate": H.churn_rate(sums["churned"], users),
        "compliance": H.compliance(sums["compliance_sum"], sums["compliance_n"]),
        "reward_per_user": H.per_user(sums["reward"], users),
        "slates_per_session": H.slates_per_session(sums["steps"], sums["sessions"]),
    }
    if creators_kept is not None:
        out["creators_kept"] = creators_kept
        out["platform_health"] = days / horizon * creators_kept
    return out


def score(task: Task, per_user: pd.DataFrame, creators: np.ndarray | None, horizon: int) -> tuple[Interval, dict[str, float | None]]:
    """The task metric with its percentile bootstrap interval (users resampled; a population's creators
    resampled alongside), and every metric's point value."""
    n = len(per_user)
    x = per_user[list(COLUMNS)].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(task.bootstrap_seed)
    boot_sums = pd.DataFrame(resampled_sums(x, task.bootstrap_draws, rng), columns=COLUMNS)
    kept = boot_kept = None
    if creators is not None:
        flags = creators.astype(np.float64)
        kept = pd.Series([flags.mean()])
        boot_kept = pd.Series(resampled_means(flags, task.bootstrap_draws, rng))
    point = _metrics(pd.DataFrame([x.sum(axis=0)], columns=COLUMNS), n, horizon, kept)
    boots = _metrics(boot_sums, n, horizon, boot_kept)[task.metric].to_numpy(dtype=np.float64)
    low, high = percentile_interval(boots, LEVEL)
    values = {k: (None if np.isnan(v.iloc[0]) else float(v.iloc[0])) for k, v in point.items()}
    value = values[task.metric]
    return Interval(value=np.nan if value is None else value, low=float(low), high=float(high)), values


def normalise(x: float, random: float, reference: float) -> float:
    """100 x (x - random) / (reference - random): random 0, the reference 100 (NaN if they tie)."""
    return float("nan") if reference == random else 100.0 * (x - random) / (reference - random)


# ------------------------------------------------------------------ the whole evaluation
_ANCHORS: dict[tuple, tuple[float, float]] = {}


def anchors(task: Task, seeds: range, data: str | Path | None = None) -> tuple[float, float]:
    """(random's score, the reference's score) on ``seeds`` (computed once per process)."""
    key = (task.id, task.fingerprint(), seeds.start, seeds.stop, str(data))
    if key not in _ANCHORS:
        from recoworld.progress import stage

        values = []
        for spec, params in (("random", {}), (task.reference.name, task.reference.params)):
            with stage(f"scoring {spec} on {task.id} (the normalised score's anchor)"):
                values.append(_score_only(resolve_policy(spec, task, params), task, seeds, data))
        _ANCHORS[key] = (values[0], values[1])
    return _ANCHORS[key]


def _horizon(task: Task, data: str | Path | None) -> int:
    from recoworld.scenario import load_scenario

    scenario, config = task_world(task, data)
    return load_scenario(scenario, config).env.horizon_days


def _score_only(policy: Policy, task: Task, seeds: range, data: str | Path | None) -> float:
    per_user, creators = serve(policy, task, seeds, data)
    return score(task, per_user, creators, _horizon(task, data))[0].value


def versions() -> dict[str, str]:
    """The versions a result depends on (packages imported by the evaluation)."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}"}
    for dist in ("recoworld", "numpy", "numba", "pandas", "gymnasium", "stable-baselines3", "torch"):
        module = dist.replace("-", "_")
        if dist in ("recoworld", "numpy", "numba", "pandas", "gymnasium") or module in sys.modules:
            try:
                out[dist] = md.version(dist)
            except md.PackageNotFoundError:
                pass
    return out


def evaluate_task(
    policy: str,
    task: str | Task,
    params: dict[str, Any] | None = None,
    seeds: range | None = None,
    data: str | Path | None = None,
) -> TaskResult:
    """Score POLICY (see ``recoworld.tasks.policies``) on ``task``'s held-out users (or on ``seeds``, all held out)."""
    from recoworld.progress import stage

    task = get_task(task) if isinstance(task, str) else task
    seeds = task.held_out_seeds if seeds is None else seeds
    check_seeds(task, seeds)
    resolved = resolve_policy(policy, task, params)
    horizon = _horizon(task, data)
    start = time.perf_counter()
    try:
        with stage(f"serving {len(seeds) if task.mode == 'episodes' else task.held_out_users} held-out users with {policy}"):
            per_user, creators = serve(resolved, task, seeds, data)
    finally:
        resolved.close()
    value, secondary = score(task, per_user, creators, horizon)
    wall = time.perf_counter() - start
    random, reference = anchors(task, seeds, data)
    bounds = (normalise(value.low, random, reference), normalise(value.high, random, reference))
    scenario, config = task_world(task, data)
    settings = {
        "scenario": scenario if isinstance(scenario, str) else "ml100k (calibrated from the user's data)",
        "config": config, "mode": task.mode, "horizon_days": horizon, "retrain_every": task.retrain_every,
        "policy_seed": task.policy_seed, "bootstrap_draws": task.bootstrap_draws, "bootstrap_seed": task.bootstrap_seed,
        "interval_level": LEVEL, "population_users": task.held_out_users if task.mode == "population" else None,
    }
    if task.needs_data:
        from recoworld.tasks.worlds import ml100k_folder, _data_sha256
        from recoworld.users.calibration import world_sha256

        settings["data_sha256"] = _data_sha256(ml100k_folder(data))
        settings["world_sha256"] = world_sha256(scenario["users"]["from_calibration"])  # the calibrated world itself
    return TaskResult(
        task=task.id, gym_id=task.gym_id, fingerprint=task.fingerprint(), policy=policy, policy_kind=resolved.kind,
        policy_name=resolved.name, params=resolved.params, metric=task.metric, metric_text=METRIC_TEXT[task.metric],
        score=value, normalised=Interval(value=normalise(value.value, random, reference), low=min(bounds), high=max(bounds)),
        random_score=random, reference=task.reference.label, reference_score=reference, secondary=secondary,
        users=task.held_out_users if task.mode == "population" else len(seeds), seeds=[seeds.start, seeds.stop],
        official=seeds == task.held_out_seeds, settings=settings, versions=versions(), wall_seconds=round(wall, 2),
    )
