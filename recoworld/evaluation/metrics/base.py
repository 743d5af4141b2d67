"""What every metric shares: constants, the Gini and slate-NDCG definitions, and the impressions
encoded once per RunLogs as integer codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, TypeVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs


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
class Encoded:
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


def cached(logs: RunLogs, key: str, build: Callable[[], T]) -> T:
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


def _encode(logs: RunLogs) -> Encoded:
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
    return Encoded(arms, arm, users, user, items, item, reviewed, clicked, slate, slates)


def encoded(logs: RunLogs) -> Encoded:
    return cached(logs, "encoded", lambda: _encode(logs))


def world_items(logs: RunLogs, arm: str) -> pd.DataFrame:
    """The arm's world catalog: day-0 items plus items published in its world (item_id, creator, topic)."""
    cols = ["item_id", "creator", "topic"]
    parts = [f[cols] for f in (logs.catalog, logs.published(arm)) if not f.empty and set(cols) <= set(f.columns)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.concat(parts, ignore_index=True).astype(object)
    return out.drop_duplicates("item_id", ignore_index=True)


def exposure_of(logs: RunLogs, arm: str, by: Literal["item", "creator"] = "item") -> pd.Series:
    """Reviewed-impression counts of ``arm`` over every item (or creator) of its world, zeros included.

    Creators of a world: owners of its catalog items and every creator agent logged in it. Without a
    catalog the population falls back to what the arm showed.
    """
    enc = encoded(logs)
    a = enc.arms.index(arm)
    mine = (enc.arm == a) & enc.reviewed
    counts = pd.Series(np.bincount(enc.item[mine], minlength=len(enc.items)), index=enc.items)
    world = world_items(logs, arm)
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
