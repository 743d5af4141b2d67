"""Per-user figures and retention: the user table, Kaplan-Meier survival, NDCG against retention."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recoworld.evaluation.stats import km_curves

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs
from recoworld.evaluation.metrics.base import QUADRANTS, USER_COLUMNS, cached, encoded


# ------------------------------------------------------------------ per user
def user_table(logs: RunLogs) -> pd.DataFrame:
    """One row per (arm, user) that was served (had a session).

    Sums over the user's sessions: sessions (= days_active, at most one session a day), slates, reviewed,
    clicks, likes, shares, comments, reward, instructions; ``watch_minutes`` = watch seconds / 60;
    ``ctr`` = clicks / reviewed; ``churned`` = the churn flag of the user's last session; ``return_rate`` =
    share of the user's sessions that were returned; ``compliance`` = mean over the user's slates that had a
    pending instruction (NaN if none); ``ndcg`` = mean per-slate NDCG@K (see :func:`slate_ndcg`; gain 1 click,
    2 like or comment, 3 share); ``first_day`` = day of the first session; ``survival_days`` = days from the
    first session to the session after which the user churned (``event`` 1), else to the end of the logged
    days (``event`` 0, censored).
    """
    return cached(logs, "users", lambda: _user_table(logs)).copy()


def returned_mask(sessions: pd.DataFrame) -> np.ndarray:
    return (~sessions["churned"].to_numpy(bool)) & (sessions["return_gap_days"].to_numpy() > 0)


def _user_table(logs: RunLogs) -> pd.DataFrame:
    s = logs.sessions.sort_values("day", kind="stable")
    zeros = np.zeros(len(s))
    optional = ("likes", "shares", "comments", "reward", "instructions", "watch_seconds")
    col = {c: s[c].to_numpy() if c in s.columns else zeros for c in optional}
    frame = pd.DataFrame({
        "arm": s["arm"].to_numpy(object), "user": s["user"].to_numpy(object),
        "segment": s["segment"].to_numpy(object) if "segment" in s.columns else None,
        "day": s["day"].to_numpy(np.int64), "slates": s["slates"].to_numpy(np.int64),
        "reviewed": s["reviewed"].to_numpy(np.int64), "clicks": s["clicks"].to_numpy(np.int64),
        "watch_minutes": col["watch_seconds"] / 60.0, "likes": col["likes"], "shares": col["shares"],
        "comments": col["comments"], "reward": col["reward"], "churned": s["churned"].to_numpy(bool),
        "returned": returned_mask(s), "instructions": col["instructions"],
    })
    g = frame.groupby(["arm", "user"], sort=False)
    out = g.agg(
        segment=("segment", "first"), sessions=("day", "size"), first_day=("day", "min"), last_day=("day", "max"),
        slates=("slates", "sum"), reviewed=("reviewed", "sum"), clicks=("clicks", "sum"),
        watch_minutes=("watch_minutes", "sum"), likes=("likes", "sum"), shares=("shares", "sum"),
        comments=("comments", "sum"), reward=("reward", "sum"), churned=("churned", "last"),
        return_rate=("returned", "mean"), instructions=("instructions", "sum"),
    ).reset_index()
    out["days_active"] = out["sessions"]
    out["ctr"] = out["clicks"] / out["reviewed"].where(out["reviewed"] > 0)
    # slate-level figures from the impressions
    enc = encoded(logs)
    sl = enc.slates
    n_users = len(enc.users)
    key = sl["arm"].to_numpy() * n_users + sl["user"].to_numpy()
    keys, inverse = np.unique(key, return_inverse=True)
    comp = sl["compliance"].to_numpy()
    scored = ~np.isnan(comp)
    c_n = np.bincount(inverse[scored], minlength=len(keys))
    per_user = pd.DataFrame({
        "arm": np.asarray(enc.arms, dtype=object)[keys // n_users],
        "user": enc.users.to_numpy(dtype=object)[keys % n_users],
        "ndcg": np.bincount(inverse, sl["ndcg"].to_numpy(), len(keys)) / np.bincount(inverse, minlength=len(keys)),
        "compliance": np.divide(np.bincount(inverse[scored], comp[scored], len(keys)), c_n,
                                out=np.full(len(keys), np.nan), where=c_n > 0),
    })
    out = out.merge(per_user, on=["arm", "user"], how="left")
    horizon = logs.manifest.days_completed
    end = np.where(out["churned"], out["last_day"], horizon)
    out["survival_days"] = (end - out["first_day"]).astype(np.int64)
    out["event"] = out["churned"].astype(np.int64)
    order = {a: k for k, a in enumerate(logs.arms)}
    out = out.sort_values("arm", key=lambda c: c.map(order).fillna(len(order)), kind="stable", ignore_index=True)
    return out[USER_COLUMNS]


# ------------------------------------------------------------------ retention
def kaplan_meier(logs: RunLogs, level: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier survival of users per arm on days 0..horizon (``horizon`` = days logged).

    Duration = days from the user's first session to the session after which they churned (event), or to
    the horizon for users who never churned (censored). ``survival`` at day t = P(duration > t or censored
    at ≥ t); ``ci_low``/``ci_high``: Greenwood log-log interval at ``level``, clipped to [0, 1];
    ``at_risk`` = users with duration ≥ t.
    """
    return km_frame(logs, user_table(logs), level)


def km_frame(logs: RunLogs, users: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    arms = logs.arms
    horizon = logs.manifest.days_completed
    group = pd.Index(arms).get_indexer(users["arm"])
    ok = group >= 0
    km = km_curves(users["survival_days"].to_numpy()[ok], users["event"].to_numpy()[ok], group[ok], len(arms), horizon, level)
    width = horizon + 1
    return pd.DataFrame({
        "arm": np.repeat(np.asarray(arms, dtype=object), width), "day": np.tile(np.arange(width), len(arms)),
        **{k: v.ravel() for k, v in km.items()},
    })


# ------------------------------------------------------------------ relevance vs retention
def ndcg_retention_2x2(logs: RunLogs) -> pd.DataFrame:
    """Share of each arm's users in the four quadrants of (NDCG, days active).

    A user is *high* on a measure when at or above its median pooled over all arms' users (users without
    an NDCG are left out); each row's four shares sum to 1. ``ndcg_retention_corr``: Spearman rank
    correlation of the user's NDCG and days active within the arm (NaN when either is constant).
    """
    users = user_table(logs).dropna(subset=["ndcg"])
    cols = ["arm", *QUADRANTS, "ndcg_retention_corr"]
    if users.empty:
        return pd.DataFrame(columns=cols)
    high_n = users["ndcg"] >= users["ndcg"].median()
    high_r = users["days_active"] >= users["days_active"].median()
    quadrant = np.select([high_n & high_r, high_n & ~high_r, ~high_n & high_r], QUADRANTS[:3], QUADRANTS[3])
    shares = pd.crosstab(users["arm"], quadrant, normalize="index").reindex(columns=QUADRANTS, fill_value=0.0)
    ranks = users[["ndcg", "days_active"]].groupby(users["arm"]).rank()
    corr = ranks.groupby(users["arm"]).corr().xs("ndcg", level=1)["days_active"]
    arms = [a for a in logs.arms if a in shares.index]
    out = shares.reindex(arms)
    out["ndcg_retention_corr"] = corr.reindex(arms)
    return out.rename_axis(index=None, columns=None).rename_axis("arm").reset_index()[cols]
