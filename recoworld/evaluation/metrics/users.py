"""Per-user figures and retention: the user table, Kaplan-Meier survival, NDCG against retention."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recoworld.stats import km_curves

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs
from recoworld.evaluation.metrics.base import QUADRANTS, USER_COLUMNS
from recoworld.evaluation.metrics.scan import figures


# ------------------------------------------------------------------ per user
def user_table(logs: RunLogs) -> pd.DataFrame:
    """One row per (arm, user) that was served (had a session).

    From the per-user sums of one pass over the logs (:mod:`.scan`). Sums over the user's sessions: sessions
    (= days_active, at most one session a day), slates, reviewed, clicks, likes, shares, comments, reward,
    instructions; ``watch_minutes`` = watch seconds / 60; ``ctr`` = clicks / reviewed; ``churned`` = the churn flag of the user's last session; ``return_rate`` =
    share of the user's sessions that were returned; ``compliance`` = mean over the user's slates that had a
    pending instruction (NaN if none); ``ndcg`` = mean per-slate NDCG@K (see :func:`slate_ndcg`; gain 1 click,
    2 like or comment, 3 share); ``first_day`` = day of the first session; ``survival_days`` = days from the
    first session to the session after which the user churned (``event`` 1), else to the end of the logged
    days (``event`` 0, censored).
    """
    if "users" not in logs._cache:
        logs._cache["users"] = _user_table(logs)
    return logs._cache["users"].copy()


def _user_table(logs: RunLogs) -> pd.DataFrame:
    fig = figures(logs)
    s = fig.sessions.frame()
    arms, users = np.asarray(fig.arms.values, dtype=object), np.asarray(fig.users.values, dtype=object)
    out = pd.DataFrame({"arm": arms[s["arm_code"].to_numpy(np.int64)], "user": users[s["user_code"].to_numpy(np.int64)],
                        "segment": s["segment"].to_numpy(object)})
    for name in ("sessions", "slates", "reviewed", "clicks", "first_day", "last_day"):
        out[name] = s[name].to_numpy(np.float64).round().astype(np.int64)
    for name in ("watch_minutes", "likes", "shares", "comments", "reward", "instructions"):
        out[name] = s[name].to_numpy(np.float64)
    out["churned"] = s["churned"].to_numpy(bool)
    out["return_rate"] = s["returned"].to_numpy(np.float64) / s["sessions"].to_numpy(np.float64)
    out["days_active"] = out["sessions"]
    out["ctr"] = out["clicks"] / out["reviewed"].where(out["reviewed"] > 0)
    # slate-level figures from the impressions
    imp = fig.impressions.user_sums
    a, u = s["arm_code"].to_numpy(np.int64), s["user_code"].to_numpy(np.int64)
    inside = (a < imp.shape[0]) & (u < imp.shape[1])
    def at(name: str) -> np.ndarray:
        values = np.zeros(len(a))
        values[inside] = imp.get(name)[a[inside], u[inside]]
        return values

    slates, c_n = at("slates"), at("compliance_n")
    out["ndcg"] = np.divide(at("ndcg"), slates, out=np.full(len(a), np.nan), where=slates > 0)
    out["compliance"] = np.divide(at("compliance_sum"), c_n, out=np.full(len(a), np.nan), where=c_n > 0)
    horizon = logs.manifest.days_completed
    end = np.where(out["churned"], out["last_day"], horizon)
    out["survival_days"] = (end - out["first_day"]).astype(np.int64)
    out["event"] = out["churned"].astype(np.int64)
    out["order"] = s["order"].to_numpy()
    rank = {a: k for k, a in enumerate(logs.arms)}
    out["arm_rank"] = out["arm"].map(rank).fillna(len(rank) + s["arm_code"]).to_numpy()
    out = out.sort_values(["arm_rank", "order"], kind="stable", ignore_index=True)
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
