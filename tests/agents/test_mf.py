"""Matrix factorisation retrained on impression logs: what a user of the baseline relies on."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from recoworld.agents import GreedyRelevance, UserView, make_recommender
from recoworld.agents.mf import MatrixFactorization, implicit_als
from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog
from recoworld.users.instructions import NO_TOPIC

X, Y = 0, 1  # group A likes topic X and skips topic Y; group B the reverse
SMALL = {"factors": 8, "iterations": 6}


@pytest.fixture(scope="module")
def catalog():
    return generate_catalog(SyntheticCatalogConfig(n_items=300, n_topics=4, n_creators=20), seed=0)


def make_view(catalog, user_ids, candidates, est_taste=None, consumed=None, slate_size=5) -> UserView:
    candidates = np.asarray(candidates, dtype=np.int64)
    b, m = candidates.shape
    t, d = catalog.n_topics, catalog.embeddings.shape[1]
    return UserView(
        catalog=catalog,
        candidates=candidates,
        slate_size=slate_size,
        user_ids=list(user_ids),
        est_taste=np.zeros((b, d), dtype=np.float32) if est_taste is None else est_taste,
        click_topics=np.zeros((b, t)),
        shown_topics=np.zeros((b, t)),
        consumed=np.zeros((b, m), dtype=bool) if consumed is None else consumed,
        instr_more=np.full(b, NO_TOPIC),
        instr_less=np.full(b, NO_TOPIC),
        instr_surprise=np.zeros(b, dtype=bool),
        session_step=np.zeros(b, dtype=np.int64),
        day=np.zeros(b, dtype=np.int64),
        history_items=np.full((b, 4), -1),
        history_engagement=np.zeros((b, 4)),
    )


def two_group_logs(catalog, n_per_group: int = 20, seed: int = 0) -> pd.DataFrame:
    """A users click (and sometimes like) topic X and skip topic Y; B users do the reverse."""
    rng = np.random.default_rng(seed)
    x_items, y_items = catalog.topic_members[X], catalog.topic_members[Y]
    rows = []
    for group, liked, skipped in (("a", x_items, y_items), ("b", y_items, x_items)):
        for k in range(n_per_group):
            user = f"{group}{k}"
            for it in rng.choice(liked, 25, replace=False):
                action = "like" if rng.random() < 0.3 else "click"
                rows.append((user, catalog.item_id[it], action, float(rng.uniform(10, 120))))
            for it in rng.choice(skipped, 25, replace=False):
                rows.append((user, catalog.item_id[it], "skip", 0.0))
            for it in rng.choice(len(catalog), 10, replace=False):  # never reached: ignored
                rows.append((user, catalog.item_id[it], "unseen", 0.0))
    return pd.DataFrame(rows, columns=["user", "item", "action", "watch_seconds"])


@pytest.fixture(scope="module")
def logs(catalog):
    return two_group_logs(catalog)


@pytest.fixture(scope="module")
def trained(logs):
    mf = MatrixFactorization(**SMALL, seed=0)
    mf.retrain(logs)
    return mf


def logged_candidates(catalog, logs, n_per_topic: int = 10) -> np.ndarray:
    """Items of topics X and Y that somebody engaged with (an item everyone skipped has nothing to learn from)."""
    seen = set(logs.loc[logs.action.isin(["click", "like"]), "item"])
    pick = [[i for i in catalog.topic_members[t] if catalog.item_id[i] in seen][:n_per_topic] for t in (X, Y)]
    return np.array(pick[0] + pick[1])


def test_learns_each_groups_topic_from_the_logs(catalog, logs, trained):
    cands = logged_candidates(catalog, logs)
    users = [f"a{k}" for k in range(20)] + [f"b{k}" for k in range(20)]
    view = make_view(catalog, users, np.tile(cands, (len(users), 1)))
    scores = trained.scores(view)
    is_x = catalog.topic[cands] == X
    # share of (X, Y) candidate pairs each user's scores put in that user's group's order
    x_first = (scores[:, is_x][:, :, None] > scores[:, ~is_x][:, None, :]).mean((1, 2))
    assert (x_first[:20] > 0.8).all() and (x_first[20:] < 0.2).all()
    assert x_first[:20].mean() > 0.95 and x_first[20:].mean() < 0.05
    slates = trained.slate(view).positions
    assert is_x[slates[:20]].all() and not is_x[slates[20:]].any()


def test_consumed_items_are_pushed_down(catalog, logs, trained):
    cands = logged_candidates(catalog, logs)
    is_x = catalog.topic[cands] == X
    consumed = np.zeros((1, len(cands)), dtype=bool)
    consumed[0, np.flatnonzero(is_x)[:3]] = True
    view = make_view(catalog, ["a0"], cands[None], consumed=consumed)
    order = np.argsort(-trained.scores(view)[0], kind="stable")
    assert set(order[-3:]) == set(np.flatnonzero(consumed[0]))


def test_before_any_retrain_it_is_greedy_relevance(catalog):
    rng = np.random.default_rng(1)
    cands = rng.integers(0, len(catalog), size=(6, 40))
    taste = rng.normal(size=(6, catalog.embeddings.shape[1])).astype(np.float32)
    consumed = rng.random((6, 40)) < 0.2
    view = make_view(catalog, [f"u{k}" for k in range(6)], cands, est_taste=taste, consumed=consumed)
    mf, greedy = MatrixFactorization(popularity_weight=0.3), GreedyRelevance(popularity_weight=0.3)
    assert not mf.trained
    np.testing.assert_array_equal(mf.scores(view), greedy.scores(view))
    np.testing.assert_array_equal(mf.slate(view).positions, greedy.slate(view).positions)


def test_unknown_users_and_items_fall_back(catalog, logs, trained):
    known = set(logs.loc[logs.action != "unseen", "item"])
    unknown_items = [i for i in range(len(catalog)) if catalog.item_id[i] not in known][:5]
    assert unknown_items, "the logs cover the whole catalog; the test needs some unlogged items"
    cands = np.concatenate([logged_candidates(catalog, logs, 5), unknown_items])
    rng = np.random.default_rng(2)
    taste = rng.normal(size=(2, catalog.embeddings.shape[1])).astype(np.float32)
    view = make_view(catalog, ["a0", "stranger"], np.tile(cands, (2, 1)), est_taste=taste)
    scores = trained.scores(view)
    assert np.isfinite(scores).all()
    # a user the last retrain never saw gets the greedy ranking
    greedy = GreedyRelevance().scores(view)
    np.testing.assert_allclose(scores[1], greedy[1])
    # a known user's unlogged items rank by greedy relevance among themselves
    tail = slice(len(cands) - len(unknown_items), None)
    assert (np.argsort(scores[0, tail]) == np.argsort(greedy[0, tail])).all()


def test_catalog_growth_maps_new_rows(catalog, logs, trained):
    class Growing:  # the part of a catalog the row map reads: ids, appended to, rows never move
        def __init__(self, ids):
            self.item_id = np.asarray(ids, dtype=object)

        def __len__(self):
            return len(self.item_id)

    grown = Growing(catalog.item_id[:200])
    first = trained._factor_rows(grown).copy()
    grown.item_id = np.concatenate([catalog.item_id, np.array(["brand-new"], dtype=object)])
    rows = trained._factor_rows(grown)
    np.testing.assert_array_equal(rows[:200], first)
    assert rows[-1] == -1
    fresh = MatrixFactorization(**SMALL)
    fresh.retrain(logs)
    np.testing.assert_array_equal(rows, fresh._factor_rows(grown))


def test_empty_logs_leave_the_model_untrained(logs):
    mf = MatrixFactorization(**SMALL)
    mf.retrain(logs.iloc[:0])
    assert not mf.trained
    mf.retrain(pd.DataFrame())
    assert not mf.trained
    mf.retrain(logs.assign(action="unseen"))  # nobody reached any item
    assert not mf.trained
    mf.retrain(logs)
    assert mf.trained
    mf.retrain(logs.iloc[:0])  # a refit on nothing forgets
    assert not mf.trained


def test_bad_logs_raise_one_line_errors(logs):
    mf = MatrixFactorization(**SMALL)
    with pytest.raises(ValueError, match="missing required column 'action'") as err:
        mf.retrain(logs.drop(columns="action"))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="column 'action' has unknown value 'clicked'"):
        mf.retrain(logs.assign(action="clicked"))


def test_same_seed_same_factors_and_row_order_does_not_matter(logs):
    one, two, other = MatrixFactorization(**SMALL, seed=3), MatrixFactorization(**SMALL, seed=3), MatrixFactorization(**SMALL, seed=4)
    for mf in (one, two, other):
        mf.retrain(logs)
    np.testing.assert_array_equal(one.user_factors, two.user_factors)
    np.testing.assert_array_equal(one.item_factors, two.item_factors)
    assert not np.array_equal(one.item_factors, other.item_factors)
    shuffled = MatrixFactorization(**SMALL, seed=3)
    shuffled.retrain(logs.sample(frac=1.0, random_state=0))
    np.testing.assert_array_equal(shuffled.user_ids, one.user_ids)
    np.testing.assert_allclose(shuffled.user_factors, one.user_factors, atol=1e-9)


def test_duplicate_rows_add_up(logs):
    doubled = MatrixFactorization(**SMALL, alpha=5.0)
    doubled.retrain(pd.concat([logs, logs], ignore_index=True))
    stronger = MatrixFactorization(**SMALL, alpha=10.0)
    stronger.retrain(logs)
    np.testing.assert_allclose(doubled.item_factors, stronger.item_factors, atol=1e-9)


def test_pickle_round_trip_scores_identically(catalog, logs, trained):
    cands = np.random.default_rng(5).integers(0, len(catalog), size=(3, 30))
    view = make_view(catalog, ["a1", "b1", "stranger"], cands)
    before = trained.scores(view)  # fills the row-map cache, which is not pickled
    clone = pickle.loads(pickle.dumps(trained))
    np.testing.assert_array_equal(clone.scores(view), before)


def test_als_half_steps_match_the_closed_form():
    rng = np.random.default_rng(0)
    n_users, n_items, k, lam = 7, 9, 3, 0.5
    mask = rng.random((n_users, n_items)) < 0.4
    u, i = np.nonzero(mask)
    pref = (rng.random(len(u)) < 0.5).astype(float)
    weight = rng.uniform(0.5, 5.0, len(u))
    x, y = implicit_als(u, i, pref, weight, n_users, n_items, k, lam, 1, np.random.default_rng(9))

    p, c = np.zeros((n_users, n_items)), np.ones((n_users, n_items))
    p[u, i], c[u, i] = pref, 1.0 + weight
    y0 = np.random.default_rng(9).normal(0.0, 0.01, size=(n_items, k))

    def half(fixed, conf, prefs):
        return np.stack([np.linalg.solve(fixed.T @ (cr[:, None] * fixed) + lam * np.eye(k), fixed.T @ (cr * pr)) for cr, pr in zip(conf, prefs)])

    x1 = half(y0, c, p)
    np.testing.assert_allclose(x, x1, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(y, half(x1, c.T, p.T), rtol=1e-4, atol=1e-8)


def test_registry_builds_mf_and_rejects_unknown_parameters():
    mf = make_recommender("mf", {"factors": 4, "iterations": 2, "alpha": 20.0}, seed=1)
    assert isinstance(mf, MatrixFactorization) and mf.name == "mf"
    assert (mf.factors, mf.iterations, mf.alpha) == (4, 2, 20.0)
    with pytest.raises(ValueError, match="recommender 'mf': bad parameters.*rank"):
        make_recommender("mf", {"rank": 4})
    with pytest.raises(ValueError, match="mf.factors"):
        make_recommender("mf", {"factors": 0})
