"""Run a recommender over a population for the scenario's days, with the batched world step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from recoworld.agents.baselines import BaseRecommender
from recoworld.catalog import Catalog
from recoworld.llm.base import Usage
from recoworld.rewards import COMPONENTS
from recoworld.scenario import Scenario
from recoworld.simulation import Simulation, build_catalog
from recoworld.users.llm_user import make_user_backend

if TYPE_CHECKING:
    from recoworld.llm.base import LanguageModel


@dataclass
class PopulationResult:
    """Per-user totals of one recommender's run (arrays of length n_users)."""

    recommender: str
    totals: dict[str, np.ndarray] = field(default_factory=dict)
    llm_usage: Usage = field(default_factory=Usage)  # LLM calls, tokens and cost of the run (a sum)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.totals)

    def summary(self) -> dict[str, float]:
        """Population means of the headline engagement and retention figures."""
        t = self.totals
        reviewed = t["reviewed"].sum()
        first = t["first_session_reviewed"].sum()
        told = t["instructions"].sum()
        return {
            "ctr": float(t["click"].sum() / max(reviewed, 1)),
            "first_session_ctr": float(t["first_session_clicks"].sum() / max(first, 1)),
            "clicks_per_user": float(t["click"].mean()),
            "watch_minutes_per_user": float(t["watch_minutes"].mean()),
            "likes_per_user": float(t["like"].mean()),
            "slates_per_session": float(t["slates"].sum() / max(t["days_active"].sum(), 1)),
            "days_active": float(t["days_active"].mean()),
            "churn_rate": float(t["churned"].mean()),
            "instructions_per_user": float(t["instructions"].mean()),
            "compliance": float(t["compliance_sum"].sum() / max(t["compliance_n"].sum(), 1)) if told else float("nan"),
            "reward_per_user": float(t["reward"].mean()),
            "llm_calls_per_user_step": float(self.llm_usage.calls / max(t["slates"].sum(), 1)),
            "llm_fallback_rate": float(t["llm_fallbacks"].sum() / max(t["slates"].sum(), 1)),
        }


def run_population(
    scenario: Scenario,
    recommender: BaseRecommender,
    n_users: int | None = None,
    seed: int | None = None,
    catalog: Catalog | None = None,
    on_day: Callable[[int], None] | None = None,
    language_model: "LanguageModel | None" = None,
) -> PopulationResult:
    """Simulate ``n_users`` users (the same users for the same seed) served by ``recommender``."""
    seed = scenario.seed if seed is None else seed
    n = n_users or scenario.users.n_users
    rng = np.random.default_rng(seed)
    sim = Simulation.sample(scenario, n, rng, catalog or build_catalog(scenario.catalog, scenario.seed))
    sim.backend = make_user_backend(scenario, language_model)
    totals = {name: np.zeros(n) for name in COMPONENTS}
    for name in (
        "reviewed", "slates", "reward", "instructions", "compliance_sum", "compliance_n",
        "first_session_clicks", "first_session_reviewed", "llm_fallbacks",
    ):
        totals[name] = np.zeros(n)
    for day in range(scenario.env.horizon_days):
        rows = np.flatnonzero(sim.alive & (sim.day == day))
        sim.retrieve(rows)  # later slates of the session get candidates drawn by step()
        while len(rows):
            view = sim.view(rows, with_text=recommender.needs_text, with_observation=recommender.needs_observation)
            choice = recommender.slate(view)
            slates = np.take_along_axis(view.candidates, choice.positions, 1)
            first = sim.platform.sessions[rows] == 1
            out = sim.step(rows, slates)
            resp = out.response
            recommender.observe(view, choice.positions, resp.click, resp.reviewed)
            for c, name in enumerate(COMPONENTS):
                totals[name][rows] += out.components[:, c]
            n_rev = resp.reviewed.sum(1)
            n_click = resp.click.sum(1)
            totals["reviewed"][rows] += n_rev
            totals["slates"][rows] += 1
            totals["reward"][rows] += out.reward
            totals["first_session_clicks"][rows] += n_click * first
            totals["first_session_reviewed"][rows] += n_rev * first
            totals["instructions"][rows] += out.effects.emitted
            scored = ~np.isnan(out.effects.compliance)
            totals["compliance_sum"][rows[scored]] += out.effects.compliance[scored]
            totals["compliance_n"][rows[scored]] += 1
            if sim.backend is not None:
                totals["llm_fallbacks"][rows] += [rec.fallback for rec in sim.backend.last_records]
            rows = rows[~out.session_ended]
        if on_day is not None:
            on_day(day)
        if sim.backend is not None and sim.backend.exhausted:
            break  # the LLM budget ran out: end cleanly with everything simulated so far
    totals["days_active"] = sim.days_active.astype(float)
    totals["churned"] = sim.churned.astype(float)
    usage = sim.backend.model.total if sim.backend is not None else Usage()
    return PopulationResult(recommender=recommender.name, totals=totals, llm_usage=usage)
