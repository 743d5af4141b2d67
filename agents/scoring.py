"""Compiled scoring kernels shared by the baselines: MMR slate building and the top-K of rows without ties
(candidate affinity is :meth:`recoworld.world.user_view.UserView.affinity`).

It reads item embeddings straight from the catalog by row, so a batch of 10k users × 100
candidates never materialises a (b, M, D) array.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recoworld.users.jit import FASTMATH, PARALLEL_USERS


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _mmr_one(emb, cands, scores, lam, k, pos, max_sim, taken):
    m = cands.shape[0]
    d = emb.shape[1]
    for j in range(m):
        max_sim[j] = -1.0
        taken[j] = False
    for s in range(k):
        best, best_val = -1, -np.inf
        for j in range(m):
            if taken[j]:
                continue
            val = lam * scores[j] - ((1.0 - lam) * max_sim[j] if s > 0 else 0.0)
            if val > best_val:
                best, best_val = j, val
        pos[s] = best
        taken[best] = True
        if s == k - 1:
            break
        picked = cands[best]
        for j in range(m):  # taken ones too (never read again), and a select, not a branch: fewer mispredicted jumps
            acc = np.float32(0.0)
            row = cands[j]
            for t in range(d):
                acc += emb[row, t] * emb[picked, t]
            max_sim[j] = acc if acc > max_sim[j] else max_sim[j]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _mmr_parallel(emb, cands, scores, lam, k, pos):
    for i in prange(cands.shape[0]):
        _mmr_one(emb, cands[i], scores[i], lam, k, pos[i], np.empty(cands.shape[1]), np.empty(cands.shape[1], dtype=np.bool_))


@njit(cache=True, fastmath=FASTMATH)
def _mmr_serial(emb, cands, scores, lam, k, pos):
    max_sim = np.empty(cands.shape[1])
    taken = np.empty(cands.shape[1], dtype=np.bool_)
    for i in range(cands.shape[0]):
        _mmr_one(emb, cands[i], scores[i], lam, k, pos[i], max_sim, taken)


def mmr_positions(embeddings: np.ndarray, candidates: np.ndarray, scores: np.ndarray, lambda_: float, k: int) -> np.ndarray:
    """(b, k) candidate positions picked greedily by λ·score − (1−λ)·max similarity to the slate so far."""
    cands = np.ascontiguousarray(candidates, dtype=np.int64)
    pos = np.empty((len(cands), k), dtype=np.int64)
    kernel = _mmr_parallel if len(cands) >= PARALLEL_USERS else _mmr_serial
    kernel(embeddings, cands, np.ascontiguousarray(scores, dtype=np.float64), float(lambda_), k, pos)
    return pos


@njit(cache=True)
def top_k_untied(scores, k, pos, tied):
    """Per row of ``scores`` (b, M), M >= k: the positions of the k highest, best first, into ``pos``; ``tied[i]``
    where that answer depends on how ties are broken (two of the k + 1 highest equal, or a NaN in the row), and
    ``pos[i]`` is then left for the caller to fill. A row without such ties has one answer, whatever the algorithm."""
    m = scores.shape[1]
    keep = min(k + 1, m)
    vals = np.empty(keep)
    at = np.empty(keep, dtype=np.int64)
    for i in range(scores.shape[0]):
        n = 0
        nan = False
        for j in range(m):
            v = scores[i, j]
            if v != v:
                nan = True
                break
            if n == keep and not v > vals[keep - 1]:
                continue
            q = n if n < keep else keep - 1  # the slot v goes to: after every kept value >= v
            while q > 0 and vals[q - 1] < v:
                if q < keep:
                    vals[q], at[q] = vals[q - 1], at[q - 1]
                q -= 1
            vals[q], at[q] = v, j
            if n < keep:
                n += 1
        tied[i] = nan
        for q in range(keep - 1):
            if vals[q] == vals[q + 1]:
                tied[i] = True
        for q in range(k):
            pos[i, q] = at[q]
