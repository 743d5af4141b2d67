"""Arm comparisons with bootstrap confidence intervals, from per-user figures (:func:`metrics.user_table`).

The difference of an arm from the baseline is the difference of the means of a per-user metric; its
interval is the percentile interval of that difference over resamples of users drawn by a seeded numpy
Generator. Paired (arms that served copies of the same users) resamples user ids jointly, so each
resample compares the same users; unpaired resamples each arm's users on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from recoworld.evaluation.metrics import user_table
from recoworld.stats import percentile_interval, resampled_means

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs

__all__ = ["bootstrap_compare", "compare_runs", "pooled_users", "run_labels"]

COLUMNS = ["arm", "baseline", "metric", "value", "baseline_value", "diff", "ci_low", "ci_high", "significant",
           "winner", "statement"]
LOWER_IS_BETTER = {"churned"}
# metric -> (phrase when the arm is higher, phrase when lower); {x} is the absolute difference
PHRASES = {
    "days_active": ("keeps users {x} days active longer than", "keeps users {x} fewer days active than"),
    "sessions": ("brings {x} more sessions per user than", "brings {x} fewer sessions per user than"),
    "survival_days": ("keeps users {x} days longer before churning than", "loses users {x} days sooner than"),
    "ctr": ("has a CTR {x} higher than", "has a CTR {x} lower than"),
    "clicks": ("gets {x} more clicks per user than", "gets {x} fewer clicks per user than"),
    "watch_minutes": ("gets {x} more watch minutes per user than", "gets {x} fewer watch minutes per user than"),
    "likes": ("gets {x} more likes per user than", "gets {x} fewer likes per user than"),
    "shares": ("gets {x} more shares per user than", "gets {x} fewer shares per user than"),
    "comments": ("gets {x} more comments per user than", "gets {x} fewer comments per user than"),
    "reward": ("earns {x} more reward per user than", "earns {x} less reward per user than"),
    "churned": ("has a churn rate {x} higher than", "has a churn rate {x} lower than"),
    "return_rate": ("has a return rate {x} higher than", "has a return rate {x} lower than"),
    "ndcg": ("has an NDCG {x} higher than", "has an NDCG {x} lower than"),
    "compliance": ("follows instructions {x} more closely than", "follows instructions {x} less closely than"),
    "instructions": ("draws {x} more instructions per user than", "draws {x} fewer instructions per user than"),
}


def _fmt(value: float) -> str:
    """A number for a sentence: 3 significant digits, a true minus sign."""
    if not np.isfinite(value):
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return text.replace("-", "−")


def _statement(arm: str, baseline: str, metric: str, diff: float, low: float, high: float, level: float,
               significant: bool) -> str:
    ci = f"{level:.0%} CI {_fmt(low)} to {_fmt(high)}"
    if not significant:
        return f"no clear difference between {arm} and {baseline} on {metric} ({ci})"
    more, less = PHRASES.get(metric, (f"scores {{x}} higher on {metric} than", f"scores {{x}} lower on {metric} than"))
    x = _fmt(abs(diff))
    phrase = (more if diff > 0 else less).format(x=x)
    if x == "1":
        phrase = phrase.replace("1 days", "1 day")
    return f"{arm} {phrase} {baseline} ({ci})"


def bootstrap_compare(
    users: pd.DataFrame,
    metric: str | Sequence[str],
    baseline: str,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every other arm against ``baseline`` on the per-user mean of ``metric``; one row per arm (per metric and
    arm, metric by metric, when ``metric`` is a list).

    ``value`` / ``baseline_value``: means over the users compared (users with a NaN metric are left out;
    paired: users present in both arms); ``diff`` = value − baseline_value; ``ci_low``/``ci_high``:
    percentile interval at ``level`` of the difference over ``n_boot`` resamples
    (``np.random.default_rng(seed)`` afresh for each arm and metric, so a row depends on no other row);
    ``significant``: the interval excludes 0; ``winner``: the better arm when significant (lower is better
    for ``churned``), else None; ``statement``: the result in words. Metrics compared over the same users
    draw the same resamples, so they share the draws (the figures are those of separate calls).

    ``paired=True`` resamples the users present in both arms jointly (arms that served copies of the same
    users); ``False`` resamples each arm on its own; ``None`` pairs when the two arms share user ids.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    for col in ("arm", "user", *metrics):
        if col not in users.columns:
            raise ValueError(f"bootstrap_compare: users lack column '{col}'")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_compare: level must be in (0, 1), not {level}")
    arms = list(pd.unique(users["arm"]))
    if baseline not in arms:
        raise ValueError(f"bootstrap_compare: unknown baseline arm '{baseline}' (arms: {', '.join(map(str, arms))})")
    values = users[["arm", "user", *metrics]].copy()
    for m in metrics:
        values[m] = pd.to_numeric(values[m], errors="coerce").astype(np.float64)
    base = values[values["arm"] == baseline].set_index("user")[metrics]
    rows: dict[tuple[str, object], dict] = {}
    for arm in arms:
        if arm == baseline:
            continue
        mine = values[values["arm"] == arm].set_index("user")[metrics]
        pair = paired if paired is not None else bool(mine.index.intersection(base.index).size)
        for group in _same_users(mine, base, metrics, pair):
            for m, row in zip(group, _compare(mine, base, group, pair, n_boot, seed, level, arm, baseline)):
                rows[(m, arm)] = row
    ordered = [rows[(m, arm)] for m in metrics for arm in arms if (m, arm) in rows]
    return pd.DataFrame(ordered, columns=COLUMNS)


def _pairs(mine: pd.Series, base: pd.Series, pair: bool) -> tuple[np.ndarray, np.ndarray]:
    """The values compared: paired, the users in both arms (a NaN in either leaves the user out); else each arm's."""
    if pair:
        both = pd.concat([mine.rename("a"), base.rename("b")], axis=1, join="inner").dropna()
        return both["a"].to_numpy(), both["b"].to_numpy()
    return mine.dropna().to_numpy(), base.dropna().to_numpy()


def _kept(mine: pd.Series, base: pd.Series, pair: bool) -> tuple:
    """Which users a metric compares (metrics that keep the same ones draw the same resamples)."""
    if pair:
        both = pd.concat([mine.rename("a"), base.rename("b")], axis=1, join="inner")
        return (both.notna().all(axis=1).to_numpy().tobytes(), len(both))
    return (mine.notna().to_numpy().tobytes(), base.notna().to_numpy().tobytes())


def _same_users(mine: pd.DataFrame, base: pd.DataFrame, metrics: list[str], pair: bool) -> list[list[str]]:
    groups: dict[tuple, list[str]] = {}
    for m in metrics:
        groups.setdefault(_kept(mine[m], base[m], pair), []).append(m)
    return list(groups.values())


def _compare(mine: pd.DataFrame, base: pd.DataFrame, group: list[str], pair: bool, n_boot: int, seed: int,
             level: float, arm: str, baseline: str) -> list[dict]:
    """One row per metric of ``group`` (metrics over the same users): one set of draws for all of them."""
    pairs = [_pairs(mine[m], base[m], pair) for m in group]
    a, b = np.stack([p[0] for p in pairs], axis=1), np.stack([p[1] for p in pairs], axis=1)
    rng = np.random.default_rng(seed)
    if pair:
        boots = resampled_means(a - b, n_boot, rng) if len(a) else np.full((n_boot, len(group)), np.nan)
    elif len(a) and len(b):
        boots = resampled_means(a, n_boot, rng) - resampled_means(b, n_boot, rng)
    else:
        boots = np.full((n_boot, len(group)), np.nan)
    out = []
    for j, metric in enumerate(group):
        value = float(a[:, j].mean()) if len(a) else float("nan")
        base_value = float(b[:, j].mean()) if len(b) else float("nan")
        diff = value - base_value
        finite = np.isfinite(boots[:, j]).all()
        low, high = (float(v) for v in percentile_interval(boots[:, j], level)) if finite else (float("nan"),) * 2
        significant = bool(low > 0 or high < 0)
        better = (diff < 0) if metric in LOWER_IS_BETTER else (diff > 0)
        out.append({
            "arm": arm, "baseline": baseline, "metric": metric, "value": value, "baseline_value": base_value,
            "diff": diff, "ci_low": low, "ci_high": high, "significant": significant,
            "winner": (arm if better else baseline) if significant else None,
            "statement": _statement(arm, baseline, metric, diff, low, high, level, significant),
        })
    return out


def run_labels(runs: Sequence[RunLogs]) -> list[str]:
    """A label per run: its folder name, with ``#2``, ``#3``... added when names repeat."""
    labels: list[str] = []
    for run in runs:
        label, k = run.name, 2
        while label in labels:
            label, k = f"{run.name}#{k}", k + 1
        labels.append(label)
    return labels


def pooled_users(runs: Sequence[RunLogs]) -> pd.DataFrame:
    """The user tables of several runs in one frame, arms labelled ``<run>/<arm>`` (see :func:`run_labels`)."""
    parts = []
    for label, run in zip(run_labels(runs), runs):
        users = user_table(run)
        users["arm"] = label + "/" + users["arm"].astype(str)
        parts.append(users)
    return pd.concat(parts, ignore_index=True)


def compare_runs(
    runs: Sequence[RunLogs],
    metric: str | Sequence[str],
    baseline: str,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """:func:`bootstrap_compare` across runs: every ``<run>/<arm>`` against ``baseline`` (a ``<run>/<arm>``
    label), unpaired (different runs served different users, even when their ids repeat)."""
    return bootstrap_compare(pooled_users(runs), metric, baseline, n_boot=n_boot, seed=seed, paired=False, level=level)
