"""The selection stage: which items users pick to rate, fitted beside liking and combined with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recoworld.stats import auc
from recoworld.users.calibration import CalibrationConfig
from recoworld.users.calibration.fit import Prepared
from recoworld.users.calibration.mf import fit_logistic_mf
from recoworld.users.calibration.selection import combine, fit_selection, sample_unrated, selection_features
from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog

CONFIG = CalibrationConfig(factors=[8], l2=[0.1], recency=[0.0], fit_dynamics=False)


@pytest.fixture(scope="module")
def prep():
    """Users rate famous items of their own topic far more often than the rest; they like half of them."""
    catalog = generate_catalog(SyntheticCatalogConfig(n_items=300, n_topics=5, n_creators=10), seed=0)
    rng = np.random.default_rng(0)
    fame = rng.pareto(1.5, len(catalog)) + 0.05
    rows = []
    for u in range(150):
        weight = fame * np.where(catalog.topic == u % 5, 4.0, 1.0)
        for j, item in enumerate(rng.choice(len(catalog), 30, replace=False, p=weight / weight.sum())):
            rows.append((f"u{u}", catalog.item_id[item], 5.0 if rng.random() < 0.5 else 2.0, 1_600_000_000 + j * 3_600))
    return Prepared(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]), catalog, CONFIG)


def test_sampled_unrated_items_are_never_items_the_user_touched():
    users, rows = np.array([0, 0, 1]), np.array([1, 2, 1])
    u, i, source = sample_unrated(users, rows, 5, 50, np.random.default_rng(0))
    touched = set(zip(users.tolist(), rows.tolist()))
    assert not any((a, b) in touched for a, b in zip(u.tolist(), i.tolist()))
    assert len(u) == 150 and (users[source] == u).all()
    again = sample_unrated(users, rows, 5, 50, np.random.default_rng(0))
    assert (again[1] == i).all()  # seeded


def test_selection_tells_held_out_rated_items_from_items_never_touched(prep):
    model, choice = fit_selection(prep)
    assert choice["factors"] == 8 and choice["valid_log_loss"] < np.log(2)
    test = ~prep.train
    touched = set(zip(prep.users.tolist(), prep.rows.tolist()))
    rng = np.random.default_rng(1)
    neg_u = prep.users[test]
    neg_i = rng.integers(0, len(prep.catalog), len(neg_u))
    fresh = np.array([(a, b) not in touched for a, b in zip(neg_u.tolist(), neg_i.tolist())])
    conformity = prep.traits["conformity"].to_numpy()
    u = np.concatenate([prep.users[test], neg_u[fresh]])
    i = np.concatenate([prep.rows[test], neg_i[fresh]])
    score = model.logit(u, i, selection_features(conformity, prep.popularity, u, i))
    label = np.concatenate([np.ones(int(test.sum())), np.zeros(int(fresh.sum()))])
    assert auc(label, score) > 0.75
    # famous items are the ones picked: the item effect (bias and popularity terms) follows popularity
    effect = model.item_bias + (model.weights[1] + model.weights[0] * conformity.mean()) * prep.popularity
    assert np.corrcoef(effect, prep.popularity)[0, 1] > 0.5


def test_combined_model_is_the_sum_of_the_two_logits():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 400), rng.integers(0, 30, 400)
    x = rng.random((400, 6))
    y = (rng.random(400) < 0.4).astype(float)
    like, _, _ = fit_logistic_mf(users, items, y, 20, 30, factors=4, x=x, epochs=20)
    sel, _, _ = fit_logistic_mf(users, items, 1 - y, 20, 30, factors=3, x=x[:, :2], epochs=20, seed=1)
    both = combine(like, sel)
    assert both.user_factors.shape == (20, 7)
    assert np.allclose(both.logit(users, items, x), like.logit(users, items, x) + sel.logit(users, items, x[:, :2]))
