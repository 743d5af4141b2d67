"""Calibrating parametric users to logged interactions, and using the calibrated users."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from recoworld.world.loaders import load_movielens
from recoworld.scenario import ScenarioError, load_scenario
from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog
from recoworld.users.calibration import GROUND_TRUTH as TRUE
from recoworld.users.calibration import CalibrationConfig, calibrate, calibrate_dataset, load_calibration, write_ground_truth

TOLERANCE = {"taste": 0.25, "satiation": 0.25, "fatigue": 0.35}  # relative error allowed in the recovered weights


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ml-latest-small")
    write_ground_truth(folder)
    return folder


def test_calibration_recovers_the_ground_truth_weights_and_beats_popularity(ground_truth):
    catalog, interactions = load_movielens(ground_truth)
    fit = calibrate(interactions, catalog, CalibrationConfig(holdout=0.2))
    weights = fit.result.weights
    for name, tol in TOLERANCE.items():
        got, want = getattr(weights, name), TRUE[name]
        assert abs(got - want) <= tol * abs(want), (name, got, want)
    auc = fit.result.fidelity.auc
    assert auc["simulator"] > auc["popularity"] + 0.05 and auc["simulator"] > auc["mf"]
    assert fit.result.fidelity.log_loss["simulator"] < fit.result.fidelity.log_loss["popularity"]
    assert len(fit.profiles) == 300 and all(len(p.taste) == catalog.embeddings.shape[1] for p in fit.profiles)


def test_held_out_split_is_by_time_per_user(ground_truth):
    from recoworld.users.calibration import split_by_time

    _, interactions = load_movielens(ground_truth)
    frame = split_by_time(interactions, CalibrationConfig(holdout=0.25))
    for _, user in frame.groupby("user_id"):
        assert user.loc[~user["test"], "timestamp"].max() <= user.loc[user["test"], "timestamp"].min()
        assert abs(user["test"].mean() - 0.25) < 0.02


def test_cli_calibrates_a_movielens_folder_and_scenarios_and_the_env_use_it(ground_truth, tmp_path):
    from typer.testing import CliRunner

    from recoworld.cli import app

    out = tmp_path / "users.parquet"
    result = CliRunner().invoke(app, ["calibrate", str(ground_truth), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AUC" in result.output and out.is_file()
    cal = load_calibration(out)
    assert cal.result.fidelity.auc["simulator"] > 0.6

    config = {"catalog": {"source": "movielens", "path": str(ground_truth)}, "users": {"from_calibration": str(out), "n_users": 50},
              "env": {"num_candidates": 50, "slate_size": 5, "horizon_days": 3}, "recommenders": [{"name": "greedy"}]}
    scenario = load_scenario(config)
    assert scenario.user_model.w_taste == pytest.approx(cal.result.user_model["w_taste"])
    explicit = load_scenario({**config, "user_model": {"w_taste": 1.25}})
    assert explicit.user_model.w_taste == 1.25  # what the scenario sets wins over the fit

    from recoworld.agents.baselines import GreedyRelevance
    from recoworld.runs.runner import run_population

    res = run_population(scenario, GreedyRelevance())
    assert len(res.totals["click"]) == 50 and res.summary()["ctr"] > 0

    env = gym.make("RecoWorld-v0", config=config)
    env.reset(seed=3)
    user = env.unwrapped.sim.profiles[0]
    assert user.segment == "calibrated" and user.user_id in {p.user_id for p in cal.profiles}
    env.step(env.action_space.sample())

    with pytest.raises(ScenarioError, match="from_calibration"):
        load_scenario({**config, "seed": 5})  # another seed is another embedding space
    with pytest.raises(ScenarioError, match="users.from_calibration"):
        load_scenario({**config, "users": {"from_calibration": str(tmp_path / "missing.parquet")}})


def test_generic_interactions_with_watch_ratios_calibrate(tmp_path):
    synth = generate_catalog(SyntheticCatalogConfig(n_items=200, n_topics=5), seed=1)
    items = synth.to_frame()
    items.to_csv(tmp_path / "items.csv", index=False)
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", items["item_id"][i], 1_700_000_000 + 60 * k, float(rng.gamma(2.0, 1.0)))
            for u in range(40) for k, i in enumerate(rng.integers(0, len(items), 30))]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "watch_ratio"]).to_csv(tmp_path / "inter.csv", index=False)
    cal = calibrate_dataset(tmp_path / "inter.csv", items=tmp_path / "items.csv")
    assert cal.result.fidelity.n_test > 0 and len(cal.profiles) == 40
    with pytest.raises(ValueError, match="--items"):
        calibrate_dataset(tmp_path / "inter.csv")


def test_held_out_replay_scores_any_user_backend(ground_truth):
    import json

    from tests.users.test_llm_users import decision

    from recoworld.llm.scripted import ScriptedModel
    from recoworld.users.calibration import jensen_shannon, replay_interactions

    catalog, interactions = load_movielens(ground_truth)
    fit = calibrate(interactions, catalog)
    parametric = fit.result.replays[0]
    assert parametric.backend == "parametric" and 0.3 < parametric.f1 <= 1.0
    assert parametric.jsd["topic_mix"] < 0.05  # calibrated tastes engage with the right topics
    # an LLM user that engages with everything it sees: every real engagement it reached is recalled
    model = ScriptedModel(lambda messages, schema: json.loads(json.dumps(decision(messages, click=tuple(range(5))))))
    eager = replay_interactions(interactions, catalog, fit, backend="llm", language_model=model)
    assert eager.backend == "llm" and eager.recall == pytest.approx(1.0) and eager.precision < 0.9
    assert jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert jensen_shannon(np.array([2, 3]), np.array([4, 6])) == pytest.approx(0.0)


def test_report_of_a_run_with_calibrated_users_shows_their_fidelity(ground_truth, tmp_path):
    import json

    from recoworld.evaluation import RunLogs
    from recoworld.evaluation.report import write_report
    from recoworld.runs.runner import PopulationRun

    fit = calibrate_dataset(ground_truth)
    fit.save(tmp_path / "users.parquet")
    scenario = load_scenario({"catalog": {"source": "movielens", "path": str(ground_truth)},
                              "users": {"from_calibration": str(tmp_path / "users.parquet"), "n_users": 40},
                              "env": {"num_candidates": 40, "slate_size": 5, "horizon_days": 3}, "recommenders": [{"name": "greedy"}]})
    PopulationRun(scenario, output=tmp_path / "run").run()
    paths = write_report([RunLogs.load(tmp_path / "run")], tmp_path / "report")
    html = paths.html.read_text()
    fidelity = html.split('<section id="fidelity">', 1)[1].split("</section>", 1)[0]
    assert "Held-out engagement prediction" in fidelity and "popularity" in fidelity and "action F1" in fidelity
    data = json.loads(paths.metrics.read_text())
    (run_fit,) = data["fidelity"].values()
    assert run_fit["fidelity"]["auc"]["simulator"] == pytest.approx(fit.result.fidelity.auc["simulator"])


def test_hazard_fit_matches_the_training_rate_of_ending_sessions(ground_truth):
    catalog, interactions = load_movielens(ground_truth)
    fit = calibrate(interactions, catalog, CalibrationConfig(fit_hazard=True))
    rate = fit.result.replays[0].leave_rate
    assert "hazard_bias" in fit.result.user_model
    assert abs(rate["simulated"] - rate["real"]) < 0.25 * rate["real"]  # held out: close to the training match
