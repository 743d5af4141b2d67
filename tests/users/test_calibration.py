"""Calibrating parametric users to logged interactions, and using the calibrated users."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from recoworld.world.readers import load_movielens
from recoworld.scenario import ScenarioError, load_scenario
from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog
from recoworld.users.calibration import GROUND_TRUTH as TRUE
from recoworld.users.calibration import CalibrationConfig, calibrate, calibrate_dataset, load_calibration, write_ground_truth

QUICK = dict(factors=[8], l2=[0.1], recency=[0.0], fit_dynamics=False)  # one setting: tests stay fast
QUICK_CLI = ["--factors", "8", "--l2", "0.1", "--recency", "0", "--no-dynamics"]


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ml-latest-small")
    write_ground_truth(folder)
    return folder


@pytest.fixture(scope="module")
def fitted(ground_truth):
    catalog, interactions = load_movielens(ground_truth)
    return catalog, interactions, calibrate(interactions, catalog, CalibrationConfig(**QUICK))


def test_calibration_recovers_the_ground_truth_dynamics_terms_and_beats_popularity(fitted):
    catalog, _, fit = fitted
    weights = fit.result.weights
    assert weights.satiation == pytest.approx(TRUE["satiation"], rel=0.25)
    assert weights.fatigue == pytest.approx(TRUE["fatigue"], rel=0.35)
    auc, ll = fit.result.fidelity.auc, fit.result.fidelity.log_loss
    assert auc["simulator"] > auc["popularity_rate"] + 0.05 and auc["simulator"] > auc["mf"]
    assert ll["simulator"] < min(ll["popularity_rate"], ll["mf"])
    assert len(fit.profiles) == 300 and fit.items is not None and len(fit.items.vectors) == len(catalog)
    # the fitted model is the kernel's: unit taste and item vectors, quality in [0, 1]
    taste = np.array([p.taste for p in fit.profiles])
    assert np.allclose(np.linalg.norm(taste, axis=1), 1, atol=1e-4) and np.allclose(np.linalg.norm(fit.items.vectors, axis=1), 1, atol=1e-4)
    assert fit.items.quality.min() >= 0 and fit.items.quality.max() <= 1


def test_kernel_utility_equals_the_fitted_logit(fitted, ground_truth):
    """A calibrated user's first item in a session: the kernel's utility minus the click threshold is the fit's logit
    (liking plus selection), with the topic's novelty set by the user's training history, as in the fit."""
    from recoworld.users.calibration.fit import Prepared
    from recoworld.users.calibration.replay import replay_scenario, serve_lists

    catalog, interactions, fit = fitted
    config = CalibrationConfig(**QUICK)
    prep = Prepared(interactions, catalog, config)
    users = [p.user_id for p in fit.profiles[:20]]
    items = [np.array([7]) for _ in users]  # one item: no satiation or fatigue yet; exposure from the training period
    _, utility = serve_lists(fit, catalog, users, items, replay_scenario(fit.result.user_model, "parametric", config))
    model = fit.result.user_model
    from recoworld.users.calibration.fit import fit_models

    from recoworld.users.calibration.selection import selection_features

    models = fit_models(prep)
    codes = pd.Index(prep.user_ids).get_indexer(users)
    conf = prep.traits["conformity"].to_numpy()[codes]
    nov = prep.traits["novelty_seeking"].to_numpy()[codes]
    pop = prep.popularity[7]
    from recoworld.users.calibration.data import NOVELTY_SCALE

    topic = catalog.topic_names[catalog.topic[7]]
    seen = np.array([p.topic_history.get(topic, 0.0) for p in fit.profiles[:20]])
    assert seen.any()  # users know the topic from their training period
    x = np.column_stack([conf * pop, np.full(len(users), pop), nov * np.exp(-seen / NOVELTY_SCALE), np.zeros(len(users)), np.zeros(len(users)),
                         np.full(len(users), prep.item_quality[7])])
    item = np.full(len(users), 7)
    # the world's pick: liking's logit plus selection's (a product of experts)
    logit = models.simulator.logit(codes, item, x) + models.selection.logit(codes, item, selection_features(
        prep.traits["conformity"].to_numpy(), prep.popularity, codes, item))
    kernel = np.array([u[0] for u in utility]) - model["click_threshold"]
    assert np.allclose(kernel, logit, atol=1e-3)
    fresh = x.copy()
    fresh[:, 2] = nov  # the topic as if new to every user: a different logit
    assert not np.allclose(kernel, models.simulator.logit(codes, item, fresh) + logit - models.simulator.logit(codes, item, x), atol=1e-3)


def held_out_rows(prep, interactions: pd.DataFrame) -> np.ndarray:
    """Which rows of ``interactions`` ``prep`` holds out."""
    test_keys = set(zip(prep.frame.loc[prep.frame["test"], "user_id"], prep.frame.loc[prep.frame["test"], "timestamp"]))
    return np.array([k in test_keys for k in zip(interactions["user_id"], interactions["timestamp"])])


def flip_held_out_labels(prep, interactions: pd.DataFrame) -> pd.DataFrame:
    """``interactions`` with the engagement label of every held-out row of ``prep`` flipped."""
    flipped = interactions.copy()
    held = held_out_rows(prep, interactions)
    flipped.loc[held, "rating"] = np.where(flipped.loc[held, "rating"] >= 4, 1.0, 5.0)
    if "click" in flipped:
        flipped.loc[held, "click"] = 1 - flipped.loc[held, "click"]
    return flipped


def test_flipping_every_held_out_label_leaves_every_held_out_prediction_unchanged(fitted):
    from recoworld.users.calibration.fit import Prepared, fit_models

    catalog, interactions, _ = fitted
    config = CalibrationConfig(**QUICK)
    prep = Prepared(interactions, catalog, config)
    flipped = flip_held_out_labels(prep, interactions)
    prep2 = Prepared(flipped, catalog, config)
    assert (prep2.y[~prep2.train] != prep.y[~prep.train]).all()
    a, b = fit_models(prep), fit_models(prep2)
    for name in a.predictions:
        assert np.allclose(a.predictions[name][~prep.train], b.predictions[name][~prep2.train]), name
    # the selection stage (and so the calibrated world's pick) sees neither held-out labels nor held-out items
    test = ~prep.train
    pick = a.world_model().logit(prep.users[test], prep.rows[test], prep.x[test])
    assert np.allclose(pick, b.world_model().logit(prep2.users[test], prep2.rows[test], prep2.x[test]))
    from recoworld.users.calibration.selection import fit_selection

    moved = interactions.copy()
    held = held_out_rows(prep, interactions)
    moved.loc[held, "item_id"] = np.random.default_rng(1).permutation(moved.loc[held, "item_id"].to_numpy())
    prep3 = Prepared(moved, catalog, config)
    assert (prep3.rows[test] != prep.rows[test]).mean() > 0.5
    sel3, _ = fit_selection(prep3, (8,))
    assert np.allclose(a.selection.logit(prep.users, prep.rows[::-1]), sel3.logit(prep.users, prep.rows[::-1]))


def test_traits_differ_across_users_and_come_from_training_behaviour(fitted):
    _, _, fit = fitted
    traits = pd.DataFrame([p.traits.model_dump() for p in fit.profiles])
    for name in ("conformity", "novelty_seeking"):
        assert traits[name].std() > 0.1, name
    assert traits[["conformity", "novelty_seeking"]].min().min() >= 0 and traits.max(numeric_only=True).max() <= 1
    # every ground-truth user has 8 sessions of 15 items: the same activity and patience (the mid rank)
    assert traits["activity"].nunique() == 1 and traits["patience"].nunique() == 1


def test_held_out_split_is_by_time_per_user(ground_truth):
    from recoworld.users.calibration import split_by_time

    _, interactions = load_movielens(ground_truth)
    frame = split_by_time(interactions, CalibrationConfig(holdout=0.25))
    for _, user in frame.groupby("user_id"):
        assert user.loc[~user["test"], "timestamp"].max() <= user.loc[user["test"], "timestamp"].min()
        assert abs(user["test"].mean() - 0.25) < 0.02


def test_dynamics_fit_matches_training_sessions_and_reaches_runs(tmp_path):
    write_ground_truth(tmp_path / "long", n_users=150, length=60)  # sessions long enough never to cap the hazard's
    catalog, interactions = load_movielens(tmp_path / "long")
    # sessions that end by a constant hazard (1/8 per item) and users who come back every day
    frame = interactions.sort_values(["user_id", "timestamp"])
    day = frame["timestamp"] // 86_400
    position = frame.groupby([frame["user_id"], day]).cumcount()
    length = np.random.default_rng(0).geometric(1 / 8, size=len(frame))
    keep = position.to_numpy() < pd.Series(length).groupby([frame["user_id"].to_numpy(), day.to_numpy()]).transform("first").to_numpy()
    config = CalibrationConfig(**{**QUICK, "fit_dynamics": True, "dynamics_users": 100, "dynamics_rounds": 1})
    fit = calibrate(frame[keep], catalog, config)
    dyn = fit.result.dynamics
    assert dyn is not None and dyn.jsd["session_length"] < 0.1 and dyn.jsd["inter_visit_gap"] < 0.1, dyn
    for name, value in dyn.params.items():
        target = fit.result.env if name == "churn_window_days" else fit.result.user_model
        assert target[name] == value


def test_the_world_digest_follows_the_world_not_the_file_or_the_data_folder(fitted, tmp_path):
    from recoworld.users.calibration import world_sha256

    cal = copy.deepcopy(fitted[2])  # the fixture is shared by the module's other tests
    first = world_sha256(cal.save(tmp_path / "a.parquet"))
    cal.result.catalog = {**(cal.result.catalog or {}), "path": "/elsewhere/ml-latest-small"}
    cal.result.fidelity.auc["simulator"] += 0.5  # a figure about the world, not the world
    assert world_sha256(cal.save(tmp_path / "b.parquet")) == first
    cal.profiles[0].taste[0] += 1e-6
    assert world_sha256(cal.save(tmp_path / "c.parquet")) != first
    cal.result.user_model["w_taste"] = cal.result.user_model.get("w_taste", 1.0) * 2
    assert world_sha256(cal.save(tmp_path / "d.parquet")) != first


def test_cli_calibrates_a_folder_and_scenarios_and_the_env_use_every_fitted_parameter(ground_truth, tmp_path):
    from typer.testing import CliRunner

    from recoworld.cli import app

    out = tmp_path / "cal.parquet"
    result = CliRunner().invoke(app, ["calibrate", str(ground_truth), "--out", str(out), *QUICK_CLI])
    assert result.exit_code == 0, result.output
    assert "AUC" in result.output and out.is_file()
    cal = load_calibration(out)
    cal.result.env["churn_window_days"] = 9.0
    cal.save(out)
    config = {"catalog": {"source": "movielens", "path": str(ground_truth)}, "users": {"from_calibration": str(out), "n_users": 50},
              "env": {"num_candidates": 50, "slate_size": 5, "horizon_days": 3}, "recommenders": [{"name": "greedy"}]}
    scenario = load_scenario(config)
    for name, value in cal.result.user_model.items():
        assert getattr(scenario.user_model, name) == pytest.approx(value), name
    assert scenario.env.churn_window_days == 9 and scenario.catalog.item_vectors == str(out.resolve())
    explicit = load_scenario({**config, "user_model": {"w_taste": 1.25}})
    assert explicit.user_model.w_taste == 1.25  # what the scenario sets wins over the fit

    from recoworld.agents.baselines import GreedyRelevance
    from recoworld.runs.runner import run_population
    from recoworld.world.simulation import build_catalog

    world = build_catalog(scenario.catalog, scenario.seed)
    assert np.allclose(world.embeddings[: len(cal.items.vectors)], cal.items.vectors, atol=1e-6)  # the learned item space
    assert np.allclose(world.quality, cal.items.quality, atol=1e-6)
    res = run_population(scenario, GreedyRelevance())
    assert len(res.totals["click"]) == 50 and res.summary()["ctr"] > 0

    env = gym.make("RecoWorld-v0", config=config)
    env.reset(seed=3)
    user = env.unwrapped.sim.profiles[0]
    assert user.segment == "calibrated" and user.user_id in {p.user_id for p in cal.profiles}
    assert env.unwrapped.sim.model.params.w_taste == pytest.approx(cal.result.user_model["w_taste"])
    # the user arrives with their training period's topic history: it seeds topic exposure (novelty)
    assert user.topic_history and user.topic_history == {p.user_id: p for p in cal.profiles}[user.user_id].topic_history
    world_env = env.unwrapped.sim
    from recoworld.world.kernel import EXPOSURE

    exposure = world_env.users.topic_state[0, EXPOSURE]
    for name, n in user.topic_history.items():
        assert exposure[world_env.catalog.topic_names.index(name)] == n
    env.step(env.action_space.sample())

    with pytest.raises(ScenarioError, match="from_calibration"):
        load_scenario({**config, "seed": 5})  # another seed is another catalog
    with pytest.raises(ScenarioError, match="users.from_calibration"):
        load_scenario({**config, "users": {"from_calibration": str(tmp_path / "missing.parquet")}})


def test_change_the_data_and_the_calibrated_run_changes(tmp_path):
    from recoworld.agents.baselines import GreedyRelevance
    from recoworld.runs.runner import run_population

    totals = []
    for seed in (0, 1):
        folder = tmp_path / f"data{seed}"
        write_ground_truth(folder, n_users=80, sessions=4, seed=0)
        ratings = pd.read_csv(folder / "ratings.csv")
        if seed:  # the same users and items, other labels: a different world
            ratings["rating"] = np.where(np.random.default_rng(1).random(len(ratings)) < 0.8, 5.0, 2.0)
            ratings.to_csv(folder / "ratings.csv", index=False)
        fit = calibrate_dataset(folder, config=CalibrationConfig(**QUICK))
        fit.save(folder / "cal.parquet")
        scenario = load_scenario({"catalog": {"source": "movielens", "path": str(folder)},
                                  "users": {"from_calibration": str(folder / "cal.parquet"), "n_users": 40},
                                  "env": {"num_candidates": 40, "slate_size": 5, "horizon_days": 3}})
        totals.append(run_population(scenario, GreedyRelevance()).summary()["ctr"])
    assert totals[1] > totals[0] + 0.1  # users who like 80% of what they rated click far more


def test_generic_interactions_with_watch_ratios_and_atomic_files_calibrate(tmp_path):
    synth = generate_catalog(SyntheticCatalogConfig(n_items=200, n_topics=5), seed=1)
    items = synth.to_frame()
    items.to_csv(tmp_path / "items.csv", index=False)
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", items["item_id"][i], 1_700_000_000 + 60 * k, float(rng.gamma(2.0, 1.0)))
            for u in range(40) for k, i in enumerate(rng.integers(0, len(items), 30))]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "watch_ratio"])
    inter.to_csv(tmp_path / "inter.csv", index=False)
    cal = calibrate_dataset(tmp_path / "inter.csv", items=tmp_path / "items.csv", config=CalibrationConfig(**QUICK))
    assert cal.result.fidelity.n_test > 0 and len(cal.profiles) == 40
    with pytest.raises(ValueError, match="--items"):
        calibrate_dataset(tmp_path / "inter.csv")
    atomic = tmp_path / "toy"
    atomic.mkdir()
    inter.assign(rating=np.where(inter["watch_ratio"] > 2, 5.0, 2.0)).rename(
        columns={"user_id": "user_id:token", "item_id": "item_id:token", "rating": "rating:float", "timestamp": "timestamp:float"}
    )[["user_id:token", "item_id:token", "rating:float", "timestamp:float"]].to_csv(atomic / "toy.inter", sep="\t", index=False)
    cal = calibrate_dataset(atomic, config=CalibrationConfig(**QUICK))
    assert cal.result.catalog["source"] == "dataset" and len(cal.profiles) == 40


def test_held_out_replay_scores_any_user_backend(fitted):
    import json

    from tests.users.test_llm_users import decision

    from recoworld.llm.scripted import ScriptedModel
    from recoworld.users.calibration import replay_interactions
    from recoworld.stats import jensen_shannon

    catalog, interactions, fit = fitted
    parametric = fit.result.replays[0]
    assert parametric.backend == "parametric" and 0.3 < parametric.f1 <= 1.0
    assert parametric.jsd["topic_mix"] < 0.05  # calibrated tastes engage with the right topics
    # an LLM user that engages with everything it sees: every real engagement it reached is recalled
    model = ScriptedModel(lambda messages, schema: json.loads(json.dumps(decision(messages, click=tuple(range(5))))))
    eager = replay_interactions(interactions, catalog, fit, backend="llm", language_model=model, config=CalibrationConfig(**QUICK))
    assert eager.backend == "llm" and eager.recall == pytest.approx(1.0) and eager.precision < 0.9
    assert jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert jensen_shannon(np.array([2, 3]), np.array([4, 6])) == pytest.approx(0.0)


def test_calibration_named_users_parquet_and_relative_paths_work_from_any_directory(ground_truth, tmp_path, monkeypatch):
    """The two traps: the run folder's own users.parquet never shadows the calibration, and the catalog
    path the calibration stores does not depend on the directory it ran from."""
    import json

    from recoworld.evaluation import RunLogs
    from recoworld.evaluation.report import write_report
    from recoworld.runs.runner import PopulationRun

    work = tmp_path / "work"
    work.mkdir()
    os.symlink(ground_truth, work / "data")
    monkeypatch.chdir(work)
    fit = calibrate_dataset(Path("data"), config=CalibrationConfig(**QUICK))  # a relative dataset path
    fit.save("users.parquet")
    assert Path(fit.result.catalog["path"]).is_absolute()
    config = {"catalog": {"source": "movielens", "path": "data"}, "users": {"from_calibration": "users.parquet", "n_users": 30},
              "env": {"num_candidates": 30, "slate_size": 5, "horizon_days": 2}, "recommenders": [{"name": "greedy"}]}
    PopulationRun(load_scenario(config), output=Path("run")).run()
    assert (Path("run") / "users.parquet").is_file()  # the run's own users table, same name
    monkeypatch.chdir(tmp_path)  # another directory
    paths = write_report([RunLogs.load(work / "run")], tmp_path / "report")
    html = paths.html.read_text()
    fidelity = html.split('<section id="fidelity">', 1)[1].split("</section>", 1)[0]
    assert "Held-out engagement prediction" in fidelity and "popularity" in fidelity and "action F1" in fidelity
    data = json.loads(paths.metrics.read_text())
    (run_fit,) = data["fidelity"].values()
    assert run_fit["fidelity"]["auc"]["simulator"] == pytest.approx(fit.result.fidelity.auc["simulator"])
    assert load_scenario(tmp_path / "work" / "run" / "scenario.yaml").users.from_calibration == str(work / "users.parquet")
