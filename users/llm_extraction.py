"""The LLM profile extractor: one structured call per user writes the USP two-paragraph profile and
its structured fields from the user's recent history (falling back to the statistical profile)."""

from __future__ import annotations

import asyncio
import zlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LanguageModel, LLMError, Message
from recoworld.llm.text import DATA_RULE, TOPIC_CHARS, find_name, name_lookup, quote, quote_all
from recoworld.users.extraction import (
    FALLBACK_SEGMENT,
    ITEM_TEXT_CHARS,
    LLM_SEGMENT,
    SECONDS_PER_DAY,
    InteractionLog,
    extract_from_log,
)
from recoworld.users.profile import Tone, UserProfile
from recoworld.world.catalog import Catalog


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


def _action(log: InteractionLog, i: int) -> str:
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


def _messages(log: InteractionLog, u: int, catalog: Catalog, max_items: int, session_gap_minutes: float) -> list[Message]:
    sl = log.user_slice(u)
    ts = log.ts[sl]
    n = len(ts)
    days = np.unique(np.floor_divide(ts, SECONDS_PER_DAY))
    sessions = 1 + int((np.diff(ts) > session_gap_minutes * 60.0).sum())
    shown = max(0, min(int(max_items), n))
    lines = [
        (
            f"User {quote(log.user_ids[u], 80)}: {n} interactions from {_date(ts[0])} to {_date(ts[-1])} (UTC), "
            f"on {len(days)} distinct days, in {sessions} sessions of {n / sessions:.1f} items on average."
        ),
        f"The {shown} most recent interactions, oldest first (popularity is the item's percentile in the catalog):",
    ]
    for k, i in enumerate(range(sl.stop - shown, sl.stop), start=1):
        row = int(log.row[i])
        text = quote(f"{catalog.title[row]}: {catalog.description[row]}", ITEM_TEXT_CHARS)
        lines.append(
            f"{k}. {_date(log.ts[i])} | topic: {quote(catalog.topic_names[catalog.topic[row]], TOPIC_CHARS)} | "
            f"popularity {float(catalog.popularity[row]):.2f} | {_action(log, i)} | {text}"
        )
    system = _SYSTEM_PROMPT.format(topics=quote_all(catalog.topic_names), data_rule=DATA_RULE)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def _user_seed(seed: int, user_id: str) -> int:
    """Per-user seed: stable when users are added or removed."""
    return (zlib.crc32(user_id.encode()) ^ (int(seed) * 2654435761)) & 0x7FFFFFFF


def _from_text(answer: ProfileText, base: UserProfile, catalog: Catalog) -> UserProfile:
    """The answer's fields over the statistical profile; topics outside the catalog are dropped."""
    lookup = name_lookup(catalog.topic_names)
    weights: dict[str, float] = {}
    for topic, w in answer.interests.items():
        name = find_name(lookup, topic)
        if name is not None and np.isfinite(w) and w > 0:
            weights[name] = weights.get(name, 0.0) + float(w)
    total = sum(weights.values())
    interests = {t: w / total for t, w in sorted(weights.items(), key=lambda kv: -kv[1])} if total > 0 else dict(base.interests)
    dislikes: list[str] = []
    for topic in answer.dislikes:
        name = find_name(lookup, topic)
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
) -> tuple[InteractionLog, list[UserProfile]]:
    log = InteractionLog(interactions, catalog, min_interactions)
    return log, extract_from_log(log, catalog, session_gap_minutes, None)


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
    item popularity, action/rating and the item's title and description quoted by ``recoworld.llm.text``,
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
