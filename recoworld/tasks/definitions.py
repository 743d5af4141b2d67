"""The registered tasks: what a score on RecoWorld means.

A task fixes a world (a bundled scenario and overrides, or a world built from the user's own copy
of a data set), the horizon and the reward a policy is trained for, the seed ranges (training,
validation, held-out), the held-out users every policy is scored on, the task metric, and the
reference policy that scores 100 (random scores 0). A task's definition never changes under its
version: a change is a new version (``tests/tasks`` pins each task's fingerprint).

Seeds are RecoWorld-v0's user seeds (``reset(seed=s)`` draws one user), in the ranges
``recoworld.agents.rl.envs`` defines: training [0, 50,000), validation [50,000, 100,000),
held-out from 100,000. A population task's held-out seed is the seed of its population run
(users, creators and the run's randomness; the catalog stays the scenario's).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# the seed ranges of recoworld.agents.rl.envs (TRAIN_SEEDS, VALIDATION_SEEDS, HELD_OUT_OFFSET), as plain numbers:
# a task's definition must not move if those constants ever do (tests check that they agree)
TRAINING = (0, 50_000)
VALIDATION = (50_000, 100_000)
HELD_OUT_START = 100_000

# RecoWorld-v0's retention reward (recoworld.agents.rl.envs.retention_rewards at version 1, written out:
# the task keeps these weights whatever the helper becomes)
RETENTION_REWARDS: dict[str, float] = {
    "return": 5.0, "churn": -20.0, "click": 0.2, "like": 0.1, "share": 0.1, "comment": 0.1,
    "watch_minutes": 0.02, "leave": -0.5, "skip": 0.0,
}

Metric = Literal["days_active", "compliance", "ctr", "platform_health"]

METRIC_TEXT: dict[str, str] = {
    "days_active": "days active per held-out user",
    "compliance": "compliance with pending instructions (per slate served while one was pending)",
    "ctr": "clicks per reviewed impression",
    "platform_health": "platform health: (days active / horizon) x share of creators still publishing",
}


class PolicySpec(BaseModel):
    """A registered recommender and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="A registered recommender name.")
    params: dict[str, Any] = Field(default_factory=dict, description="Its parameters.")

    @property
    def label(self) -> str:
        """The policy's name, followed by its parameters as sorted JSON when it has any."""
        return self.name + (f" {json.dumps(self.params, sort_keys=True)}" if self.params else "")


class Task(BaseModel):
    """One versioned task (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The task's name without its version, e.g. 'retention'.")
    version: int = Field(ge=1, description="Bumped whenever anything below changes.")
    gym_id: str = Field(description="The Gym id of the task's training env.")
    title: str
    summary: str = Field(description="What the task asks of a policy, in a sentence or two.")
    scenario: str = Field(description="A bundled scenario, or 'ml100k' for the world built from the user's MovieLens-100K.")
    config: dict[str, Any] = Field(default_factory=dict, description="Overrides applied to the scenario.")
    mode: Literal["episodes", "population"] = Field(
        description="episodes: one RecoWorld-v0 episode per held-out user; population: one population run of "
        "held-out users, with creators publishing and quitting."
    )
    metric: Metric
    held_out_users: int = Field(ge=1, description="Held-out users scored (episodes: one seed each; population: one run).")
    reference: PolicySpec = Field(description="The policy that scores 100 (random scores 0).")
    retrain_every: int = Field(200, ge=0, description="Episodes: a recommender that learns from logs retrains after "
                               "every this many held-out users (population runs retrain it nightly).")
    policy_seed: int = Field(0, description="The seed every policy is built with.")
    bootstrap_draws: int = Field(2000, ge=100, description="Bootstrap resamples of the held-out users.")
    bootstrap_seed: int = Field(0, description="Seed of the bootstrap.")

    @property
    def id(self) -> str:
        """The versioned task id, ``name-vN`` (also the Gym id's suffix)."""
        return f"{self.name}-v{self.version}"

    @property
    def held_out_seeds(self) -> range:
        """Episodes: one user seed per held-out user; population: the run's seed."""
        count = self.held_out_users if self.mode == "episodes" else 1
        return range(HELD_OUT_START, HELD_OUT_START + count)

    @property
    def needs_data(self) -> bool:
        """True when the task's world is built from a data set that must be fetched first (MovieLens-100K)."""
        return self.scenario == "ml100k"

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the definition and, for a bundled scenario, its YAML text."""
        text = self.model_dump_json()
        if not self.needs_data:
            text += resources.files("recoworld.scenarios").joinpath(f"{self.scenario}.yaml").read_text(encoding="utf-8")
        return hashlib.sha256(text.encode()).hexdigest()[:16]


IF_GREEDY = PolicySpec(name="instruction_following", params={"base": "greedy"})

TASKS: dict[str, Task] = {t.id: t for t in (
    Task(
        name="retention", version=1, gym_id="RecoWorld-Retention-v1", title="Retention on the default problem",
        summary="Keep users coming back for 30 days: quickstart's mixed population, 100 candidates, slates of 10, "
                "rewarded for returns and punished for churn.",
        scenario="quickstart", config={"rewards": RETENTION_REWARDS}, mode="episodes", metric="days_active",
        held_out_users=1000, reference=IF_GREEDY,
    ),
    Task(
        name="instruction-following", version=1, gym_id="RecoWorld-InstructionFollowing-v1",
        title="Instruction following",
        summary="Talkative users say what they want when they lose interest ('more cooking, less news'); "
                "follow it on the slates that come after.",
        scenario="instruction_following", config={}, mode="episodes", metric="compliance", held_out_users=1000,
        reference=IF_GREEDY,
    ),
    Task(
        name="cold-start", version=1, gym_id="RecoWorld-ColdStart-v1", title="Cold start",
        summary="Newcomers nobody knows, on a young platform with a small catalog: earn their clicks in their first week.",
        scenario="cold_start", config={"env": {"horizon_days": 7}}, mode="episodes", metric="ctr", held_out_users=1000,
        reference=PolicySpec(name="greedy"),
    ),
    Task(
        name="creator-economy", version=1, gym_id="RecoWorld-CreatorEconomy-v1", title="Creator economy",
        summary="5,000 users and 300 creators who quit after five items without a click, for 30 days: keep the users "
                "and the creators.",
        scenario="creator_economy", config={}, mode="population", metric="platform_health", held_out_users=5000,
        reference=IF_GREEDY,
    ),
    Task(
        name="ml100k", version=2, gym_id="RecoWorld-ML100K-v2", title="Calibrated MovieLens-100K users",
        summary="Users calibrated to your copy of MovieLens-100K (tastes, traits, sessions and returns): keep them "
                "for 30 days, 50 candidates, slates of 5.",
        scenario="ml100k", config={"env": {"num_candidates": 50, "slate_size": 5, "horizon_days": 30},
                                   "rewards": RETENTION_REWARDS},
        mode="episodes", metric="days_active", held_out_users=1000, reference=PolicySpec(name="popular"),
    ),
)}


_ML100K_V1 = ("its users came from the mini-batch calibration solver, which stopped short of the fit; ml100k-v2 is the "
              "same task on the converged (full-batch) calibration")
RETIRED: dict[str, str] = {"ml100k-v1": _ML100K_V1, "RecoWorld-ML100K-v1": _ML100K_V1}  # id or Gym id -> why


def task_names() -> list[str]:
    """Every registered task id."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """A task by id (``retention-v1``), by name alone (its latest version) or by Gym id; one error line otherwise."""
    if name in TASKS:
        return TASKS[name]
    by_name = [t for t in TASKS.values() if t.name == name or t.gym_id == name]
    if by_name:
        return max(by_name, key=lambda t: t.version)
    if name in RETIRED:
        raise ValueError(f"task '{name}' was retired: {RETIRED[name]}")
    raise ValueError(f"unknown task '{name}' (known: {', '.join(task_names())})")
