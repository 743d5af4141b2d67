"""What every metric shares: constants and the Gini and slate-NDCG definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd


RETENTION_DAYS = (1, 7, 14)
ILD_SLATES = 20_000

USER_COLUMNS = [
    "arm", "user", "segment", "sessions", "days_active", "first_day", "slates", "reviewed", "clicks", "ctr",
    "watch_minutes", "likes", "shares", "comments", "reward", "churned", "return_rate", "instructions",
    "compliance", "ndcg", "survival_days", "event",
]
CREATOR_DAILY_COLUMNS = ["arm", "day", "active_creators", "quits", "published", "explore_share"]
CREATOR_SUMMARY_COLUMNS = ["arm", "creators", "active_at_end", "quits", "exposure_gini_creators", "genre_entropy"]
QUADRANTS = ["high_ndcg_high_retention", "high_ndcg_low_retention", "low_ndcg_high_retention", "low_ndcg_low_retention"]


# ------------------------------------------------------------------ one implementation of each idea
def gini(values: np.ndarray | pd.Series | list[float]) -> float:
    """Gini coefficient of non-negative values: ``Σ_i (2i − n − 1)·x_(i) / (n·Σx)`` over the values sorted
    ascending (i = 1..n); 0 when all are equal (or all zero), NaN for no values."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n, total = x.size, x.sum() if x.size else 0.0
    if n == 0:
        return float("nan")
    if total <= 0:
        return 0.0
    rank = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * rank - n - 1) * x).sum() / (n * total))


def slate_ndcg(slate: np.ndarray, position: np.ndarray, gain: np.ndarray, n_slates: int | None = None) -> np.ndarray:
    """NDCG@K of every slate from its rows (slate id, 0-based position, gain in {0,1,2,3}).

    ``DCG = Σ gain / log2(position + 2)``; ``IDCG`` is the DCG of the same gains sorted descending into
    positions 0, 1, ...; a slate whose IDCG is 0 (nothing clicked) scores 0.
    """
    n_slates = int(slate.max()) + 1 if n_slates is None else n_slates
    g = np.asarray(gain, dtype=np.int64)
    dcg = np.bincount(slate, g / np.log2(position + 2.0), n_slates)
    by_gain = np.bincount(slate * 4 + g, minlength=4 * n_slates).reshape(n_slates, 4)  # rows of gain 0..3 per slate
    # ideal order: all 3s, then 2s, then 1s; prefix[m] = Σ_{i<m} 1/log2(i+2)
    longest = int(by_gain.sum(axis=1).max(initial=0))
    prefix = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(longest) + 2.0))])
    end3 = by_gain[:, 3]
    end2 = end3 + by_gain[:, 2]
    end1 = end2 + by_gain[:, 1]
    idcg = 3 * prefix[end3] + 2 * (prefix[end2] - prefix[end3]) + (prefix[end1] - prefix[end2])
    return np.divide(dcg, idcg, out=np.zeros(n_slates), where=idcg > 0)
