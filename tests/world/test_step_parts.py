"""The world's compiled parts of the step on hand-made cases (session end, platform log, retrieval),
and the fused step's item utility against its formula on a tiny hand-made world."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recoworld.users import ParametricUserParams
from recoworld.users import layout as L
from recoworld.users.instructions import NO_TOPIC
from recoworld.world import kernel as K
from recoworld.world import layout as W
from recoworld.world.platform_log import log_shown
from recoworld.world.retrieval import retrieve_kernel
from recoworld.world.session import end_slate

T, D = 2, 2  # topics, embedding dimensions


def params(**overrides: float) -> np.ndarray:
    return ParametricUserParams(**overrides).as_vector()


def world(n_items: int = 2, history: int = 4):
    """One user, an empty platform log and a clock at day 0."""
    mind = np.zeros((1, 4))
    mind[0, L.SATISFACTION] = mind[0, L.TRUST] = 0.5
    users = L.UserArrays(
        np.array([[1.0, 0.0]], np.float32), np.zeros((1, D), np.float32), np.full((1, 8), 0.5), mind,
        np.zeros((1, 5, T)), np.array([[NO_TOPIC, NO_TOPIC, 0, -1, 0]], dtype=np.int64),
        np.zeros((1, (n_items + 7) // 8), np.uint8),
    )
    stats = np.zeros((1, 7))
    stats[0, W.S_SESSIONS] = 1.0
    log = W.LogArrays(np.zeros((1, D), np.float32), np.zeros((1, 2, T)), np.full((1, history), -1, np.int64),
                      np.zeros((1, history), np.float32), np.zeros(1, np.int64), stats)
    clock = W.ClockArrays(np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.int64), np.zeros(1, bool), np.zeros(1, bool))
    return users, log, clock


def even_return_params() -> np.ndarray:
    """Parameters under which a user comes back on any day with chance 1/2."""
    return params(return_bias=0.0, return_satisfaction=0.0, return_trust=0.0, return_activity=0.0)


ENV = np.array([5.0, 3.0, 100.0])  # max slates per session, churn window, horizon


def test_a_session_goes_on_until_the_user_leaves_or_hits_the_slate_limit():
    users, log, clock = world()
    ou = np.zeros(W.USER_OUTPUTS)
    end_slate(even_return_params(), ENV, users, log, clock, 0, False, 0.5, ou)
    assert clock.session_step[0] == 1 and ou[W.U_ENDED] == 0.0
    clock.session_step[0] = 4
    end_slate(even_return_params(), ENV, users, log, clock, 0, False, 0.5, ou)
    assert ou[W.U_ENDED] == 1.0 and clock.session_step[0] == 0


def test_a_user_who_leaves_returns_after_the_gap_and_the_log_starts_a_new_session():
    users, log, clock = world()
    log.stats[0, W.S_REVIEWED], log.stats[0, W.S_CLICKS] = 10.0, 4.0
    users.mind[0, L.FATIGUE] = 3.0
    clock.session_step[0] = 2
    ou = np.zeros(W.USER_OUTPUTS)
    end_slate(even_return_params(), ENV, users, log, clock, 0, True, 0.6, ou)  # gap ceil(log .4 / log .5) = 2
    assert ou[W.U_GAP] == 2.0 and ou[W.U_RETURN] == 0.5 and ou[W.U_CHURN] == 0.0
    assert clock.day[0] == 2 and clock.days_active[0] == 2 and clock.session_step[0] == 0 and not clock.churned[0]
    st = log.stats[0]
    assert st[W.S_LAST_CTR] == 0.4 and st[W.S_LAST_LENGTH] == 3 and st[W.S_DAYS_SINCE] == 2 and st[W.S_SESSIONS] == 2
    assert st[W.S_REVIEWED] == 0 and users.mind[0, L.FATIGUE] == 0.0  # rested


def test_a_gap_beyond_the_churn_window_is_churn_and_one_beyond_the_horizon_finishes():
    users, log, clock = world()
    ou = np.zeros(W.USER_OUTPUTS)
    end_slate(even_return_params(), ENV, users, log, clock, 0, True, 0.99, ou)  # gap 7 > 3
    assert clock.churned[0] and ou[W.U_CHURN] == 1.0 and ou[W.U_GAP] == 7.0 and clock.day[0] == 0
    users, log, clock = world()
    clock.day[0] = 99
    ou = np.zeros(W.USER_OUTPUTS)
    end_slate(even_return_params(), ENV, users, log, clock, 0, True, 0.6, ou)
    assert clock.finished[0] and ou[W.U_FINISHED] == 1.0 and not clock.churned[0]


def test_the_history_ring_buffer_keeps_the_last_items_reviewed():
    _, log, _ = world(n_items=8, history=2)
    for it, eng in ((5, 0.0), (6, 1.5), (7, 0.25)):
        log_shown(log, 0, it, it % T, eng)
    assert log.hist_items[0].tolist() == [7, 6] and log.hist_next[0] == 1
    assert log.topics[0, W.P_SHOWN].tolist() == [1.0, 2.0]


def test_retrieval_is_seeded_and_stays_in_the_catalog():
    a, b = np.zeros((3, 50), np.int64), np.zeros((3, 50), np.int64)
    seeds = np.array([1, 2, 3], dtype=np.uint64)
    retrieve_kernel(np.arange(3), seeds, a, 7)
    retrieve_kernel(np.arange(3), seeds, b, 7)
    assert (a == b).all() and a.min() >= 0 and a.max() == 6 and not (a[0] == a[1]).all()


def test_candidates_are_distinct_items_when_the_catalog_allows():
    """100 uniform draws from 150 items would repeat an item in almost every row; retrieval never does."""
    cand = np.zeros((200, 100), np.int64)
    retrieve_kernel(np.arange(200), np.arange(1, 201, dtype=np.uint64), cand, 150)
    assert all(len(set(row)) == 100 for row in cand.tolist()) and cand.max() < 150
    assert len(np.unique(cand)) == 150  # every item reachable
    exact = np.zeros((5, 7), np.int64)  # as many candidates as items: each row is the whole catalog
    retrieve_kernel(np.arange(5), np.arange(1, 6, dtype=np.uint64), exact, 7)
    assert all(sorted(row) == list(range(7)) for row in exact.tolist())


def test_fused_step_utility_matches_its_formula_on_a_hand_made_world():
    p = params(noise_sd=0.0)
    users, log, clock = world()
    emb = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    cat = W.CatalogArrays(np.array([0, 1]), emb, emb.mean(0), np.array([0.9, 0.2]), np.array([0.5, 0.1]),
                          np.array([60.0, 60.0]), np.zeros(2), np.zeros(2, np.int64))
    slates = np.array([[0, 1]])
    out = W.Outputs(np.empty((1, 2, L.ITEM_OUTPUTS)), np.empty((1, W.USER_OUTPUTS)))
    none = np.zeros((0, 0), np.float32)
    K.world_step(
        np.array([0]), slates, np.array([12345], np.uint64), p, ENV, np.ones(W.N_COMPONENTS), users, cat, log, clock,
        np.zeros((1, 2), np.int64), out, W.ObsArrays(np.ones(4), none, none, none, none, none),
        L.Decisions(np.ones(1, bool), np.zeros((1, 2, 5)), np.full(1, -1, np.int64)),  # forced: skip both, stay
    )
    conformity, novelty_seeking = 0.5, 0.5
    first = p[L.W_TASTE] * 1.0 + p[L.W_QUALITY] * 0.4 + p[L.W_POPULARITY] * conformity * 0.5 + p[L.W_NOVELTY] * novelty_seeking
    assert out.items[0, 0, L.O_UTILITY] == pytest.approx(first)
    # the second item: another topic, less taste and quality; the user is tired by one item now
    fatigue = p[L.FATIGUE_PER_ITEM]
    second = p[L.W_QUALITY] * -0.3 + p[L.W_POPULARITY] * conformity * 0.1 + p[L.W_NOVELTY] * novelty_seeking - p[L.W_FATIGUE] * fatigue
    assert out.items[0, 1, L.O_UTILITY] == pytest.approx(second)
    assert out.items[0, :, L.O_ACTION].tolist() == [L.A_SKIP, L.A_SKIP] and out.users[0, W.U_SKIPS] == 2
    assert math.isnan(out.users[0, W.U_COMPLIANCE])
