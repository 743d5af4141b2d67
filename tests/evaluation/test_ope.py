"""Off-policy estimates from logged propensities, checked against on-policy values in the simulator."""

from __future__ import annotations

import pytest

from recoworld.evaluation import RunLogs
from recoworld.evaluation.ope import ope_table
from recoworld.runs.runner import PopulationRun
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


@pytest.mark.slow
@pytest.mark.parametrize("logging_arm", ["random", "egreedy"])
@pytest.mark.parametrize("estimator", ["IPS", "SNIPS", "DR"])
def test_estimates_of_greedy_cover_its_on_policy_value(logs, logging_arm, estimator):
    table = ope_table(logs, scope="first", seed=1)
    row = table[(table["arm"] == logging_arm) & (table["target"] == "greedy") & (table["estimator"] == estimator)].iloc[0]
    assert row["n_slates"] == 3000
    assert row["ci_low"] <= row["on_policy"] <= row["ci_high"], row.to_dict()
    assert row["ci_high"] - row["ci_low"] < 0.25 * row["on_policy"]  # informative, not vacuous


@pytest.mark.slow
def test_estimates_of_random_from_egreedy_logs_cover_its_on_policy_value(logs):
    table = ope_table(logs, scope="first", seed=2)
    rows = table[(table["arm"] == "egreedy") & (table["target"] == "random")]
    for row in rows.itertuples():
        assert row.ci_low <= row.on_policy <= row.ci_high, row


@pytest.mark.slow
def test_a_policy_evaluated_on_its_own_logs_gets_its_logged_value_exactly(logs):
    table = ope_table(logs, scope="first")
    own = table[(table["arm"] == "greedy") & (table["target"] == "greedy")]
    assert (own["value"] - own["on_policy"]).abs().max() < 1e-9


@pytest.mark.slow
def test_deterministic_logging_cannot_evaluate_a_different_policy_and_ips_shows_it(logs):
    """Greedy's logs never show what random would pick: IPS far below random's value (no support)."""
    table = ope_table(logs, scope="first")
    ips = table[(table["arm"] == "greedy") & (table["target"] == "random") & (table["estimator"] == "IPS")].iloc[0]
    assert ips["ci_high"] < ips["on_policy"]


def test_no_targets_no_table(tmp_path):
    scenario = load_scenario("quickstart", {"users": {"n_users": 30}, "env": {"horizon_days": 1}, "recommenders": [{"name": "random"}]})
    PopulationRun(scenario, output=tmp_path / "run").run()
    assert ope_table(RunLogs.load(tmp_path / "run")) is None


def test_estimators_by_hand():
    """Two slates of two items, logged with propensity 1/2 each; the target keeps or drops them.

    IPS = (2·1 + 0 + 2·1 + 2·1) / 2 slates = 3; SNIPS = K · Σwr / Σw = 2 · 6 / 6 = 2; with q̂ equal to the
    other fold's mean click rate (large shrinkage; the two users sit in different folds), DR = (2 + 3) / 2.
    """
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from recoworld.logs.folder import RunManifest

    names = [f"user{k}" for k in range(50)]
    folds = pd.util.hash_array(np.array(names, dtype=object)) % 2
    u1, u2 = names[int(np.argmax(folds == 0))], names[int(np.argmax(folds == 1))]
    imp = pd.DataFrame({
        "arm": "A", "user": [u1, u1, u2, u2], "day": 0, "step": 1, "session": 1, "position": [0, 1, 0, 1],
        "item": ["a", "b", "c", "a"], "propensity": 0.5, "clicked": [True, False, True, True],
    })
    ope = pd.DataFrame({
        "arm": "A", "target": "T", "day": 0, "step": 1, "user": [u1, u1, u2, u2, u1, u1, u2, u2],
        "kind": ["logged"] * 4 + ["target"] * 4, "position": [0, 1, 0, 1, -1, -1, -1, -1],
        "item": ["a", "b", "c", "a", "a", "c", "c", "a"], "target_prob": [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    })
    scenario = load_scenario({"env": {"slate_size": 2, "num_candidates": 4}})
    manifest = RunManifest(run="h", scenario_sha256="x", seed=0, engine="local", shards=1, arms=["A"], days_total=1,
                           days_completed=1, status="complete")
    empty = pd.DataFrame()
    logs = RunLogs(Path("hand"), manifest, scenario, imp, empty, empty, empty, empty, empty, empty, ope=ope)
    table = ope_table(logs, shrink=1e9, n_boot=50).set_index("estimator")["value"]
    assert table["IPS"] == pytest.approx(3.0)
    assert table["SNIPS"] == pytest.approx(2.0)
    assert table["DR"] == pytest.approx(2.5, abs=1e-6)
