"""Figures over days and over the exposure distribution: per-day engagement, Lorenz curves, creator health."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs
from recoworld.evaluation.metrics.base import CREATOR_DAILY_COLUMNS, CREATOR_SUMMARY_COLUMNS, gini
from recoworld.evaluation.metrics.exposure import exposure_of
from recoworld.evaluation.metrics.codes import Grid
from recoworld.evaluation.metrics.scan import figures


# ------------------------------------------------------------------ per day
def daily(logs: RunLogs) -> pd.DataFrame:
    """One row per (arm, day logged): ``active_users`` (distinct users with a session), ``sessions``,
    ``ctr`` (clicks / reviewed), ``watch_minutes_per_session``, ``compliance`` (mean over that day's slates
    with a pending instruction), ``instructions_per_session``, ``new_items`` (items published that day in
    the arm's world). Days without sessions have zeros and NaN ratios."""
    arms = logs.arms
    days = np.arange(logs.manifest.days_completed)
    grid = pd.MultiIndex.from_product([arms, days], names=["arm", "day"])
    fig = figures(logs)
    codes = np.array([fig.arm_code(a) for a in arms], dtype=np.int64)

    def per_day(sums: Grid, name: str) -> np.ndarray:
        """(arms × days,) the named sum on each (arm, day) of the grid, 0 where nothing was logged."""
        table = sums.get(name)
        out = np.zeros((len(arms), len(days)))
        cols = min(len(days), table.shape[1])
        inside = codes < table.shape[0]
        out[np.flatnonzero(inside), :cols] = table[codes[inside], :cols]
        return out.ravel()

    out = pd.DataFrame(index=grid)
    s = fig.sessions.day_sums
    sessions = per_day(s, "sessions")
    out["active_users"] = per_day(s, "active_users").round().astype(np.int64)
    out["sessions"] = sessions.round().astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        reviewed = per_day(s, "reviewed")
        out["ctr"] = np.where(reviewed > 0, per_day(s, "clicks") / reviewed, np.nan)
        out["watch_minutes_per_session"] = np.where(sessions > 0, per_day(s, "watch_minutes") / sessions, np.nan)
        c_n = per_day(fig.impressions.day_sums, "compliance_n")
        out["compliance"] = np.where(c_n > 0, per_day(fig.impressions.day_sums, "compliance_sum") / c_n, np.nan)
        out["instructions_per_session"] = np.where(sessions > 0, per_day(s, "instructions") / sessions, np.nan)
    new = []
    for arm in arms:
        pub = logs.published(arm)
        counts = pub["created_day"].value_counts() if not pub.empty else pd.Series(dtype=np.int64)
        new.append(counts.reindex(days, fill_value=0).to_numpy())
    out["new_items"] = np.concatenate(new).astype(np.int64) if new else np.empty(0, np.int64)
    return out.reset_index()


# ------------------------------------------------------------------ exposure concentration
def lorenz(logs: RunLogs, by: Literal["item", "creator"] = "item", max_points: int = 1001) -> pd.DataFrame:
    """Lorenz curve of reviewed-impression counts per arm over every item (or creator) of its world.

    ``share_of_population`` x = k/n for the k least-exposed items, ``share_of_exposure`` y = their share of
    the arm's reviewed impressions; starts at (0, 0), ends at (1, 1). Curves of more than ``max_points``
    points keep that many evenly spaced ones (the ends included).
    """
    if by not in ("item", "creator"):
        raise ValueError(f"lorenz: by must be 'item' or 'creator', not '{by}'")
    parts = []
    for arm in logs.arms:
        counts = np.sort(exposure_of(logs, arm, by).to_numpy(np.float64))
        n, total = counts.size, counts.sum()
        if n == 0:
            continue
        x = np.arange(n + 1) / n
        y = np.concatenate([[0.0], np.cumsum(counts)]) / total if total > 0 else np.full(n + 1, np.nan)
        if n + 1 > max_points:
            keep = np.unique(np.round(np.linspace(0, n, max_points)).astype(np.int64))
            x, y = x[keep], y[keep]
        parts.append(pd.DataFrame({"arm": arm, "share_of_population": x, "share_of_exposure": y}))
    if not parts:
        return pd.DataFrame({"arm": pd.Series(dtype=object), "share_of_population": pd.Series(dtype=float),
                             "share_of_exposure": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ creators
def creator_health(logs: RunLogs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Creator population per arm's world: (daily, summary); two empty frames when no creators were logged.

    daily: ``active_creators``, ``quits`` (quit that day), ``published`` (items that day), ``explore_share``
    (explored / (explored + exploited) items that day). summary: ``creators`` (creator agents),
    ``active_at_end`` (active on the last logged day), ``quits`` (total), ``exposure_gini_creators`` (Gini of
    the arm's reviewed-impression counts over every creator of the world, zeros included),
    ``genre_entropy`` (entropy in bits of the topics of items published in the world). Arms that split one
    world each show that world's creators.
    """
    c = logs.creators
    empty = (pd.DataFrame(columns=CREATOR_DAILY_COLUMNS), pd.DataFrame(columns=CREATOR_SUMMARY_COLUMNS))
    if c.empty or "creator" not in c.columns:
        return empty
    zeros = pd.Series(0, index=c.index)
    per_day = pd.DataFrame({
        "active_creators": c["active"].astype(np.int64), "quits": c["quit"].astype(np.int64),
        "published": c.get("published", zeros), "explored": c.get("explored", zeros), "exploited": c.get("exploited", zeros),
    }).groupby([c["arm"], c["day"]]).sum()
    daily_parts, summary = [], []
    for arm in logs.arms:
        world = logs.world_of(arm)
        if world not in per_day.index.get_level_values(0):
            continue
        d = per_day.loc[world].reset_index()
        chosen = (d["explored"] + d["exploited"]).astype(np.float64)
        d["explore_share"] = d["explored"] / chosen.where(chosen > 0)
        d.insert(0, "arm", arm)
        daily_parts.append(d[CREATOR_DAILY_COLUMNS])
        mine = c[c["arm"] == world]
        published = logs.published(arm)
        topics = published["topic"].value_counts(normalize=True).to_numpy() if not published.empty else np.empty(0)
        summary.append({
            "arm": arm, "creators": int(mine["creator"].nunique()),
            "active_at_end": int(mine.loc[mine["day"] == mine["day"].max(), "active"].sum()),
            "quits": int(mine["quit"].sum()),
            "exposure_gini_creators": gini(exposure_of(logs, arm, "creator")),
            "genre_entropy": float(-(topics * np.log2(topics)).sum()) if topics.size else float("nan"),
        })
    if not summary:
        return empty
    return pd.concat(daily_parts, ignore_index=True), pd.DataFrame(summary, columns=CREATOR_SUMMARY_COLUMNS)
