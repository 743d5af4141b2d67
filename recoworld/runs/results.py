"""What a population run returns: per-user totals of each arm and their headline summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recoworld.evaluation import headline as H
from recoworld.llm.base import Usage
from recoworld.logs.folder import RunManifest

if TYPE_CHECKING:
    from recoworld.runs.checkpoints import RunState


@dataclass
class PopulationResult:
    """Per-user totals of one arm's run (arrays of length n_users)."""

    recommender: str
    totals: dict[str, np.ndarray] = field(default_factory=dict)
    llm_usage: Usage = field(default_factory=Usage)  # LLM calls, tokens and cost of the run (a sum)
    creators_active: np.ndarray | None = None  # (C,) whether each creator agent of the arm's world still publishes at the end

    def frame(self) -> pd.DataFrame:
        """The per-user totals as a DataFrame (a column per total)."""
        return pd.DataFrame(self.totals)

    def summary(self) -> dict[str, float]:
        """Population figures of the headline metrics (definitions in ``recoworld.evaluation.headline``)."""
        s = {name: float(np.sum(values)) for name, values in self.totals.items()}
        n = len(self.totals["click"])
        return {
            "ctr": H.ctr(s["click"], s["reviewed"]),
            "first_session_ctr": H.ctr(s["first_session_clicks"], s["first_session_reviewed"]),
            "clicks_per_user": H.per_user(s["click"], n),
            "watch_minutes_per_user": H.per_user(s["watch_minutes"], n),
            "likes_per_user": H.per_user(s["like"], n),
            "slates_per_session": H.slates_per_session(s["slates"], s["sessions"]),
            "days_active": H.per_user(s["days_active"], n),
            "churn_rate": H.churn_rate(s["churned"], n),
            "instructions_per_user": H.per_user(s["instructions"], n),
            "compliance": H.compliance(s["compliance_sum"], s["compliance_n"]),
            "reward_per_user": H.per_user(s["reward"], n),
            "llm_calls_per_user_step": H.ratio(self.llm_usage.calls, s["slates"]),
            "llm_fallback_rate": H.ratio(s["llm_fallbacks"], s["slates"]),
        }


@dataclass
class RunResult:
    """Per-arm results of a finished run, and where its logs are."""

    arms: dict[str, PopulationResult]
    output: Path | None
    manifest: RunManifest

    def summaries(self) -> dict[str, dict[str, float]]:
        """Each arm's summary metrics (name -> metric -> value)."""
        return {name: result.summary() for name, result in self.arms.items()}


def run_result(state: "RunState", folder: Path | None) -> RunResult:
    """The run's results per arm: every shard's totals of the arm's users, the arm's LLM usage and creators."""
    arms: dict[str, PopulationResult] = {}
    for a, name in enumerate(state.arm_names):
        parts: dict[str, list[np.ndarray]] = {}
        usage = Usage()
        creators = None
        for world in state.worlds:
            if a not in world.arms:
                continue
            usage = usage + world.llm_usage if len(world.arms) == 1 else usage
            if world.creators is not None:
                creators = world.creators.active.copy()
            for shard in world.shards:
                mine = shard.arm_of == a
                columns = {**shard.totals, "days_active": shard.sim.days_active.astype(float),
                           "churned": shard.sim.churned.astype(float)}
                for key, value in columns.items():
                    parts.setdefault(key, []).append(value[mine])
        arms[name] = PopulationResult(name, {k: np.concatenate(v) for k, v in parts.items()}, usage, creators)
    return RunResult(arms, folder, state.manifest)
