"""Per-arm population figures: engagement, sessions, retention, instructions, diversity, novelty, LLM use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recoworld.evaluation import headline as H
from recoworld.evaluation.metrics.base import ILD_SLATES, RETENTION_DAYS, Encoded, encoded, exposure_of, gini, world_items
from recoworld.evaluation.metrics.users import km_frame, returned_mask, user_table

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs


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
    - ``llm_echoed_slates``: slates whose LLM-user answer repeated an item's text (impressions column
      ``user_echoed_item_text``: the answer quoted or followed item text, as an injection makes it);
    - ``llm_calls``, ``llm_tokens`` (prompt + completion), ``llm_cost_usd``: sums of ``logs.llm`` rows of the
      arm's world; 0 without usage; NaN when arms split one world (its usage is not attributable to an arm).
    """
    arms = logs.arms
    enc = encoded(logs)
    users = user_table(logs)
    sessions = logs.sessions
    per_user = users.groupby("arm", sort=False)
    out = pd.DataFrame(index=pd.Index(arms, name="arm"))
    out["users"] = per_user.size().reindex(arms).fillna(0).astype(np.int64)
    summed = ["sessions", "slates", "reviewed", "clicks", "watch_minutes", "likes", "shares", "comments", "churned"]
    tot = per_user[summed].sum().reindex(arms)
    n = out["users"].astype(np.float64)
    out["ctr"] = H.ctr(tot["clicks"], tot["reviewed"])
    for c in ("watch_minutes", "likes", "shares", "comments"):
        out[f"{c}_per_user"] = H.per_user(tot[c], n)
    out["slates_per_session"] = H.slates_per_session(tot["slates"], tot["sessions"])
    out["items_per_session"] = H.ratio(tot["reviewed"], tot["sessions"])
    out["sessions_per_user"] = H.per_user(tot["sessions"], n)
    returned = pd.Series(returned_mask(sessions), index=sessions.index)
    out["return_rate"] = returned.groupby(sessions["arm"]).mean().reindex(arms)
    out["churn_rate"] = H.churn_rate(tot["churned"], n)
    km = km_frame(logs, users).set_index(["arm", "day"])["survival"]
    horizon = logs.manifest.days_completed
    for d in RETENTION_DAYS:
        out[f"retention_d{d}"] = km.xs(d, level="day").reindex(arms) if d <= horizon else np.nan
    instr = sessions["instructions"] if "instructions" in sessions.columns else pd.Series(0, index=sessions.index)
    out["instruction_rate"] = H.ratio(instr.groupby(sessions["arm"]).sum().reindex(arms), tot["sessions"])
    sl = enc.slates
    slate_arm = np.asarray(enc.arms, dtype=object)[sl["arm"].to_numpy()]
    out["compliance"] = sl["compliance"].groupby(slate_arm).mean().reindex(arms)
    told = instr.to_numpy() > 0
    out["retention_after_instruction"] = returned[told].groupby(sessions["arm"][told]).mean().reindex(arms)
    out["ild"] = [_ild(logs, enc, arm, np.random.default_rng([seed, k]), ild_slates) for k, arm in enumerate(arms)]
    out["coverage"] = [_coverage(logs, enc, arm) for arm in arms]
    out["exposure_gini_items"] = [gini(exposure_of(logs, arm, "item")) for arm in arms]
    out["novelty"] = _novelty(enc).reindex(arms)
    out["ndcg"] = sl["ndcg"].groupby(slate_arm).mean().reindex(arms)
    out[["llm_calls", "llm_tokens", "llm_cost_usd"]] = _llm(logs)
    out["llm_echoed_slates"] = _echoed(logs).reindex(arms).fillna(0)
    return out


def _echoed(logs: RunLogs) -> pd.Series:
    """Slates per arm whose LLM-user answer repeated an item's text (quoted or obeyed it: an injection)."""
    imp = logs.impressions
    if "user_echoed_item_text" not in imp.columns:
        return pd.Series(dtype=float)
    first = imp[(imp["position"] == 0) & imp["user_echoed_item_text"].astype(bool)]
    return first.groupby(first["arm"].astype(str)).size().astype(float)


def _coverage(logs: RunLogs, enc: Encoded, arm: str) -> float:
    world = world_items(logs, arm)
    if logs.catalog.empty or world.empty:
        return float("nan")
    shown = np.bincount(enc.item[enc.arm == enc.arms.index(arm)], minlength=len(enc.items)) > 0
    return float(world["item_id"].isin(enc.items[shown]).sum() / len(world))


def _novelty(enc: Encoded) -> pd.Series:
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


def _ild(logs: RunLogs, enc: Encoded, arm: str, rng: np.random.Generator, max_slates: int, chunk: int = 4096) -> float:
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
