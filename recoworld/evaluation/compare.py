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
from recoworld.evaluation.stats import percentile_interval, resampled_means

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
    metric: str,
    baseline: str,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Every other arm against ``baseline`` on the per-user mean of ``metric``; one row per arm.

    ``value`` / ``baseline_value``: means over the users compared (users with a NaN metric are left out;
    paired: users present in both arms); ``diff`` = value − baseline_value; ``ci_low``/``ci_high``:
    percentile interval at ``level`` of the difference over ``n_boot`` resamples
    (``np.random.default_rng(seed)`` afresh for each arm, so a row does not depend on the other arms);
    ``significant``: the interval excludes 0; ``winner``: the better arm when significant (lower is better
    for ``churned``), else None; ``statement``: the result in words.

    ``paired=True`` resamples the users present in both arms jointly (arms that served copies of the same
    users); ``False`` resamples each arm on its own; ``None`` pairs when the two arms share user ids.
    """
    for col in ("arm", "user", metric):
        if col not in users.columns:
            raise ValueError(f"bootstrap_compare: users lack column '{col}'")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_compare: level must be in (0, 1), not {level}")
    arms = list(pd.unique(users["arm"]))
    if baseline not in arms:
        raise ValueError(f"bootstrap_compare: unknown baseline arm '{baseline}' (arms: {', '.join(map(str, arms))})")
    values = users[["arm", "user", metric]].copy()
    values[metric] = pd.to_numeric(values[metric], errors="coerce").astype(np.float64)
    base = values[values["arm"] == baseline].set_index("user")[metric]
    rows = []
    for arm in arms:
        if arm == baseline:
            continue
        mine = values[values["arm"] == arm].set_index("user")[metric]
        pair = paired if paired is not None else bool(mine.index.intersection(base.index).size)
        rng = np.random.default_rng(seed)
        if pair:
            both = pd.concat([mine.rename("a"), base.rename("b")], axis=1, join="inner").dropna()
            a, b = both["a"].to_numpy(), both["b"].to_numpy()
            boots = resampled_means(a - b, n_boot, rng) if a.size else np.full(n_boot, np.nan)
        else:
            a, b = mine.dropna().to_numpy(), base.dropna().to_numpy()
            boots = resampled_means(a, n_boot, rng) - resampled_means(b, n_boot, rng) if a.size and b.size else np.full(n_boot, np.nan)
        value = float(a.mean()) if a.size else float("nan")
        base_value = float(b.mean()) if b.size else float("nan")
        diff = value - base_value
        low, high = (float(v) for v in percentile_interval(boots, level)) if np.isfinite(boots).all() else (float("nan"),) * 2
        significant = bool(low > 0 or high < 0)
        better = (diff < 0) if metric in LOWER_IS_BETTER else (diff > 0)
        rows.append({
            "arm": arm, "baseline": baseline, "metric": metric, "value": value, "baseline_value": base_value,
            "diff": diff, "ci_low": low, "ci_high": high, "significant": significant,
            "winner": (arm if better else baseline) if significant else None,
            "statement": _statement(arm, baseline, metric, diff, low, high, level, significant),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


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
    metric: str,
    baseline: str,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """:func:`bootstrap_compare` across runs: every ``<run>/<arm>`` against ``baseline`` (a ``<run>/<arm>``
    label), unpaired (different runs served different users, even when their ids repeat)."""
    return bootstrap_compare(pooled_users(runs), metric, baseline, n_boot=n_boot, seed=seed, paired=False, level=level)
