"""USP-style implicit profiles extracted from logged interaction histories.

Two extractors turn an interaction frame (``user_id``, ``item_id``, ``timestamp`` and optionally
``rating`` / ``click``; see :mod:`recoworld.world.readers`) into :class:`UserProfile` objects:

* :func:`extract_profiles` — statistical and deterministic. Interests are the topic shares of the
  user's positive interactions, dislikes the topics they rate low, and the observable traits
  (novelty seeking, conformity, patience, activity) come from topic entropy, item popularity,
  session lengths and visit frequency. The latent ``taste`` is the normalised mean embedding of
  the positive items, so calibrated users start where their history puts them.
* :func:`recoworld.users.llm_extraction.extract_profiles_llm` — one structured language-model call per user that reads the
  history and writes the two-paragraph USP profile (objective facts; subjective traits) plus the
  structured fields. A user whose call fails keeps the statistical profile (segment
  ``"llm-fallback"``), so no user is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recoworld.users.profile import Traits, UserProfile
from recoworld.world.catalog import Catalog, popularity_percentile

SECONDS_PER_DAY = 86_400
INTEREST_MIN_SHARE = 0.05  # topics below this share of positive interactions are not interests
INTEREST_MAX_TOPICS = 6
POSITIVE_RATING = 4.0  # rating >= this counts as positive when there is no click column
LOW_RATING = 2.0  # rating <= this counts as a low rating
DISLIKE_MIN_LOW = 3  # a disliked topic has at least this many low ratings ...
DISLIKE_MIN_SHARE = 0.5  # ... and at least this share of the topic's ratings low
MIN_SPAN_DAYS = 7  # visit frequency is measured over at least a week: one busy day is not "daily"
ITEM_TEXT_CHARS = 200  # cap on each item's text in the LLM prompt

STATISTICAL_SEGMENT = "extracted"
LLM_SEGMENT = "llm-extracted"
FALLBACK_SEGMENT = "llm-fallback"


# ------------------------------------------------------------------ shared preparation
def _seconds(col: pd.Series) -> np.ndarray:
    """Timestamps as int64 seconds since the epoch (numbers or datetimes)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        if col.dt.tz is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        return col.astype("datetime64[s]").to_numpy().astype(np.int64)
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise ValueError(f"interactions: column 'timestamp' has a missing or non-numeric value at row {row}")
    return np.floor(values).astype(np.int64)


def _flag(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    """A numeric column as float64 (NaN for missing), or None when absent."""
    if name not in frame.columns:
        return None
    col = frame[name]
    if pd.api.types.is_bool_dtype(col):
        col = col.astype(np.float64)
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


class InteractionLog:
    """The interactions of the kept users, sorted by (user, timestamp, item row)."""

    def __init__(self, interactions: pd.DataFrame, catalog: Catalog, min_interactions: int) -> None:
        for name in ("user_id", "item_id", "timestamp"):
            if name not in interactions.columns:
                raise ValueError(f"interactions: missing required column '{name}'")
        item_ids = interactions["item_id"].astype(str).str.strip()
        rows = item_ids.map(catalog.index_of).to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(rows)
        frame = interactions.loc[known]
        rows = rows[known].astype(np.int64)
        user_ids = frame["user_id"].astype(str).str.strip().to_numpy(dtype=object)
        ts = _seconds(frame["timestamp"])
        click, rating = _flag(frame, "click"), _flag(frame, "rating")
        watch_ratio = _flag(frame, "watch_ratio")
        if click is not None:
            positive = click == 1
        elif rating is not None:
            positive = rating >= POSITIVE_RATING  # NaN compares False
        else:
            positive = np.ones(len(rows), dtype=bool)

        codes, names = pd.factorize(pd.Series(user_ids, dtype=object), sort=True)
        counts = np.bincount(codes, minlength=len(names)) if len(codes) else np.zeros(len(names), dtype=np.int64)
        keep_user = counts >= max(int(min_interactions), 1)
        new_code = np.cumsum(keep_user) - 1
        keep = keep_user[codes] if len(codes) else np.zeros(0, dtype=bool)
        user = new_code[codes[keep]]
        order = np.lexsort((rows[keep], ts[keep], user))

        self.user_ids: list[str] = [str(u) for u in np.asarray(names, dtype=object)[keep_user]]
        self.user = user[order]
        self.row = rows[keep][order]
        self.ts = ts[keep][order]
        self.positive = positive[keep][order]
        self.click = None if click is None else click[keep][order]
        self.rating = None if rating is None else rating[keep][order]
        self.watch_ratio = None if watch_ratio is None else watch_ratio[keep][order]
        self.n_users = len(self.user_ids)
        self.counts = np.bincount(self.user, minlength=self.n_users)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])  # rows of user u: starts[u]:starts[u+1]

    def user_slice(self, u: int) -> slice:
        """The rows of user ``u``'s interactions (the log is sorted by user)."""
        return slice(int(self.starts[u]), int(self.starts[u + 1]))


def _percentile(values: np.ndarray) -> np.ndarray:
    """Average-rank percentile in [0, 1] across users (0.5 for a single user)."""
    if len(values) == 0:
        return np.zeros(0)
    return popularity_percentile(values).astype(np.float64)


def _per_user_topic(user: np.ndarray, topic: np.ndarray, mask: np.ndarray, n_users: int, n_topics: int) -> np.ndarray:
    flat = user[mask] * n_topics + topic[mask]
    return np.bincount(flat, minlength=n_users * n_topics).reshape(n_users, n_topics)


def _taste(log: InteractionLog, catalog: Catalog, use: np.ndarray, chunk_rows: int = 200_000) -> np.ndarray:
    """Normalised mean embedding of each user's rows where ``use`` is set (chunked gathers)."""
    emb = catalog.embeddings
    sums = np.zeros((log.n_users, emb.shape[1]), dtype=np.float64)
    idx = np.flatnonzero(use)
    for start in range(0, len(idx), chunk_rows):
        part = idx[start : start + chunk_rows]
        users = log.user[part]
        bounds = np.flatnonzero(np.diff(users, prepend=-1))  # users are sorted
        block = np.add.reduceat(emb[log.row[part]].astype(np.float64), bounds, axis=0)
        sums[users[bounds]] += block
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sums / np.maximum(norms, 1e-12)


# ------------------------------------------------------------------ statistical extractor
def extract_profiles(
    interactions: pd.DataFrame,
    catalog: Catalog,
    *,
    min_interactions: int = 5,
    session_gap_minutes: float = 30,
    base_traits: Traits | None = None,
) -> list[UserProfile]:
    """Deterministic USP-style profiles of every user with at least ``min_interactions`` rows.

    * positives: ``click == 1`` if there is a click column, else ``rating >= 4`` if there is a
      rating column, else every interaction (a user without positives uses all their rows);
    * ``interests``: topic shares of the positives, topics with >= 5% share, at most 6,
      renormalised to sum 1; ``dislikes``: topics with >= 3 ratings <= 2 making up >= half of the
      topic's ratings (only with ratings; a disliked topic is dropped from the interests);
    * ``novelty_seeking``: entropy of the topics of all interactions / log(number of topics);
    * ``conformity``: mean catalog popularity (a percentile) of the user's items;
    * ``patience``: mean session length in items (sessions split at gaps > ``session_gap_minutes``),
      as a percentile across the extracted users;
    * ``activity``: active days / days spanned (at least 7), as a percentile across users;
    * Big Five, verbosity and tone are not observable: taken from ``base_traits`` (0.5, casual);
    * ``taste``: unit-norm mean embedding of the positive items.

    Rows of items missing from the catalog are ignored. Users come out sorted by ``user_id``;
    the result does not depend on the order of the rows.
    """
    return extract_from_log(InteractionLog(interactions, catalog, min_interactions), catalog, session_gap_minutes, base_traits)


def extract_from_log(log: InteractionLog, catalog: Catalog, session_gap_minutes: float, base_traits: Traits | None) -> list[UserProfile]:
    if log.n_users == 0:
        return []
    base = base_traits or Traits()
    n_users, n_topics = log.n_users, catalog.n_topics
    topic = catalog.topic[log.row].astype(np.int64)
    everything = np.ones(len(log.row), dtype=bool)

    all_counts = _per_user_topic(log.user, topic, everything, n_users, n_topics)
    pos_counts = _per_user_topic(log.user, topic, log.positive, n_users, n_topics)
    has_pos = pos_counts.sum(1) > 0
    interest_counts = np.where(has_pos[:, None], pos_counts, all_counts)
    if log.rating is not None:
        rated = ~np.isnan(log.rating)
        low_counts = _per_user_topic(log.user, topic, rated & (log.rating <= LOW_RATING), n_users, n_topics)
        rated_counts = _per_user_topic(log.user, topic, rated, n_users, n_topics)
    else:
        low_counts = rated_counts = np.zeros((n_users, n_topics), dtype=np.int64)

    # novelty seeking: normalised entropy of the topics consumed
    shares = all_counts / log.counts[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(shares > 0, shares * np.log(shares), 0.0).sum(1)
    novelty = entropy / np.log(n_topics) if n_topics > 1 else np.full(n_users, 0.5)

    # conformity: mean popularity percentile of the items
    conformity = np.bincount(log.user, weights=catalog.popularity[log.row].astype(np.float64), minlength=n_users)
    conformity /= log.counts

    # patience: mean session length (items), percentile across users
    first_of_user = np.zeros(len(log.row), dtype=bool)
    first_of_user[log.starts[:-1]] = True
    gap = np.diff(log.ts, prepend=log.ts[:1])
    new_session = first_of_user | (gap > session_gap_minutes * 60.0)
    sessions = np.bincount(log.user, weights=new_session, minlength=n_users)
    patience = _percentile(log.counts / sessions)

    # activity: share of the days spanned on which the user was active, percentile across users
    day = np.floor_divide(log.ts, SECONDS_PER_DAY)
    new_day = first_of_user | (np.diff(day, prepend=day[:1]) != 0)
    active_days = np.bincount(log.user, weights=new_day, minlength=n_users)
    span = day[log.starts[1:] - 1] - day[log.starts[:-1]] + 1
    activity = _percentile(active_days / np.maximum(span, MIN_SPAN_DAYS))

    taste = _taste(log, catalog, log.positive | ~has_pos[log.user])
    names = catalog.topic_names
    profiles: list[UserProfile] = []
    for u in range(n_users):
        low = low_counts[u]
        disliked = np.flatnonzero((low >= DISLIKE_MIN_LOW) & (low >= DISLIKE_MIN_SHARE * np.maximum(rated_counts[u], 1)))
        disliked = disliked[np.lexsort((disliked, -low_counts[u, disliked]))]
        profiles.append(
            UserProfile(
                user_id=log.user_ids[u],
                segment=STATISTICAL_SEGMENT,
                interests=_interests(interest_counts[u], names, set(disliked.tolist())),
                dislikes=[names[t] for t in disliked],
                traits=base.model_copy(
                    update={
                        "novelty_seeking": _unit(novelty[u]),
                        "conformity": _unit(conformity[u]),
                        "patience": _unit(patience[u]),
                        "activity": _unit(activity[u]),
                    }
                ),
                taste=[float(x) for x in taste[u].astype(np.float32)],
            )
        )
    return profiles


def _unit(x: float) -> float:
    return round(float(np.clip(x, 0.0, 1.0)), 4)


def _interests(counts: np.ndarray, names: Sequence[str], disliked: set[int]) -> dict[str, float]:
    """Top topic shares (>= 5%, at most 6, never empty) renormalised to sum 1."""
    total = counts.sum()
    if total <= 0:
        return {}
    shares = counts / total
    order = np.lexsort((np.arange(len(counts)), -shares))  # by share, ties by topic index
    kept = [t for t in order[:INTEREST_MAX_TOPICS] if shares[t] >= INTEREST_MIN_SHARE and counts[t] > 0]
    kept = kept or [int(order[0])]
    liked = [t for t in kept if t not in disliked] or kept
    weights = shares[liked] / shares[liked].sum()
    return {names[t]: float(w) for t, w in zip(liked, weights)}
