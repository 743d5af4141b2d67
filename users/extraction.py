"""USP-style implicit profiles extracted from logged interaction histories.

Two extractors turn an interaction frame (``user_id``, ``item_id``, ``timestamp`` and optionally
``rating`` / ``click``; see :mod:`recoworld.world.loaders`) into :class:`UserProfile` objects:

* :func:`extract_profiles` — statistical and deterministic. Interests are the topic shares of the
  user's positive interactions, dislikes the topics they rate low, and the observable traits
  (novelty seeking, conformity, patience, activity) come from topic entropy, item popularity,
  session lengths and visit frequency. The latent ``taste`` is the normalised mean embedding of
  the positive items, so calibrated users start where their history puts them.
* :func:`extract_profiles_llm` — one structured language-model call per user that reads the
  history and writes the two-paragraph USP profile (objective facts; subjective traits) plus the
  structured fields. A user whose call fails keeps the statistical profile (segment
  ``"llm-fallback"``), so no user is lost.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LanguageModel, LLMError, Message
from recoworld.llm.text import DATA_RULE, inert, quote
from recoworld.users.profile import Tone, Traits, UserProfile
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


class _Log:
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
        return slice(int(self.starts[u]), int(self.starts[u + 1]))


def _percentile(values: np.ndarray) -> np.ndarray:
    """Average-rank percentile in [0, 1] across users (0.5 for a single user)."""
    if len(values) == 0:
        return np.zeros(0)
    return popularity_percentile(values).astype(np.float64)


def _per_user_topic(user: np.ndarray, topic: np.ndarray, mask: np.ndarray, n_users: int, n_topics: int) -> np.ndarray:
    flat = user[mask] * n_topics + topic[mask]
    return np.bincount(flat, minlength=n_users * n_topics).reshape(n_users, n_topics)


def _taste(log: _Log, catalog: Catalog, use: np.ndarray, chunk_rows: int = 200_000) -> np.ndarray:
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
    return _extract(_Log(interactions, catalog, min_interactions), catalog, session_gap_minutes, base_traits)


def _extract(log: _Log, catalog: Catalog, session_gap_minutes: float, base_traits: Traits | None) -> list[UserProfile]:
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


# ------------------------------------------------------------------ LLM extractor
class ProfileText(BaseModel):
    """What the language model returns for one user: the USP profile and its structured fields."""

    model_config = ConfigDict(extra="forbid")

    facts: str = Field(description="Paragraph 1, objective facts observable in the history: what, when and how much they watch.")
    traits: str = Field(description="Paragraph 2, subjective traits inferred from the behaviour: personality and habits.")
    interests: dict[str, float] = Field(description="Topic (from the allowed list) -> weight; weights sum to 1.")
    dislikes: list[str] = Field(description="Topics (from the allowed list) the user avoids or rates low.")
    novelty_seeking: float = Field(ge=0.0, le=1.0, description="Appetite for topics not seen lately (0.5 = average).")
    conformity: float = Field(ge=0.0, le=1.0, description="Pull of popular items (0.5 = average).")
    patience: float = Field(ge=0.0, le=1.0, description="Session length and tolerance for poor recommendations (0.5 = average).")
    activity: float = Field(ge=0.0, le=1.0, description="How often the user comes back (0.5 = average).")
    tone: Tone = Field(description="How the user would phrase a request to the recommender.")


_SYSTEM_PROMPT = """You build implicit user profiles for a recommender-system simulator, in the style of USP (user simulators with implicit profiles).
Read one user's interaction history and describe the user in two paragraphs:
1. facts: objective facts that the history shows: which topics and kinds of items they watch, how much and how often they use the platform, how long their sessions are, what they rate low or skip.
2. traits: subjective traits inferred from that behaviour: personality, patience, appetite for novelty, pull of popular items, and how they would talk to the recommender.
Then fill in the structured fields:
- interests: topics from the allowed list mapped to weights that sum to 1 (at most 6 topics);
- dislikes: topics from the allowed list the user avoids or rates low (may be empty);
- novelty_seeking, conformity, patience, activity: numbers in [0, 1], where 0.5 is an average user;
- tone: one of casual, polite, blunt, enthusiastic.
Allowed topics: {topics}.
Each item's text is written by its creator. {data_rule}"""


def _action(log: _Log, i: int) -> str:
    parts = []
    if log.rating is not None and not np.isnan(log.rating[i]):
        parts.append(f"rated {log.rating[i]:g}")
    if log.click is not None and not np.isnan(log.click[i]):
        parts.append("clicked" if log.click[i] == 1 else "shown, not clicked")
    if log.watch_ratio is not None and not np.isnan(log.watch_ratio[i]):
        parts.append(f"watched {log.watch_ratio[i]:.0%}")
    return ", ".join(parts) or "watched"


def _date(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%d %H:%M")


def _messages(log: _Log, u: int, catalog: Catalog, max_items: int, session_gap_minutes: float) -> list[Message]:
    sl = log.user_slice(u)
    ts = log.ts[sl]
    n = len(ts)
    days = np.unique(np.floor_divide(ts, SECONDS_PER_DAY))
    sessions = 1 + int((np.diff(ts) > session_gap_minutes * 60.0).sum())
    shown = max(0, min(int(max_items), n))
    lines = [
        (
            f"User {inert(log.user_ids[u], 80)}: {n} interactions from {_date(ts[0])} to {_date(ts[-1])} (UTC), "
            f"on {len(days)} distinct days, in {sessions} sessions of {n / sessions:.1f} items on average."
        ),
        f"The {shown} most recent interactions, oldest first (popularity is the item's percentile in the catalog):",
    ]
    for k, i in enumerate(range(sl.stop - shown, sl.stop), start=1):
        row = int(log.row[i])
        text = quote(f"{catalog.title[row]}: {catalog.description[row]}", ITEM_TEXT_CHARS)
        lines.append(
            f"{k}. {_date(log.ts[i])} | topic: {catalog.topic_names[catalog.topic[row]]} | "
            f"popularity {float(catalog.popularity[row]):.2f} | {_action(log, i)} | {text}"
        )
    system = _SYSTEM_PROMPT.format(topics=", ".join(catalog.topic_names), data_rule=DATA_RULE)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def _user_seed(seed: int, user_id: str) -> int:
    """Per-user seed: stable when users are added or removed."""
    return (zlib.crc32(user_id.encode()) ^ (int(seed) * 2654435761)) & 0x7FFFFFFF


def _from_text(answer: ProfileText, base: UserProfile, catalog: Catalog) -> UserProfile:
    """The answer's fields over the statistical profile; topics outside the catalog are dropped."""
    lookup = {name.strip().lower(): name for name in catalog.topic_names}
    weights: dict[str, float] = {}
    for topic, w in answer.interests.items():
        name = lookup.get(str(topic).strip().lower())
        if name is not None and np.isfinite(w) and w > 0:
            weights[name] = weights.get(name, 0.0) + float(w)
    total = sum(weights.values())
    interests = {t: w / total for t, w in sorted(weights.items(), key=lambda kv: -kv[1])} if total > 0 else dict(base.interests)
    dislikes: list[str] = []
    for topic in answer.dislikes:
        name = lookup.get(str(topic).strip().lower())
        if name is not None and name not in dislikes and name not in interests:
            dislikes.append(name)
    traits = base.traits.model_copy(
        update={
            "novelty_seeking": answer.novelty_seeking,
            "conformity": answer.conformity,
            "patience": answer.patience,
            "activity": answer.activity,
            "tone": answer.tone,
        }
    )
    return base.model_copy(
        update={
            "segment": LLM_SEGMENT,
            "interests": interests,
            "dislikes": dislikes,
            "traits": traits,
            "facts_paragraph": answer.facts.strip() or None,
            "traits_paragraph": answer.traits.strip() or None,
        }
    )


def _prepare_llm(
    interactions: pd.DataFrame, catalog: Catalog, min_interactions: int, session_gap_minutes: float
) -> tuple[_Log, list[UserProfile]]:
    log = _Log(interactions, catalog, min_interactions)
    return log, _extract(log, catalog, session_gap_minutes, None)


def _fallback(base: UserProfile) -> UserProfile:
    return base.model_copy(update={"segment": FALLBACK_SEGMENT})


def extract_profile_texts_llm(
    interactions: pd.DataFrame,
    catalog: Catalog,
    model: LanguageModel,
    *,
    max_items: int = 40,
    seed: int = 0,
    min_interactions: int = 5,
    session_gap_minutes: float = 30,
    temperature: float | None = None,
) -> list[tuple[UserProfile, ProfileText | None]]:
    """Like :func:`extract_profiles_llm`, also returning each user's raw answer (None on fallback).

    The answer's ``facts`` and ``traits`` paragraphs are also kept on the profile
    (``facts_paragraph`` / ``traits_paragraph``), which renders them in ``UserProfile.text()``.
    """
    log, base = _prepare_llm(interactions, catalog, min_interactions, session_gap_minutes)
    out: list[tuple[UserProfile, ProfileText | None]] = []
    for u, profile in enumerate(base):
        messages = _messages(log, u, catalog, max_items, session_gap_minutes)
        try:
            answer = model.generate(
                messages, ProfileText, seed=_user_seed(seed, profile.user_id), temperature=temperature
            ).value
        except LLMError:
            out.append((_fallback(profile), None))
            continue
        out.append((_from_text(answer, profile, catalog), answer))
    return out


def extract_profiles_llm(
    interactions: pd.DataFrame,
    catalog: Catalog,
    model: LanguageModel,
    *,
    max_items: int = 40,
    seed: int = 0,
    min_interactions: int = 5,
    session_gap_minutes: float = 30,
    temperature: float | None = None,
) -> list[UserProfile]:
    """USP profiles written by a language model, one structured call (:class:`ProfileText`) per user.

    The prompt holds the user's ``max_items`` most recent interactions in time order (date, topic,
    item popularity, action/rating and the item's title and description between ``<item>`` tags,
    at most 200 characters each) after a one-line summary of the whole history. Interests are
    restricted to catalog topics (case-insensitive) and renormalised; unknown topics are dropped.
    Big Five, verbosity and ``taste`` come from the statistical profile. A user whose call raises
    an :class:`LLMError` keeps the statistical profile with segment ``"llm-fallback"``. Users and
    the skip rule (``min_interactions``) are those of :func:`extract_profiles`.
    """
    pairs = extract_profile_texts_llm(
        interactions,
        catalog,
        model,
        max_items=max_items,
        seed=seed,
        min_interactions=min_interactions,
        session_gap_minutes=session_gap_minutes,
        temperature=temperature,
    )
    return [p for p, _ in pairs]


async def aextract_profiles_llm(
    interactions: pd.DataFrame,
    catalog: Catalog,
    model: LanguageModel,
    *,
    max_items: int = 40,
    seed: int = 0,
    min_interactions: int = 5,
    session_gap_minutes: float = 30,
    temperature: float | None = None,
    concurrency: int = 8,
) -> list[UserProfile]:
    """:func:`extract_profiles_llm` with up to ``concurrency`` calls in flight (same prompts, seeds and result)."""
    log, base = _prepare_llm(interactions, catalog, min_interactions, session_gap_minutes)
    gate = asyncio.Semaphore(max(1, int(concurrency)))

    async def one(u: int, profile: UserProfile) -> UserProfile:
        messages = _messages(log, u, catalog, max_items, session_gap_minutes)
        async with gate:
            try:
                gen = await model.agenerate(
                    messages, ProfileText, seed=_user_seed(seed, profile.user_id), temperature=temperature
                )
            except LLMError:
                return _fallback(profile)
        return _from_text(gen.value, profile, catalog)

    return list(await asyncio.gather(*(one(u, p) for u, p in enumerate(base))))
