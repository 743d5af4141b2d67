"""Per-arm population figures: engagement, sessions, retention, instructions, diversity, novelty, LLM use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recoworld.evaluation import headline as H
from recoworld.evaluation.metrics.base import ILD_SLATES, RETENTION_DAYS, gini
from recoworld.evaluation.metrics.exposure import exposure_of, item_counts, world_items
from recoworld.evaluation.metrics.codes import Grid, Keys
from recoworld.evaluation.metrics.scan import Figures, SlateSample, figures, sample_slates
from recoworld.evaluation.metrics.users import km_frame, user_table

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
    fig = figures(logs)
    codes = [fig.arm_code(a) for a in arms]
    users = user_table(logs)
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
    sess = _per_arm(fig.sessions.user_sums, codes, arms)
    out["return_rate"] = H.ratio(sess["returned"], sess["sessions"])
    out["churn_rate"] = H.churn_rate(tot["churned"], n)
    km = km_frame(logs, users).set_index(["arm", "day"])["survival"]
    horizon = logs.manifest.days_completed
    for d in RETENTION_DAYS:
        out[f"retention_d{d}"] = km.xs(d, level="day").reindex(arms) if d <= horizon else np.nan
    out["instruction_rate"] = H.ratio(sess["instructions"], tot["sessions"])
    imp = _per_arm(fig.impressions.user_sums, codes, arms)
    out["compliance"] = H.ratio(imp["compliance_sum"], imp["compliance_n"])
    out["retention_after_instruction"] = H.ratio(sess["told_returned"], sess["told"])
    if seed == fig.sample.seed and ild_slates == fig.sample.size:
        sample = fig.sample
    else:
        sample = sample_slates(logs, fig.slate_counts(), seed, ild_slates, fig.arms, fig.items)
    out["ild"] = [_ild(logs, fig.items, sample, fig.arm_code(arm), arm) for arm in arms]
    out["coverage"] = [_coverage(logs, arm) for arm in arms]
    out["exposure_gini_items"] = [gini(exposure_of(logs, arm, "item")) for arm in arms]
    out["novelty"] = [_novelty(logs, fig, arm) for arm in arms]
    out["ndcg"] = H.ratio(imp["ndcg"], imp["slates"])
    out[["llm_calls", "llm_tokens", "llm_cost_usd"]] = _llm(logs)
    echoed = _per_arm(fig.impressions.arm_sums, codes, arms, ["echoed"])["echoed"]
    out["llm_echoed_slates"] = echoed.astype(float) if "user_echoed_item_text" in logs.impressions.columns else 0.0
    return out


def _per_arm(grid: Grid, codes: list[int], arms: list[str], names: list[str] | None = None) -> pd.DataFrame:
    """Per arm (rows ``arms``): each named sum of ``grid`` added up over its columns (users, items or days)."""
    out = pd.DataFrame(index=pd.Index(arms, name="arm"))
    for name in names or list(grid.sums):
        total = grid.get(name).sum(axis=1)
        out[name] = [float(total[c]) if c < len(total) else 0.0 for c in codes]
    return out


def _coverage(logs: RunLogs, arm: str) -> float:
    world = world_items(logs, arm)
    if logs.catalog.empty or world.empty:
        return float("nan")
    shown = item_counts(logs, arm, "shown")
    return float(world["item_id"].isin(shown.index[shown.to_numpy() > 0]).sum() / len(world))


def _novelty(logs: RunLogs, fig: Figures, arm: str) -> float:
    """Mean over the arm's reviewed impressions of −log2(clickers of the item / users the arm served), an item
    nobody clicked counting one clicker."""
    reviewed = item_counts(logs, arm, "reviewed").to_numpy(np.float64)
    clickers = item_counts(logs, arm, "clickers").to_numpy(np.float64)
    a = fig.arm_code(arm)
    slates = fig.impressions.user_sums.get("slates")
    served = float((slates[a] > 0).sum()) if a < slates.shape[0] else 0.0
    if reviewed.sum() == 0:
        return float("nan")
    bits = -np.log2(np.maximum(clickers, 1) / served)
    return float((reviewed * bits).sum() / reviewed.sum())


def _ild(logs: RunLogs, items: Keys, sample: SlateSample, code: int, arm: str, chunk: int = 4096) -> float:
    """Mean over sampled slates of the mean pairwise 1 − cosine of their items' embeddings."""
    number, item = sample.of(code)
    if number.size == 0:
        return float("nan")
    emb = logs.embeddings(arm)
    matrix = np.stack([np.asarray(v, dtype=np.float64) for v in emb.values()])
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)
    emb_row = pd.Index(list(emb.keys())).get_indexer(items.index())  # embedding row by item code, -1 if unknown
    keep = emb_row[item] >= 0
    slate, rows = number[keep], emb_row[item[keep]]
    starts = np.flatnonzero(np.r_[True, slate[1:] != slate[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    values = []
    for lo in range(0, len(starts), chunk):  # blocks of slates bound the (rows × dim) memory
        s, e = starts[lo:lo + chunk], ends[lo:lo + chunk]
        vecs = matrix[rows[s[0]:e[-1]]]
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
