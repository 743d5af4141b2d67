"""What a population run returns: per-user totals of each arm and their headline summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.evaluation import headline as H
from recoworld.llm.base import Usage
from recoworld.logs.folder import RunManifest

@dataclass
class PopulationResult:
    """Per-user totals of one arm's run (arrays of length n_users)."""

    recommender: str
    totals: dict[str, np.ndarray] = field(default_factory=dict)
    llm_usage: Usage = field(default_factory=Usage)  # LLM calls, tokens and cost of the run (a sum)
    creators_active: np.ndarray | None = None  # (C,) whether each creator agent of the arm's world still publishes at the end

    def frame(self) -> pd.DataFrame:
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
        return {name: result.summary() for name, result in self.arms.items()}
