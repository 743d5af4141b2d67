"""Scores of predictions against real labels: AUC, log-loss, calibration curve, JSD, bootstrap intervals.

(The restructuring moves the general ones into ``recoworld.evaluation.stats``; these are the ones the
calibration and the fidelity suite use.)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (rank formulation, ties averaged)."""
    pos = np.asarray(y) > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted and observed rate per predicted-probability decile."""
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append({"predicted": float(p[part].mean()), "observed": float(y[part].mean()), "n": float(len(part))})
    return out


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in bits (0 = same distribution, 1 = disjoint) of two histograms over the same bins."""
    p = np.asarray(p, dtype=np.float64) / max(np.sum(p), 1e-12)
    q = np.asarray(q, dtype=np.float64) / max(np.sum(q), 1e-12)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(np.clip(values, edges[0], edges[-1] - 1e-9), bins=edges)[0]


def log_edges(*samples: np.ndarray, bins: int = 12) -> np.ndarray:
    """Shared bin edges for positive counts: 1, 2, 3 then geometric up to the largest value."""
    top = max(float(np.max(s)) if len(s) else 1.0 for s in samples)
    edges = np.unique(np.concatenate([[1, 2, 3], np.geomspace(4, max(top + 1, 5), bins)]).round())
    return np.append(edges, edges[-1] + 1)


def sample_jsd(real: np.ndarray, simulated: np.ndarray) -> float:
    """JSD of two samples of positive counts over :func:`log_edges` bins."""
    edges = log_edges(real, simulated)
    return jensen_shannon(histogram(real, edges), histogram(simulated, edges))


def bootstrap(metric: Callable[[np.ndarray], float], groups: np.ndarray, n_boot: int = 200, level: float = 0.95,
              seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``metric(rows)`` over resamples of whole groups (users) with replacement."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(groups)
    members = pd.Series(np.arange(len(codes))).groupby(codes).apply(np.asarray).to_list()
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniques), len(uniques))
        rows = np.concatenate([members[g] for g in pick])
        stats.append(metric(rows))
    stats = np.asarray(stats, dtype=float)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))
