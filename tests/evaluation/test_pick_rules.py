"""Baselines' pick rules in the 1:m protocol: tuned on the training period only, and able to reach a perfect F1."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.fidelity.baselines import BASELINES, register_baseline
from recoworld.fidelity.pick_rules import SIMULATED, best_share, best_threshold, refit_mf, top_share_picks, tune_pick_rules
from recoworld.fidelity.protocols import EVERY, discrimination
from recoworld.users.calibration import CalibrationConfig, write_ground_truth
from recoworld.users.calibration.fit import Prepared, fit_models
from recoworld.world.readers import load_movielens
from tests.users.test_calibration import flip_held_out_labels

QUICK = CalibrationConfig(factors=[8], l2=[0.1], recency=[0.0], fit_dynamics=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gt")
    write_ground_truth(folder, n_users=80, sessions=5)
    return load_movielens(folder)


def oracle(prep: Prepared):
    """A baseline that knows which items each user likes in the split's held-out part (0.6 vs 0.4)."""
    test = ~prep.train & (prep.y > 0)
    liked = set(zip(prep.users[test].tolist(), prep.rows[test].tolist()))
    return lambda users, items: np.array([0.6 if (u, i) in liked else 0.4 for u, i in zip(users.tolist(), items.tolist())])


def test_threshold_and_share_reach_f1_one_when_a_score_separates():
    rng = np.random.default_rng(0)
    label = rng.random(400) < 0.25
    score = np.where(label, rng.uniform(0.5, 0.9, 400), rng.uniform(0.1, 0.5, 400))
    threshold, f1 = best_threshold(score, label)
    assert f1 == pytest.approx(1.0) and ((score >= threshold) == label).all()
    groups = np.repeat(np.arange(100), 4)
    label = np.zeros(400, dtype=bool)
    label[np.arange(100) * 4 + rng.integers(0, 4, 100)] = True  # one liked item among 4 per list
    score = np.where(label, 0.3, 0.1) + rng.uniform(0, 0.05, 400)
    share, f1 = best_share(score, label, groups)
    assert share == pytest.approx(0.25) and f1 == pytest.approx(1.0)
    assert (top_share_picks(score, groups, share) == label).all()


def test_threshold_cuts_only_between_distinct_scores():
    score = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    label = np.array([True, True, False, False, False])
    threshold, f1 = best_threshold(score, label)
    assert threshold == pytest.approx(0.7) and f1 == pytest.approx(2 / 3)  # picking 0.5 would pick all three ties: F1 2·2/(4+2)


def test_tuned_rules_use_no_held_out_label_and_reach_f1_one_for_a_perfect_score(data):
    catalog, interactions = data
    register_baseline("oracle", oracle)
    try:
        prep = Prepared(interactions, catalog, QUICK)
        models = fit_models(prep)
        rules = tune_pick_rules(prep, models, (1, 3), max_per_user=10, seed=0)
        # every held-out label flipped: the same rules (thresholds, shares, validation F1)
        flipped = flip_held_out_labels(prep, interactions)
        prep2 = Prepared(flipped, catalog, QUICK)
        assert (prep2.y[~prep2.train] != prep.y[~prep.train]).all()
        models2 = fit_models(prep2)
        models2.scorers.pop("oracle")  # the oracle reads held-out labels by design; the others must not
        models.scorers.pop("oracle")
        rules_a = tune_pick_rules(prep, models, (1, 3), max_per_user=10, seed=0)
        rules_b = tune_pick_rules(prep2, models2, (1, 3), max_per_user=10, seed=0)
        assert set(rules_a[1]) >= {"mf", "popularity_rate", "popularity_count", "mf+selection", "popularity_rate+selection",
                                   SIMULATED}
        assert rules_a == rules_b
        models.scorers["oracle"] = oracle(prep)
        scores = discrimination(prep, None, models, {}, ratios=(1, 3), rules=rules)  # type: ignore[arg-type]
    finally:
        BASELINES.pop("oracle")
    for ratio, m in (("1:1", 1), ("1:3", 3)):
        s = scores[ratio]
        # tuned on the training period's own oracle (validation likes), applied to the held-out lists
        assert s["oracle (tuned threshold)"].f1 == pytest.approx(1.0) and s["oracle (tuned top share)"].f1 == pytest.approx(1.0)
        assert s["oracle"].f1 < 0.9  # Bernoulli draws of 0.6 / 0.4 miss
        assert s[EVERY].recall == 1.0 and s[EVERY].f1 == pytest.approx(2 / (2 + m), abs=0.02)
        assert {"mf (tuned threshold)", "popularity_count (tuned top share)", "mf+selection"} <= set(s)


@pytest.mark.parametrize("warm_start", [False, True])
def test_refits_with_the_chosen_setting_are_the_tuned_models(data, warm_start):
    """The rules are tuned on refits (the simulator's click model and the MF) from the seed's factors: with the
    setting their tuning chose, on the same rows, a refit is the tuned model itself after cold tuning, and the same
    model within the solver's tolerance after warm-started tuning (whose final fit starts from a grid fit)."""
    catalog, interactions = data
    prep = Prepared(interactions, catalog, QUICK.model_copy(update={"warm_start": warm_start}))
    models = fit_models(prep)
    simulator = refit_mf(prep, models.choice, with_features=True).predict(prep.users, prep.rows, prep.x)
    mf = refit_mf(prep, models.mf_choice).predict(prep.users, prep.rows)
    if not warm_start:
        np.testing.assert_allclose(simulator, models.predictions["simulator"], rtol=1e-9)
        np.testing.assert_allclose(mf, models.predictions["mf"], rtol=1e-9)
    for refitted, tuned in ((simulator, models.predictions["simulator"]), (mf, models.predictions["mf"])):
        assert np.corrcoef(refitted, tuned)[0, 1] > 0.9999 and np.median(np.abs(refitted - tuned)) < 1e-3
