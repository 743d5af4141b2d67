"""The observation of the next decision, as the compiled step writes it (layout in
``recoworld.world.observation``): what the platform can see, never the hidden mindset.

Imports: numpy, numba, ``recoworld.users`` (jit, layout, instructions), ``recoworld.world.layout``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from recoworld.users.instructions import NO_TOPIC
from recoworld.users.jit import FASTMATH, has_consumed
from recoworld.users.layout import LESS, MORE, SURPRISE
from recoworld.world.layout import (
    P_CLICK, P_SHOWN, S_CLICKS, S_DAYS_SINCE, S_LAST_CTR, S_LAST_LENGTH, S_REVIEWED, S_SESSIONS, S_SKIP_STREAK,
)


CANDIDATE_FEATURE_COUNT = 8  # written per candidate after its topic one-hot (observation.CANDIDATE_FEATURES)
USER_FEATURE_COUNT = 9  # observation.USER_FEATURES
FRESHNESS_DAYS = 30.0  # an item's freshness falls to 1/e at this age in days
FRESHNESS_AGES = 4096  # ages (days) tabulated; older items compute theirs


@njit(cache=True, fastmath=FASTMATH)
def freshness(age: int) -> float:
    """exp(-age / FRESHNESS_DAYS): the freshness feature of an item ``age`` days old."""
    return math.exp(-age / FRESHNESS_DAYS)


@njit(cache=True, fastmath=FASTMATH)
def freshness_table(n: int) -> np.ndarray:
    """(n,) float32: :func:`freshness` of ages 0 .. n - 1, as the observation stores it."""
    out = np.empty(n, dtype=np.float32)
    for age in range(n):
        out[age] = freshness(age)
    return out


_FRESHNESS = freshness_table(FRESHNESS_AGES)  # a constant of the compiled kernel: one exp per age, not per candidate


@njit(cache=True, fastmath=FASTMATH)
def observe_kernel(rows, cands, clock, cat, users, log, obs) -> None:
    """Fill the observation buffers ``obs`` (:class:`recoworld.world.layout.ObsArrays`), row i for user
    ``rows[i]``; ``cands`` is the (B, M) candidate table of all users."""
    observe_rows(0, len(rows), rows, cands, clock, cat, users, log, obs)


@njit(cache=True, fastmath=FASTMATH)
def observe_rows(lo: int, hi: int, rows, cands, clock, cat, users, log, obs) -> None:
    """Rows ``lo:hi`` of the observation (the parallel step fills each chunk of users on its thread)."""
    for i in range(lo, hi):
        observe_user(i, rows[i], cands, clock, cat, users, log, obs)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def observe_user(i: int, r: int, cands, clock, cat, users, log, obs) -> None:
    """Row ``i`` of the observation: topic shares, candidate features (topic one-hot, CANDIDATE_FEATURES; in the
    compact layout the CANDIDATE_FEATURES alone, the topic's index in ``obs.candidate_topics``), user features, the
    pending instruction. Only the one-hot slots and the instruction row are cleared: every other entry is written."""
    n_topics = log.topics.shape[2]
    dim = log.est_taste.shape[1]
    compact = obs.candidate_topics.shape[0] > 0
    hot = 0 if compact else n_topics  # the one-hot's width, before a candidate's features
    width = hot + CANDIDATE_FEATURE_COUNT
    feats, topics_out, user, scale = obs.candidates, obs.topics, obs.user, obs.scale
    for q in range(obs.instruction.shape[1]):
        obs.instruction[i, q] = 0.0
    norm = 0.0
    for d in range(dim):
        norm += log.est_taste[r, d] * log.est_taste[r, d]
    norm = math.sqrt(norm)
    inv = 1.0 / max(norm, 1e-9)
    click_total = max(log.topics[r, P_CLICK].sum(), 1e-6)
    shown_total = max(log.topics[r, P_SHOWN].sum(), 1e-6)
    for t in range(n_topics):
        topics_out[i, t] = log.topics[r, P_CLICK, t] / click_total
        topics_out[i, n_topics + t] = log.topics[r, P_SHOWN, t] / shown_total
    day = clock.day[r]
    taste = log.est_taste[r]
    for c in range(cands.shape[1]):  # the affinities first, in a loop of loads only (their memory reads overlap)
        row = cat.embeddings[cands[r, c]]
        aff = np.float32(0.0)
        for d in range(dim):
            aff += row[d] * taste[d]
        feats[i, c * width + hot + 5] = min(1.0, max(-1.0, aff * inv))
    for c in range(cands.shape[1]):
        it = cands[r, c]
        t = cat.topic[it]
        base = c * width
        if compact:
            obs.candidate_topics[i, c] = t
        else:
            for q in range(n_topics):  # a loop, not a slice assignment: a slice builds a view per candidate
                feats[i, base + q] = 0.0
            feats[i, base + t] = 1.0
        f = base + hot
        feats[i, f] = cat.quality[it]
        feats[i, f + 1] = cat.popularity[it]
        feats[i, f + 2] = cat.duration_scaled[it]
        age = max(day - cat.created_day[it], 0)
        feats[i, f + 3] = _FRESHNESS[age] if age < FRESHNESS_AGES else freshness(age)
        feats[i, f + 4] = has_consumed(users.consumed, r, it)
        feats[i, f + 6] = topics_out[i, t]
        feats[i, f + 7] = topics_out[i, n_topics + t]
    st = log.stats[r]
    user[i, 0] = clock.session_step[r] / scale[0]
    user[i, 1] = st[S_DAYS_SINCE] / scale[1]
    user[i, 2] = day / scale[2]
    user[i, 3] = st[S_SESSIONS] / scale[2]
    user[i, 4] = st[S_CLICKS] / max(st[S_REVIEWED], 1.0)
    user[i, 5] = st[S_LAST_CTR]
    user[i, 6] = st[S_LAST_LENGTH] / scale[0]
    user[i, 7] = st[S_SKIP_STREAK] / (3.0 * scale[3])
    user[i, 8] = 1.0 - math.exp(-norm)
    for q in range(user.shape[1]):
        user[i, q] = min(1.0, max(0.0, user[i, q]))
    instr = users.instr[r]
    if instr[MORE] != NO_TOPIC:
        obs.instruction[i, instr[MORE]] = 1.0
    if instr[LESS] != NO_TOPIC:
        obs.instruction[i, n_topics + instr[LESS]] = 1.0
    obs.instruction[i, 2 * n_topics] = instr[SURPRISE]
