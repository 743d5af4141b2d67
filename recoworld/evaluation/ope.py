"""Off-policy estimates of a target recommender's value from another recommender's logs.

The value of a policy is the expected reward per slate, summed over the slate's items (clicks per
slate by default). Estimators use the item-inclusion model: the logged ``propensity`` is the
probability that the logging arm put the item in the slate, and the ``ope`` table holds each
target's probability of including every logged item (and every item it would include):

* IPS   = Σ w·r / n,  w = π_target(item) / π_log(item), n = slates;
* SNIPS = K · Σ w·r / Σ w (the weights of a slate add up to K in expectation);
* DR    = [Σ_slates Σ_{items the target includes} π_target·q̂ + Σ w·(r − q̂)] / n, where q̂ is
  each item's reward rate in the logs, shrunk to the overall rate and cross-fitted over two
  halves of the users.

Intervals come from a seeded bootstrap over users (a user's slates move together). With ``scope``
"first" only the first slates are read from the logs; "all" reads the columns it needs of every
impression, so its memory grows with the logs. All three
assume rewards add up over a slate's items; the simulator's in-order review makes that an
approximation, which is why the tests check the estimates against on-policy values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from recoworld.evaluation.data import RunLogs
from recoworld.stats import percentile_interval, resampled_sums

SLATE = ["arm", "user", "day", "step"]
ESTIMATORS = ("IPS", "SNIPS", "DR")


def _item_rates(frame: pd.DataFrame, reward: str, shrink: float) -> tuple[pd.DataFrame, dict[int, float]]:
    """Per (fold, item) reward rate estimated on the other fold, shrunk towards that fold's mean; and the
    means themselves (the rate of an item the other fold never showed)."""
    out, prior = [], {}
    for fold in (0, 1):
        other = frame[frame["fold"] != fold]
        prior[fold] = float(other[reward].mean()) if len(other) else 0.0
        stats = other.groupby("item", observed=True)[reward].agg(["sum", "count"])
        rate = (stats["sum"] + shrink * prior[fold]) / (stats["count"] + shrink)
        out.append(pd.DataFrame({"fold": fold, "item": rate.index, "q": rate.to_numpy()}))
    return pd.concat(out, ignore_index=True), prior


def _bootstrap(per_user: pd.DataFrame, n_boot: int, seed: int, k: int, level: float) -> dict[str, tuple[float, float, float]]:
    """Point estimates and percentile intervals of the three estimators from per-user sums."""
    cols = per_user[["ips", "w", "dr", "n"]].to_numpy(dtype=np.float64)
    sums = resampled_sums(cols, n_boot, np.random.default_rng(seed))  # (B, 4)
    point = cols.sum(0)
    out = {}
    for name, (num, den, scale) in {"IPS": (0, 3, 1.0), "SNIPS": (0, 1, float(k)), "DR": (2, 3, 1.0)}.items():
        boot = scale * sums[:, num] / np.maximum(sums[:, den], 1e-12)
        lo, hi = percentile_interval(boot, level)
        out[name] = (scale * point[num] / max(point[den], 1e-12), float(lo), float(hi))
    return out


def ope_table(
    logs: RunLogs,
    scope: str = "all",
    reward: str = "clicked",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    shrink: float = 5.0,
) -> pd.DataFrame | None:
    """IPS, SNIPS and DR estimates of every logged target on every arm's logs, with intervals.

    ``scope`` "first" keeps only each user's first slate (the same contexts in every arm of a copies
    run, so the target's own arm gives a comparable on-policy value); "all" keeps every slate.
    Columns: arm, target, estimator, value, ci_low, ci_high, on_policy, n_slates. None when the run
    logged no targets.
    """
    if logs.ope.empty:
        return None
    if scope not in ("all", "first"):
        raise ValueError(f"ope_table: scope must be 'all' or 'first', not '{scope}'")
    if reward not in logs.impressions.columns:
        raise ValueError(f"ope_table: impressions have no column '{reward}'")
    first = scope == "first"  # then only first slates are read: a small part of the logs
    where = (ds.field("session") == 1) & (ds.field("step") == 1) if first else None
    imp = logs.impressions.read([*SLATE, "session", "position", "item", "propensity", reward], where).copy()
    imp[reward] = imp[reward].astype(np.float64)
    if first:
        imp = imp[(imp["session"] == 1) & (imp["step"] == 1)]
    targets = logs.ope.read(None, ds.field("step") == 1 if first else None)
    k = int(logs.scenario.env.slate_size)
    on_policy = imp.groupby(SLATE, observed=True)[reward].sum().groupby("arm", observed=True).mean()
    imp["fold"] = pd.util.hash_array(imp["user"].to_numpy(dtype=object)) % 2
    rates = {arm: _item_rates(g, reward, shrink) for arm, g in imp.groupby("arm", observed=True)}

    rows = []
    for (arm, target), ope in targets.groupby(["arm", "target"], observed=True):
        logged = imp[imp["arm"] == arm].merge(
            ope.loc[ope["kind"] == "logged", [*SLATE, "position", "target_prob"]], on=[*SLATE, "position"], how="inner"
        )
        if logged.empty:
            continue
        q, prior = rates[arm]
        logged = logged.merge(q, on=["fold", "item"], how="left")
        logged["q"] = logged["q"].fillna(logged["fold"].map(prior))
        w = logged["target_prob"] / logged["propensity"].clip(lower=1e-6)
        logged["ips"] = w * logged[reward]
        logged["w"] = w
        logged["corr"] = w * (logged[reward] - logged["q"])
        # the direct-method part: what the target would include, valued by q̂
        slates = logged[SLATE + ["fold"]].drop_duplicates()
        support = ope.loc[ope["kind"] == "target", [*SLATE, "item", "target_prob"]].merge(slates, on=SLATE, how="inner")
        support = support.merge(q, on=["fold", "item"], how="left")
        support["dm"] = support["target_prob"] * support["q"].fillna(support["fold"].map(prior))
        dm = support.groupby(SLATE, observed=True)["dm"].sum()
        per_slate = logged.groupby(SLATE, observed=True)[["ips", "w", "corr"]].sum()
        per_slate["dr"] = per_slate["corr"] + dm.reindex(per_slate.index).fillna(0.0)
        per_slate["n"] = 1.0
        per_user = per_slate.groupby("user", observed=True)[["ips", "w", "dr", "n"]].sum()
        estimates = _bootstrap(per_user, n_boot, seed, k, level)
        for name in ESTIMATORS:
            value, lo, hi = estimates[name]
            rows.append({
                "arm": arm, "target": target, "estimator": name, "value": value, "ci_low": lo, "ci_high": hi,
                "on_policy": float(on_policy.get(target, np.nan)), "n_slates": int(len(per_slate)),
            })
    return pd.DataFrame(rows) if rows else None
