"""Behavioural validity of the user model: orderings of recommenders a researcher relies on.

Each recommender serves the same 2,000 quickstart users for the 30-day horizon, once per module.
"""

from __future__ import annotations

import pytest

from recoworld.agents import make_recommender
from recoworld.runs.runner import run_population
from recoworld.scenario import load_scenario

pytestmark = pytest.mark.slow  # statistical claims over whole populations

N_USERS = 2000
RECOMMENDERS = {
    "random": ("random", {}),
    "popular": ("popular", {}),
    "greedy": ("greedy", {}),
    "mmr": ("mmr", {"lambda_": 0.5}),
    "linucb": ("linucb", {}),
    "instructions": ("instruction_following", {"base": "greedy"}),
}


@pytest.fixture(scope="module")
def summaries() -> dict[str, dict[str, float]]:
    scenario = load_scenario("quickstart")
    assert scenario.env.horizon_days == 30
    out = {}
    for key, (name, params) in RECOMMENDERS.items():
        result = run_population(scenario, make_recommender(name, params, seed=0), n_users=N_USERS, seed=0)
        assert len(result.frame()) == N_USERS
        out[key] = result.summary()
    return out


def test_runs_are_not_vacuous(summaries):
    for key, s in summaries.items():
        assert s["clicks_per_user"] > 0, key
        assert 1.0 <= s["days_active"] <= 30.0, key
        assert 0.0 < s["churn_rate"] < 1.0, key
    assert summaries["greedy"]["instructions_per_user"] > 0
    assert summaries["instructions"]["instructions_per_user"] > 0


def test_relevance_wins_first_session_but_diversity_retains(summaries):
    greedy, mmr = summaries["greedy"], summaries["mmr"]
    assert greedy["first_session_ctr"] > mmr["first_session_ctr"]
    assert mmr["days_active"] > greedy["days_active"]


def test_following_instructions_retains_users(summaries):
    plain, following = summaries["greedy"], summaries["instructions"]
    assert following["days_active"] > plain["days_active"]
    assert following["churn_rate"] < plain["churn_rate"]
    assert following["compliance"] > plain["compliance"]


@pytest.mark.parametrize("metric", ["clicks_per_user", "ctr", "watch_minutes_per_user"])
def test_random_is_worst_on_engagement(summaries, metric):
    others = {k: summaries[k][metric] for k in ("popular", "greedy", "mmr", "linucb")}
    random_value = summaries["random"][metric]
    assert all(random_value < v for v in others.values()), (random_value, others)
