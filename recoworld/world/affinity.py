"""The compiled affinity of candidates to users: each candidate's embedding, read from the catalog by
row, dotted with its user's vector (a batch of 10k users x 100 candidates never materialises a
(b, M, D) array)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recoworld.users.jit import FASTMATH, PARALLEL_USERS


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _affinity_row(emb, cands, taste, out):
    d = emb.shape[1]
    for j in range(cands.shape[0]):
        acc = 0.0
        row = cands[j]
        for k in range(d):
            acc += emb[row, k] * taste[k]
        out[j] = acc


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _affinity_parallel(emb, cands, taste, out):
    for i in prange(cands.shape[0]):
        _affinity_row(emb, cands[i], taste[i], out[i])


@njit(cache=True, fastmath=FASTMATH)
def _affinity_serial(emb, cands, taste, out):
    for i in range(cands.shape[0]):
        _affinity_row(emb, cands[i], taste[i], out[i])


def candidate_dot(embeddings: np.ndarray, candidates: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(b, M) dot products of each candidate's embedding with its user's vector (b, D)."""
    cands = np.ascontiguousarray(candidates, dtype=np.int64)
    vec = np.ascontiguousarray(vectors, dtype=np.float32)
    out = np.empty(cands.shape, dtype=np.float64)
    (_affinity_parallel if len(cands) >= PARALLEL_USERS else _affinity_serial)(embeddings, cands, vec, out)
    return out
