"""Interactions → labels, a per-user time split, sessions, and leak-free features and traits.

Sessions in rating logs: a user's interactions sorted by time; a gap longer than
``session_gap_minutes`` (30 by default) starts a new session. Session length = interactions in the
session; inter-visit gap = whole days between session starts, at least 1 (the kernel's return gaps
are whole days, so two sessions on the same day count as a 1-day gap); activity = sessions per user.

No feature of an interaction uses a label of the held-out period: item statistics (popularity, the
item's average rating, cross-fitted on training rows) and traits come from training rows only, and the session features (position, earlier same-topic items,
topic exposure) count items, never labels. Flipping every held-out label therefore leaves every
held-out prediction unchanged (tests/test_calibration.py checks it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recoworld.world.catalog import Catalog, popularity_percentile
from recoworld.users.calibration.io import CalibrationConfig

FEATURES = ("conformity_popularity", "popularity", "novelty", "satiation", "fatigue", "quality")
NOVELTY_SCALE = 3.0  # topic exposure at which novelty falls to 1/e (the kernel's novelty_scale in calibrated runs)
DAY = 86_400


def labels(interactions: pd.DataFrame, config: CalibrationConfig) -> np.ndarray:
    """(n,) 0/1 engagement per interaction, from the configured (or first available) label column."""
    kind = config.label
    if kind == "auto":
        kind = next((c for c in ("click", "watch_ratio", "rating") if c in interactions.columns), "")
        if not kind:
            raise ValueError("interactions: no label column (click, watch_ratio or rating)")
    if kind not in interactions.columns:
        raise ValueError(f"interactions: missing label column '{kind}'")
    values = interactions[kind].to_numpy(dtype=np.float64)
    threshold = {"click": 0.5, "rating": config.rating_threshold, "watch_ratio": config.watch_ratio_threshold}[kind]
    return (values >= threshold).astype(np.float64)


def latest_share(frame: pd.DataFrame, share: float) -> np.ndarray:
    """(n,) bool: each user's latest ``share`` of rows (``frame`` sorted by user and time): the held-out split
    of the calibration, of its validation rows and of the alignment samples."""
    rank = frame.groupby("user_id", sort=False).cumcount().to_numpy()
    size = frame.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    return rank >= np.ceil(size * (1 - share)).astype(int)


def split_by_time(interactions: pd.DataFrame, config: CalibrationConfig) -> pd.DataFrame:
    """Interactions of users with enough rows, sorted by user and time, with ``test`` (the latest share of
    each user), ``session`` (per-user session number) and ``position`` (index within the session)."""
    frame = interactions.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    counts = frame.groupby("user_id", sort=False)["item_id"].transform("size")
    frame = frame[counts >= config.min_interactions].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"interactions: no user has {config.min_interactions} or more interactions")
    frame["test"] = latest_share(frame, config.holdout)
    gap = frame.groupby("user_id", sort=False)["timestamp"].diff().fillna(np.inf)
    new = gap > config.session_gap_minutes * 60
    frame["session"] = new.groupby(frame["user_id"], sort=False).cumsum()
    frame["position"] = frame.groupby(["user_id", "session"], sort=False).cumcount()
    return frame


def validation_rows(frame: pd.DataFrame, share: float) -> np.ndarray:
    """(n,) bool: the latest ``share`` of each user's training rows (for tuning; held-out rows are never in it)."""
    train = frame[~frame["test"]]
    out = np.zeros(len(frame), dtype=bool)
    out[train.index.to_numpy()] = latest_share(train, share)
    return out


def item_popularity(rows: np.ndarray, train: np.ndarray, n_items: int) -> np.ndarray:
    """(N,) percentile of training interaction counts; 0 for items unseen in training."""
    seen = np.bincount(rows[train], minlength=n_items).astype(np.float64)
    pop = popularity_percentile(seen).astype(np.float64)
    pop[seen == 0] = 0.0
    return pop


def item_quality(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, train: np.ndarray, n_items: int,
                 prior: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(per row, per catalog item) Bayesian-average rating (or engagement where there is no rating) of the
    item in training, centred on the training mean. Cross-fitted: a training row's value leaves its own
    rating out; held-out rows see the full training average (no held-out label enters either)."""
    value = frame["rating"].to_numpy(dtype=float) if "rating" in frame else y.astype(float)
    count = np.bincount(rows[train], minlength=n_items).astype(float)
    total = np.bincount(rows[train], weights=value[train], minlength=n_items)
    mean = float(value[train].mean())
    per_item = (total + prior * mean) / (count + prior) - mean
    per_row = per_item[rows].copy()
    r = rows[train]
    per_row[train] = (total[r] - value[train] + prior * mean) / (count[r] - 1 + prior) - mean
    return per_row, per_item


def session_features(frame: pd.DataFrame, topics: np.ndarray) -> np.ndarray:
    """(n, 3) per interaction, from earlier items only (never labels): topic novelty exp(-exposure/scale)
    with exposure = the user's earlier items of the topic; satiation = earlier same-topic items in the
    session; fatigue = earlier items in the session (the calibrated kernel's exposure-driven states)."""
    user = frame["user_id"].to_numpy()
    session = frame["session"].to_numpy()
    exposure = pd.DataFrame({"u": user, "t": topics}).groupby(["u", "t"], sort=False).cumcount().to_numpy()
    satiation = pd.DataFrame({"u": user, "s": session, "t": topics}).groupby(["u", "s", "t"], sort=False).cumcount().to_numpy()
    return np.stack([np.exp(-exposure / NOVELTY_SCALE), satiation, frame["position"].to_numpy()], axis=1).astype(np.float64)


def percentile(values: pd.Series) -> pd.Series:
    """Rank in (0, 1] among users (ties share the mean rank)."""
    return values.rank(pct=True, method="average")


def user_traits(frame: pd.DataFrame, topics: np.ndarray, popularity: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """Per-user traits in [0, 1] from training behaviour only (percentiles among users):
    conformity = mean popularity of the items they chose; novelty_seeking = share of their items whose topic
    was new to them; patience = mean session length; activity = sessions per day of their training span."""
    train = ~frame["test"].to_numpy()
    tr = frame[train].assign(pop=popularity[rows[train]], topic=topics[train])
    by_user = tr.groupby("user_id", sort=False)
    new_topic = ~tr.duplicated(["user_id", "topic"])
    sessions = tr.groupby(["user_id", "session"], sort=False).size()
    per_user_sessions = sessions.groupby(level=0, sort=False).size()
    span_days = (by_user["timestamp"].max() - by_user["timestamp"].min()) / DAY + 1.0
    return pd.DataFrame({
        "conformity": percentile(by_user["pop"].mean()),
        "novelty_seeking": percentile(new_topic.groupby(tr["user_id"], sort=False).mean()),
        "patience": percentile(sessions.groupby(level=0, sort=False).mean()),
        "activity": percentile(per_user_sessions / span_days),
    })


def sessions_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, session): length, start time and the gap in whole days (>= 1) since the previous one."""
    s = frame.groupby(["user_id", "session"], sort=False).agg(length=("item_id", "size"), start=("timestamp", "min"))
    s = s.reset_index()
    gap = s.groupby("user_id", sort=False)["start"].diff() / DAY
    s["gap_days"] = np.maximum(1.0, np.ceil(gap.to_numpy()))
    s.loc[gap.isna().to_numpy(), "gap_days"] = np.nan
    return s


def topic_history(frame: pd.DataFrame, catalog: Catalog, rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Per user: items of each topic among their interactions in ``frame`` (the exposure that sets the
    novelty feature of their next interaction, :func:`session_features`)."""
    topics = np.asarray(catalog.topic_names, dtype=object)[catalog.topic[rows]]
    counts = pd.DataFrame({"u": frame["user_id"].astype(str).to_numpy(), "t": topics}).groupby(["u", "t"], sort=False).size()
    out: dict[str, dict[str, float]] = {}
    for (user, topic), n in counts.items():
        out.setdefault(str(user), {})[str(topic)] = float(n)
    return out


def interests(frame: pd.DataFrame, y: np.ndarray, catalog: Catalog, rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Topic shares of each user's engaged training items (top 5, renormalised)."""
    out: dict[str, dict[str, float]] = {}
    for user, counts in topic_history(frame[y > 0], catalog, rows[y > 0]).items():
        top = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5])
        total = sum(top.values())
        out[user] = {t: round(v / total, 4) for t, v in top.items()}
    return out


def activity_strata(interactions: pd.DataFrame, strata: int = 5) -> pd.Series:
    """Per user id: their activity stratum, 0 (fewest interactions) to ``strata`` − 1 (quantiles of the count)."""
    counts = interactions.groupby("user_id", sort=True).size()
    ranks = counts.rank(method="first", pct=True).to_numpy()
    return pd.Series(np.minimum((ranks * strata).astype(int), strata - 1), index=counts.index)


def sample_users(interactions: pd.DataFrame, n: int, seed: int, strata: int = 5) -> pd.DataFrame:
    """The interactions of ``n`` users drawn without replacement within activity strata (quantiles of each
    user's interaction count), each stratum in proportion to its size (largest remainders round): a smaller
    log with the same mix of light and heavy users. All users when ``n`` is at least their number."""
    stratum = activity_strata(interactions, strata)
    if n >= len(stratum):
        return interactions
    sizes = stratum.value_counts().sort_index()
    quota = sizes * n / len(stratum)
    take = np.floor(quota).astype(int)
    take[(quota - take).sort_values(ascending=False, kind="stable").index[: n - int(take.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(stratum.index[stratum.to_numpy() == s].to_numpy(), size=int(k), replace=False) for s, k in take.items()]
    return interactions[interactions["user_id"].isin(np.concatenate(chosen))]
