"""The statistics every evaluation uses, written once: the bootstrap, Kaplan–Meier survival with
Greenwood intervals, ROC AUC, log-loss, calibration curves, the Jensen–Shannon divergence of
histograms and samples, and grouped (per-user) bootstrap intervals.

Imports: numpy and pandas only.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

CHUNK = 4_000_000  # resampled values held in memory at once


def _blocks(n: int, n_boot: int, width: int, rng: np.random.Generator):
    """(lo, hi, rows) per block of resamples: ``rows`` (hi - lo, n) drawn with replacement; blocks keep
    at most ``CHUNK`` resampled values in memory."""
    block = max(1, CHUNK // max(n * width, 1))
    for lo in range(0, n_boot, block):  # a loop over blocks of resamples, not over rows
        hi = min(n_boot, lo + block)
        yield lo, hi, rng.integers(0, n, size=(hi - lo, n))


def resampled_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) means of ``n_boot`` resamples (with replacement, same size) of ``values`` (n,); for ``values``
    (n, c), (n_boot, c): every column resampled with the same rows, each column's means equal (bit for bit)
    to those of a call with that column alone and the same generator state."""
    x = np.asarray(values, dtype=np.float64)
    columns = x.reshape(len(x), -1).T.copy()  # (c, n), each column contiguous
    out = np.empty((n_boot, len(columns)))
    for lo, hi, rows in _blocks(len(x), n_boot, 1, rng):
        for j, column in enumerate(columns):
            out[lo:hi, j] = column[rows].mean(axis=1)
    return out if x.ndim > 1 else out[:, 0]


def resampled_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, c) column sums of ``n_boot`` resamples of the rows of ``values`` (n, c)."""
    x = np.asarray(values, dtype=np.float64)
    out = np.empty((n_boot, x.shape[1]))
    for lo, hi, rows in _blocks(len(x), n_boot, x.shape[1], rng):
        out[lo:hi] = x[rows].sum(axis=1)
    return out


def percentile_interval(boots: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval at ``level`` of bootstrap replicates (low, high)."""
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2], axis=axis)
    return low, high


def mean_interval(values: np.ndarray, rng: np.random.Generator, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (a paired interval when they are differences)."""
    if len(values) == 0:
        raise ValueError("bootstrap: no values")
    low, high = percentile_interval(resampled_means(values, n_boot, rng), level)
    return float(low), float(high)


def km_curves(durations: np.ndarray, events: np.ndarray, group: np.ndarray, n_groups: int, horizon: int,
              level: float = 0.95) -> dict[str, np.ndarray]:
    """Kaplan–Meier survival per group on days 0..horizon (arrays of shape (n_groups, horizon + 1)).

    ``S(t) = Π_{s≤t} (1 − d_s / n_s)`` with ``d_s`` churns at day s and ``n_s`` users whose duration is at
    least s (a user censored at s is still at risk at s); Greenwood variance ``Σ d/(n(n−d))`` with a
    log-log interval; survival is NaN on days where nobody is at risk.
    """
    width = horizon + 1
    d = np.clip(np.asarray(durations, dtype=np.int64), 0, horizon)
    cell = np.asarray(group, dtype=np.int64) * width + d
    deaths = np.bincount(cell, np.asarray(events, dtype=np.float64), n_groups * width).reshape(n_groups, width)
    leaving = np.bincount(cell, minlength=n_groups * width).reshape(n_groups, width)
    at_risk = np.cumsum(leaving[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, deaths / np.maximum(at_risk, 1), 0.0)
        surv = np.cumprod(1.0 - hazard, axis=1)
        step = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), np.where(deaths > 0, np.inf, 0.0))
        var = np.cumsum(step, axis=1)
        z = NormalDist().inv_cdf(0.5 + level / 2)
        log_s = np.log(surv)
        se = np.sqrt(var) / np.abs(log_s)
        low = np.where((surv > 0) & (surv < 1), surv ** np.exp(z * se), surv)
        high = np.where((surv > 0) & (surv < 1), surv ** np.exp(-z * se), surv)
    missing = at_risk == 0
    return {
        "survival": np.where(missing, np.nan, surv),
        "ci_low": np.where(missing, np.nan, np.clip(np.nan_to_num(low, nan=0.0), 0, 1)),
        "ci_high": np.where(missing, np.nan, np.clip(np.nan_to_num(high, nan=1.0), 0, 1)),
        "at_risk": at_risk,
    }


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (rank formulation, ties averaged)."""
    pos = y > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))



def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in bits (0 = same distribution, 1 = disjoint) of two histograms over the same bins."""
    p = np.asarray(p, dtype=np.float64) / max(np.sum(p), 1e-12)
    q = np.asarray(q, dtype=np.float64) / max(np.sum(q), 1e-12)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))


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


def group_resample_weights(groups: np.ndarray, n_boot: int = 200, seed: int = 0) -> Iterator[np.ndarray]:
    """Per resample of :func:`bootstrap_groups` (the same draws): how many times each row was drawn, (n,) ints.
    A metric weighted by them equals the metric of the resample's rows, without building the resample."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(groups)
    for _ in range(n_boot):
        yield np.bincount(rng.integers(0, len(uniques), len(uniques)), minlength=len(uniques))[codes]


class WeightedAUC:
    """AUC (ties averaged) of fixed labels and scores under any row weights, in O(n) per weighting (one sort)."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        self.order = np.argsort(score, kind="stable")
        s = np.asarray(score)[self.order]
        self.tie = np.r_[0, np.cumsum(s[1:] != s[:-1])]  # tie group of each sorted row
        self.pos = (np.asarray(y) > 0)[self.order]

    def __call__(self, w: np.ndarray) -> float:
        w = np.asarray(w, dtype=np.float64)[self.order]
        wp = np.bincount(self.tie, weights=w * self.pos)
        wn = np.bincount(self.tie, weights=w * ~self.pos)
        total_p, total_n = wp.sum(), wn.sum()
        if total_p == 0 or total_n == 0:
            return float("nan")
        below = np.cumsum(wn) - wn  # negative weight scored strictly lower
        return float((wp * (below + wn / 2)).sum() / (total_p * total_n))


def weighted_log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """:func:`log_loss` with row weights."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=w))


def finite_percentile_interval(stats: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of bootstrap statistics, non-finite ones dropped (NaN, NaN if none is left)."""
    values = np.asarray(stats, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def bootstrap_groups(metric: Callable[[np.ndarray], float], groups: np.ndarray, n_boot: int = 200, level: float = 0.95,
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
    return finite_percentile_interval(stats, level)
