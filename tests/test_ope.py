"""Off-policy estimates from logged propensities, checked against on-policy values in the simulator."""

from __future__ import annotations

import pytest

from recoworld.evaluation import RunLogs
from recoworld.evaluation.ope import ope_table
from recoworld.runner import PopulationRun
from recoworld.scenario import load_scenario


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> RunLogs:
    """Stochastic logging arms (random, ε-greedy) and the greedy target served on-policy, on the same
    users and first contexts (copies of one world); greedy and random are also logged as off-policy targets."""
    out = tmp_path_factory.mktemp("ope") / "run"
    scenario = load_scenario("quickstart", {
        "seed": 11,
        "users": {"n_users": 3000},
        "env": {"horizon_days": 1, "num_candidates": 20, "slate_size": 5},
        "recommenders": [{"name": "random"}, {"name": "egreedy", "params": {"epsilon": 0.5}}, {"name": "greedy"}],
        "run": {"ope_targets": [{"name": "greedy"}, {"name": "random"}]},
    })
    PopulationRun(scenario, output=out).run()
    return RunLogs.load(out)


@pytest.mark.parametrize("logging_arm", ["random", "egreedy"])
@pytest.mark.parametrize("estimator", ["IPS", "SNIPS", "DR"])
def test_estimates_of_greedy_cover_its_on_policy_value(logs, logging_arm, estimator):
    table = ope_table(logs, scope="first", seed=1)
    row = table[(table["arm"] == logging_arm) & (table["target"] == "greedy") & (table["estimator"] == estimator)].iloc[0]
    assert row["n_slates"] == 3000
    assert row["ci_low"] <= row["on_policy"] <= row["ci_high"], row.to_dict()
    assert row["ci_high"] - row["ci_low"] < 0.25 * row["on_policy"]  # informative, not vacuous


def test_estimates_of_random_from_egreedy_logs_cover_its_on_policy_value(logs):
    table = ope_table(logs, scope="first", seed=2)
    rows = table[(table["arm"] == "egreedy") & (table["target"] == "random")]
    for row in rows.itertuples():
        assert row.ci_low <= row.on_policy <= row.ci_high, row


def test_a_policy_evaluated_on_its_own_logs_gets_its_logged_value_exactly(logs):
    table = ope_table(logs, scope="first")
    own = table[(table["arm"] == "greedy") & (table["target"] == "greedy")]
    assert (own["value"] - own["on_policy"]).abs().max() < 1e-9


def test_deterministic_logging_cannot_evaluate_a_different_policy_and_ips_shows_it(logs):
    """Greedy's logs never show what random would pick: IPS far below random's value (no support)."""
    table = ope_table(logs, scope="first")
    ips = table[(table["arm"] == "greedy") & (table["target"] == "random") & (table["estimator"] == "IPS")].iloc[0]
    assert ips["ci_high"] < ips["on_policy"]


def test_no_targets_no_table(tmp_path):
    scenario = load_scenario("quickstart", {"users": {"n_users": 30}, "env": {"horizon_days": 1}, "recommenders": [{"name": "random"}]})
    PopulationRun(scenario, output=tmp_path / "run").run()
    assert ope_table(RunLogs.load(tmp_path / "run")) is None
