"""The baselines' compiled ranking: the top-K and MMR kernels give the slates their plain definitions give."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.agents.baselines import top_k
from recoworld.agents.scoring import mmr_positions


def _top_k_reference(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


@pytest.mark.parametrize("kind", ["distinct", "rounded", "integers", "nan", "infinite_and_signed_zeros"])
def test_top_k_equals_argpartition_and_a_stable_sort_ties_included(kind: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        b, m = int(rng.integers(1, 200)), int(rng.integers(1, 120))
        k = int(rng.integers(1, m + 1))
        scores = {
            "distinct": lambda: rng.random((b, m)),
            "rounded": lambda: np.round(rng.random((b, m)), 1),
            "integers": lambda: rng.integers(0, 5, (b, m)),
            "nan": lambda: np.where(rng.random((b, m)) < 0.05, np.nan, rng.random((b, m))).astype(np.float32),
            "infinite_and_signed_zeros": lambda: rng.choice([-np.inf, -0.0, 0.0, 0.5, 1.0], size=(b, m)),
        }[kind]()
        np.testing.assert_array_equal(top_k(scores, k), _top_k_reference(scores, k))


def _mmr_reference(emb: np.ndarray, cands: np.ndarray, scores: np.ndarray, lam: float, k: int) -> np.ndarray:
    """Greedy MMR as defined: each slot takes the first candidate best in lam * score - (1 - lam) * max similarity."""
    out = np.empty((len(cands), k), dtype=np.int64)
    for i in range(len(cands)):
        picked: list[int] = []
        for s in range(k):
            best, best_val = -1, -np.inf
            for j in range(cands.shape[1]):
                if j in picked:
                    continue
                sim = max([-1.0, *(float(emb[cands[i, j]] @ emb[cands[i, p]]) for p in picked)])
                val = lam * scores[i, j] - ((1 - lam) * sim if picked else 0.0)
                if val > best_val:
                    best, best_val = j, val
            picked.append(best)
        out[i] = picked
    return out


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
def test_mmr_kernel_picks_what_the_greedy_definition_picks_duplicates_and_ties_included(lam: float) -> None:
    rng = np.random.default_rng(3)
    emb = rng.integers(-2, 3, size=(40, 8)).astype(np.float32) / 8  # dots are exact in float32, in any order
    cands = rng.integers(0, 40, size=(300, 25))  # with repeats: equal candidates tie exactly
    scores = np.round(rng.random((300, 25)), 2)
    scores[:50] = 0.0  # users nothing is known about: every score ties
    np.testing.assert_array_equal(mmr_positions(emb, cands, scores, lam, 6), _mmr_reference(emb, cands, scores, lam, 6))

