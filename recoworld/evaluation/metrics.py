"""Metrics of a run from its logs: per user, per arm and per day; retention curves, diversity and creator health.

Every function takes a :class:`~recoworld.evaluation.data.RunLogs` and returns plain pandas frames with
one block per arm; each docstring states its definition. The impressions are encoded once per ``RunLogs``
as integer codes (arm, user, item, slate) and per-slate figures are built with ``np.bincount``, so ten
million rows cost a few seconds and no Python loop runs over rows, slates or users.

Terms used throughout:

- *reviewed* impression: a row whose action is not ``unseen`` (the user looked at it).
- *slate*: the rows of one (arm, user, day, step); *session*: one row of ``logs.sessions``.
- *returned* session: the user comes back within the churn window (``not churned`` and a positive gap;
  the comeback may fall after the horizon).
- the arm's *world*: its own copy of the platform (``copies``) or the world all arms share (``split``);
  its catalog is the day-0 catalog plus the items published in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, TypeVar

import numpy as np
import pandas as pd

from recoworld.evaluation.stats import km_curves

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs

__all__ = [
    "arm_summary", "creator_health", "daily", "gini", "kaplan_meier", "lorenz", "ndcg_retention_2x2",
    "slate_ndcg", "user_table",
]

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


# ------------------------------------------------------------------ impressions encoded once per RunLogs
@dataclass
class _Encoded:
    """The impressions as integer codes, and one row per slate (built once per RunLogs)."""

    arms: list[str]  # arm label by code (the manifest's order first)
    arm: np.ndarray  # per impression row
    users: pd.Index
    user: np.ndarray
    items: pd.Index
    item: np.ndarray
    reviewed: np.ndarray
    clicked: np.ndarray
    slate: np.ndarray  # slate id per row
    slates: pd.DataFrame  # per slate: arm, user (codes), day, step, ndcg, compliance (mean; NaN if none pending)


T = TypeVar("T")


def _cached(logs: RunLogs, key: str, build: Callable[[], T]) -> T:
    """``build()`` once per RunLogs and key (recomputed if the impression or session frame is replaced)."""
    token = (id(logs.impressions), len(logs.impressions), id(logs.sessions), len(logs.sessions))
    store = logs.__dict__.setdefault("_metrics_cache", {})
    if store.get("token") != token:
        store.clear()
        store["token"] = token
    if key not in store:
        store[key] = build()
    return store[key]


def _codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(column, sort=False)
    return codes.astype(np.int64), pd.Index(np.asarray(uniques, dtype=object), dtype=object)


def _encode(logs: RunLogs) -> _Encoded:
    imp = logs.impressions
    arm_codes, arm_uniques = _codes(imp["arm"])
    arms = list(logs.arms) + [a for a in arm_uniques if a not in logs.arms]
    arm = pd.Index(arms).get_indexer(arm_uniques)[arm_codes]
    user, users = _codes(imp["user"])
    item, items = _codes(imp["item"])
    day = imp["day"].to_numpy(np.int64)
    step = imp["step"].to_numpy(np.int64)
    n_days, n_steps = int(day.max()) + 1, int(step.max()) + 1
    key = ((arm * len(users) + user) * n_days + day) * n_steps + step
    slate, _ = pd.factorize(key, sort=False)
    slate = slate.astype(np.int64)
    n_slates = int(slate.max()) + 1
    clicked = imp["clicked"].to_numpy(bool)
    flag = {c: imp[c].to_numpy(bool) if c in imp.columns else np.zeros(len(imp), bool) for c in ("liked", "commented", "shared")}
    gain = np.where(flag["shared"], 3, np.where(flag["liked"] | flag["commented"], 2, np.where(clicked, 1, 0)))
    reviewed = (imp["action"] != "unseen").to_numpy(bool)
    comp = imp["compliance"].to_numpy(np.float64) if "compliance" in imp.columns else np.full(len(imp), np.nan)
    scored = ~np.isnan(comp)
    c_sum = np.bincount(slate[scored], comp[scored], n_slates)
    c_n = np.bincount(slate[scored], minlength=n_slates)
    row = np.empty(n_slates, dtype=np.int64)
    row[slate] = np.arange(len(slate))
    slates = pd.DataFrame({
        "arm": arm[row], "user": user[row], "day": day[row], "step": step[row],
        "ndcg": slate_ndcg(slate, imp["position"].to_numpy(np.float64), gain, n_slates),
        "compliance": np.divide(c_sum, c_n, out=np.full(n_slates, np.nan), where=c_n > 0),
    })
    return _Encoded(arms, arm, users, user, items, item, reviewed, clicked, slate, slates)


def _enc(logs: RunLogs) -> _Encoded:
    return _cached(logs, "encoded", lambda: _encode(logs))


def _world_items(logs: RunLogs, arm: str) -> pd.DataFrame:
    """The arm's world catalog: day-0 items plus items published in its world (item_id, creator, topic)."""
    cols = ["item_id", "creator", "topic"]
    parts = [f[cols] for f in (logs.catalog, logs.published(arm)) if not f.empty and set(cols) <= set(f.columns)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.concat(parts, ignore_index=True).astype(object)
    return out.drop_duplicates("item_id", ignore_index=True)


def _exposure(logs: RunLogs, arm: str, by: Literal["item", "creator"] = "item") -> pd.Series:
    """Reviewed-impression counts of ``arm`` over every item (or creator) of its world, zeros included.

    Creators of a world: owners of its catalog items and every creator agent logged in it. Without a
    catalog the population falls back to what the arm showed.
    """
    enc = _enc(logs)
    a = enc.arms.index(arm)
    mine = (enc.arm == a) & enc.reviewed
    counts = pd.Series(np.bincount(enc.item[mine], minlength=len(enc.items)), index=enc.items)
    world = _world_items(logs, arm)
    if world.empty:
        shown = np.bincount(enc.item[enc.arm == a], minlength=len(enc.items)) > 0
        counts = counts[shown]
        if by == "item":
            return counts
        creator = logs.impressions.loc[enc.arm == a].drop_duplicates("item").set_index("item")["creator"]
        return counts.groupby(creator.reindex(counts.index).to_numpy()).sum()
    per_item = counts.reindex(world["item_id"].to_numpy(), fill_value=0)
    if by == "item":
        return per_item
    per_creator = pd.Series(per_item.to_numpy(), index=world["creator"].to_numpy()).groupby(level=0).sum()
    if not logs.creators.empty:
        agents = logs.creators.loc[logs.creators["arm"] == logs.world_of(arm), "creator"].unique()
        per_creator = per_creator.reindex(per_creator.index.union(pd.Index(agents, dtype=object)), fill_value=0)
    return per_creator


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
    return _cached(logs, "users", lambda: _user_table(logs)).copy()


def _returned(sessions: pd.DataFrame) -> np.ndarray:
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
        "returned": _returned(s), "instructions": col["instructions"],
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
    enc = _enc(logs)
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
    return _km_frame(logs, user_table(logs), level)


def _km_frame(logs: RunLogs, users: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
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


# ------------------------------------------------------------------ per arm
def arm_summary(logs: RunLogs, seed: int = 0, ild_slates: int = ILD_SLATES) -> pd.DataFrame:
    """One row per arm (index ``arm``); population figures over the arm's served users.

    - ``users``: users served; ``ctr``: clicks / reviewed impressions (pooled);
      ``watch_minutes_per_user``, ``likes_per_user``, ``shares_per_user``, ``comments_per_user``: totals / users;
      ``slates_per_session``, ``items_per_session`` (reviewed items), ``sessions_per_user``.
    - ``return_rate``: share of sessions that were returned; ``churn_rate``: share of users who churned;
      ``retention_d1/d7/d14``: Kaplan–Meier survival at day N (NaN beyond the logged horizon).
    - ``instruction_rate``: instructions voiced per session; ``compliance``: mean compliance over slates
      with a pending instruction; ``retention_after_instruction``: return rate of sessions in which an
      instruction was voiced.
    - ``ild``: mean intra-list diversity (mean pairwise 1 − cosine of item embeddings, all rows of a slate)
      over at most ``ild_slates`` slates per arm sampled with ``np.random.default_rng([seed, arm index])``.
    - ``coverage``: distinct items shown / items in the arm's world catalog; ``exposure_gini_items``: Gini of
      reviewed-impression counts over every item of the world (zeros included); ``novelty``: mean over
      reviewed impressions of −log2(share of the arm's users who clicked the item), an item nobody clicked
      counting as clicked by one user.
    - ``ndcg``: mean per-slate NDCG@K over the arm's slates.
    - ``llm_calls``, ``llm_tokens`` (prompt + completion), ``llm_cost_usd``: sums of ``logs.llm`` rows of the
      arm's world; 0 without usage; NaN when arms split one world (its usage is not attributable to an arm).
    """
    arms = logs.arms
    enc = _enc(logs)
    users = user_table(logs)
    sessions = logs.sessions
    per_user = users.groupby("arm", sort=False)
    out = pd.DataFrame(index=pd.Index(arms, name="arm"))
    out["users"] = per_user.size().reindex(arms).fillna(0).astype(np.int64)
    summed = ["sessions", "slates", "reviewed", "clicks", "watch_minutes", "likes", "shares", "comments", "churned"]
    tot = per_user[summed].sum().reindex(arms)
    n = out["users"].where(out["users"] > 0)
    out["ctr"] = tot["clicks"] / tot["reviewed"].where(tot["reviewed"] > 0)
    for c in ("watch_minutes", "likes", "shares", "comments"):
        out[f"{c}_per_user"] = tot[c] / n
    n_sessions = tot["sessions"].where(tot["sessions"] > 0)
    out["slates_per_session"] = tot["slates"] / n_sessions
    out["items_per_session"] = tot["reviewed"] / n_sessions
    out["sessions_per_user"] = tot["sessions"] / n
    returned = pd.Series(_returned(sessions), index=sessions.index)
    out["return_rate"] = returned.groupby(sessions["arm"]).mean().reindex(arms)
    out["churn_rate"] = tot["churned"] / n
    km = _km_frame(logs, users).set_index(["arm", "day"])["survival"]
    horizon = logs.manifest.days_completed
    for d in RETENTION_DAYS:
        out[f"retention_d{d}"] = km.xs(d, level="day").reindex(arms) if d <= horizon else np.nan
    instr = sessions["instructions"] if "instructions" in sessions.columns else pd.Series(0, index=sessions.index)
    out["instruction_rate"] = instr.groupby(sessions["arm"]).sum().reindex(arms) / n_sessions
    sl = enc.slates
    slate_arm = np.asarray(enc.arms, dtype=object)[sl["arm"].to_numpy()]
    out["compliance"] = sl["compliance"].groupby(slate_arm).mean().reindex(arms)
    told = instr.to_numpy() > 0
    out["retention_after_instruction"] = returned[told].groupby(sessions["arm"][told]).mean().reindex(arms)
    out["ild"] = [_ild(logs, enc, arm, np.random.default_rng([seed, k]), ild_slates) for k, arm in enumerate(arms)]
    out["coverage"] = [_coverage(logs, enc, arm) for arm in arms]
    out["exposure_gini_items"] = [gini(_exposure(logs, arm, "item")) for arm in arms]
    out["novelty"] = _novelty(enc).reindex(arms)
    out["ndcg"] = sl["ndcg"].groupby(slate_arm).mean().reindex(arms)
    out[["llm_calls", "llm_tokens", "llm_cost_usd"]] = _llm(logs)
    return out


def _coverage(logs: RunLogs, enc: _Encoded, arm: str) -> float:
    world = _world_items(logs, arm)
    if logs.catalog.empty or world.empty:
        return float("nan")
    shown = np.bincount(enc.item[enc.arm == enc.arms.index(arm)], minlength=len(enc.items)) > 0
    return float(world["item_id"].isin(enc.items[shown]).sum() / len(world))


def _novelty(enc: _Encoded) -> pd.Series:
    n_items, n_users = len(enc.items), len(enc.users)
    clicks = pd.unique((enc.arm[enc.clicked] * n_users + enc.user[enc.clicked]) * n_items + enc.item[enc.clicked])
    clickers = np.bincount((clicks // (n_users * n_items)) * n_items + clicks % n_items, minlength=len(enc.arms) * n_items)
    served = np.zeros(len(enc.arms) * n_users, dtype=bool)
    served[enc.arm * n_users + enc.user] = True
    arm_users = served.reshape(len(enc.arms), n_users).sum(axis=1).astype(np.float64)
    rows = enc.reviewed
    a, i = enc.arm[rows], enc.item[rows]
    bits = -np.log2(np.maximum(clickers[a * n_items + i], 1) / arm_users[a])
    value = np.bincount(a, bits, len(enc.arms)) / np.maximum(np.bincount(a, minlength=len(enc.arms)), 1)
    has = np.bincount(a, minlength=len(enc.arms)) > 0
    return pd.Series(np.where(has, value, np.nan), index=enc.arms)


def _ild(logs: RunLogs, enc: _Encoded, arm: str, rng: np.random.Generator, max_slates: int, chunk: int = 4096) -> float:
    """Mean over sampled slates of the mean pairwise 1 − cosine of their items' embeddings."""
    ids = np.flatnonzero(enc.slates["arm"].to_numpy() == enc.arms.index(arm))
    if ids.size == 0:
        return float("nan")
    if ids.size > max_slates:
        ids = np.sort(rng.choice(ids, size=max_slates, replace=False))
    emb = logs.embeddings(arm)
    matrix = np.stack([np.asarray(v, dtype=np.float64) for v in emb.values()])
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)
    emb_row = pd.Index(list(emb.keys())).get_indexer(enc.items)  # embedding row by item code, -1 if unknown
    chosen = np.zeros(len(enc.slates), dtype=bool)
    chosen[ids] = True
    rows = np.flatnonzero(chosen[enc.slate])
    rows = rows[emb_row[enc.item[rows]] >= 0]
    rows = rows[np.argsort(enc.slate[rows], kind="stable")]
    slate = enc.slate[rows]
    starts = np.flatnonzero(np.r_[True, slate[1:] != slate[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    values = []
    for lo in range(0, len(starts), chunk):  # blocks of slates bound the (rows × dim) memory
        s, e = starts[lo:lo + chunk], ends[lo:lo + chunk]
        vecs = matrix[emb_row[enc.item[rows[s[0]:e[-1]]]]]
        total = np.add.reduceat(vecs, s - s[0], axis=0)
        sq = np.add.reduceat((vecs * vecs).sum(axis=1), s - s[0])
        k = (e - s).astype(np.float64)
        pairs = k * (k - 1)
        mean_cos = ((total * total).sum(axis=1) - sq) / np.where(pairs > 0, pairs, 1)
        values.append((1.0 - mean_cos)[pairs > 0])
    values = np.concatenate(values) if values else np.empty(0)
    return float(values.mean()) if values.size else float("nan")


def _llm(logs: RunLogs) -> pd.DataFrame:
    cols = ["llm_calls", "llm_tokens", "llm_cost_usd"]
    out = pd.DataFrame(0.0, index=pd.Index(logs.arms, name="arm"), columns=cols)
    llm = logs.llm
    if llm.empty:
        return out
    zero = pd.Series(0.0, index=llm.index)
    frame = pd.DataFrame({
        "llm_calls": llm.get("calls", zero), "llm_cost_usd": llm.get("cost_usd", zero),
        "llm_tokens": llm.get("prompt_tokens", zero) + llm.get("completion_tokens", zero),
    })[cols].astype(np.float64).groupby(llm["arm"].to_numpy()).sum()
    for arm in logs.arms:
        world = logs.world_of(arm)
        if world == arm:
            out.loc[arm] = frame.reindex([arm]).fillna(0.0).to_numpy()[0]
        elif world in frame.index:
            out.loc[arm] = np.nan
    return out[cols]


# ------------------------------------------------------------------ per day
def daily(logs: RunLogs) -> pd.DataFrame:
    """One row per (arm, day logged): ``active_users`` (distinct users with a session), ``sessions``,
    ``ctr`` (clicks / reviewed), ``watch_minutes_per_session``, ``compliance`` (mean over that day's slates
    with a pending instruction), ``instructions_per_session``, ``new_items`` (items published that day in
    the arm's world). Days without sessions have zeros and NaN ratios."""
    arms = logs.arms
    days = np.arange(logs.manifest.days_completed)
    grid = pd.MultiIndex.from_product([arms, days], names=["arm", "day"])
    s = logs.sessions
    zeros = pd.Series(0, index=s.index)
    g = pd.DataFrame({
        "user": s["user"], "clicks": s["clicks"], "reviewed": s["reviewed"],
        "watch_minutes": s["watch_seconds"] / 60.0 if "watch_seconds" in s.columns else zeros,
        "instructions": s["instructions"] if "instructions" in s.columns else zeros,
    }).groupby([s["arm"], s["day"]])
    agg = g.agg(active_users=("user", "nunique"), sessions=("user", "size"), clicks=("clicks", "sum"),
                reviewed=("reviewed", "sum"), watch_minutes=("watch_minutes", "sum"), instructions=("instructions", "sum"))
    agg = agg.reindex(grid, fill_value=0)
    out = pd.DataFrame(index=grid)
    out["active_users"] = agg["active_users"].astype(np.int64)
    out["sessions"] = agg["sessions"].astype(np.int64)
    per_session = agg["sessions"].where(agg["sessions"] > 0)
    out["ctr"] = agg["clicks"] / agg["reviewed"].where(agg["reviewed"] > 0)
    out["watch_minutes_per_session"] = agg["watch_minutes"] / per_session
    sl = _enc(logs).slates
    slate_arm = np.asarray(_enc(logs).arms, dtype=object)[sl["arm"].to_numpy()]
    out["compliance"] = sl["compliance"].groupby([slate_arm, sl["day"].to_numpy()]).mean().reindex(grid)
    out["instructions_per_session"] = agg["instructions"] / per_session
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
        counts = np.sort(_exposure(logs, arm, by).to_numpy(np.float64))
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
            "exposure_gini_creators": gini(_exposure(logs, arm, "creator")),
            "genre_entropy": float(-(topics * np.log2(topics)).sum()) if topics.size else float("nan"),
        })
    if not summary:
        return empty
    return pd.concat(daily_parts, ignore_index=True), pd.DataFrame(summary, columns=CREATOR_SUMMARY_COLUMNS)


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
