"""SASRec as a fidelity baseline: fitted on training rows only, probabilities that mean something."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from recoworld.agents.sasrec import SASRecConfig  # noqa: E402
from recoworld.agents.sasrec_fidelity import engaged_sequences, sasrec_baseline  # noqa: E402
from recoworld.fidelity.baselines import BASELINES, use_baseline  # noqa: E402
from recoworld.users.calibration.mf import platt  # noqa: E402
from recoworld.stats import auc, log_loss  # noqa: E402
from recoworld.users.calibration import CalibrationConfig  # noqa: E402
from recoworld.users.calibration.fit import Prepared  # noqa: E402
from tests.users.test_calibration import flip_held_out_labels  # noqa: E402
from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog  # noqa: E402

TINY = SASRecConfig(max_len=20, hidden=32, blocks=1, heads=2, inner=64, dropout=0.1, epochs=30, batch_size=64, patience=3, lr=1e-2)
CONFIG = CalibrationConfig(factors=[8], l2=[0.1], recency=[0.0], fit_dynamics=False)


@pytest.fixture(scope="module")
def data():
    """Users rate random items and like (rating 5) those of their own topic, 90% of the time."""
    catalog = generate_catalog(SyntheticCatalogConfig(n_items=150, n_topics=5, n_creators=10), seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for u in range(200):
        topic = u % 5
        for j, item in enumerate(rng.integers(0, len(catalog), 40)):
            liked = (catalog.topic[item] == topic) == (rng.random() < 0.9)
            rows.append((f"u{u}", catalog.item_id[item], 5.0 if liked else 2.0, 1_600_000_000 + j * 3_600))
    return catalog, pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_engaged_sequences_keep_time_order_per_user():
    users = np.array([1, 0, 1, 0, 1])
    rows = np.array([10, 20, 11, 21, 12])
    keep = np.array([True, True, True, False, True])
    seqs = engaged_sequences(users, rows, keep, 3)
    assert [s.tolist() for s in seqs] == [[20], [10, 11, 12], []]


def test_platt_recovers_a_logistic_link():
    rng = np.random.default_rng(0)
    s = rng.normal(0, 1, 20_000)
    y = (rng.random(len(s)) < 1 / (1 + np.exp(-(2.0 * s - 0.5)))).astype(float)
    a, b = platt(s, y)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-0.5, abs=0.1)


def test_sasrec_baseline_scores_held_out_rows_from_training_labels_only(data):
    catalog, interactions = data
    prep = Prepared(interactions, catalog, CONFIG)
    score = sasrec_baseline(TINY)(prep)
    test = ~prep.train
    p = score(prep.users[test], prep.rows[test])
    assert p.shape == (int(test.sum()),) and (p > 0).all() and (p < 1).all()
    y = prep.y[test]
    # it learns the users' tastes from their engaged sequences, and its probabilities are calibrated
    assert auc(y, p) > 0.55
    assert log_loss(y, p) < log_loss(y, np.full(len(y), prep.y[prep.train].mean())) + 0.01
    # flipping every held-out label changes no prediction
    prep2 = Prepared(flip_held_out_labels(prep, interactions), catalog, CONFIG)
    assert (prep2.y[test] != y).all()
    assert np.allclose(sasrec_baseline(TINY)(prep2)(prep2.users[test], prep2.rows[test]), p)


def test_the_sasrec_plug_in_registers_once_by_name():
    try:
        use_baseline("sasrec", config=TINY)
        factory = BASELINES["sasrec"]
        use_baseline("sasrec", config=TINY)
        assert BASELINES["sasrec"] is factory
    finally:
        BASELINES.pop("sasrec", None)
