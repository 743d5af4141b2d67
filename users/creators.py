"""Creators after CreAgent (Zhou et al. 2025): they publish day by day from the feedback they can see.

Each creator has a skill per topic (high in 1-2 niche topics), a belief per topic formed only from
their own items' CTR (or clicks) -- information asymmetry, unless ``full_information`` -- and a
creation frequency. Per item, *slow thinking* decides explore vs exploit from recent feedback
(``p_exploit`` rises with it) and picks the topic: the best-believed topic to exploit, another
topic uniformly to explore. *Fast thinking* writes the item (title, description, tags) with the
synthetic generator's text composer, or with a language model (one structured call per item,
falling back to the parametric item on any failure). A creator whose last ``quit_after`` evaluated
items all have zero clicks quits.

The platform builds each creator's :class:`CreatorFeedback` with :func:`creator_feedback`; that
object is all a creator ever sees of the platform.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LanguageModel, LLMError, Message, Usage
from recoworld.llm.text import DATA_RULE, TOPIC_CHARS, find_name, inert, name_lookup, quote, quote_all
from recoworld.users.creator_inputs import CreatorFeedback, CreatorsConfig
from recoworld.world.catalog import Item
from recoworld.world.synthetic import (
    SHORT_VIDEO_SCALE,
    TopicVocab,
    compose_texts,
    draw_text_choices,
    topic_vocabulary,
)

TITLE_CHARS, DESCRIPTION_CHARS, TAG_CHARS, MAX_TAGS = 100, 300, 30, 6


class CreatorDraft(BaseModel):
    """A creator's next item, as a language model writes it."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(description="One of the platform's topics, spelled exactly as listed.")
    explore: bool = Field(description="True to try a topic or angle you have not had success with; False to do more of what works.")
    title: str = Field(description=f"The item's title (at most {TITLE_CHARS} characters).")
    description: str = Field("", description=f"One or two sentences (at most {DESCRIPTION_CHARS} characters).")
    tags: list[str] = Field(default_factory=list, description=f"Up to {MAX_TAGS} short tags, without '#'.")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


_DECISION_COLUMNS = ("day", "creator", "item_id", "topic", "explore", "recent_feedback", "p_exploit", "fallback", "error")


class CreatorPopulation:
    """Creators' skills, beliefs and published items; all randomness from the rng passed in.

    Picklable: the language model is passed to :meth:`publish`, never stored.
    """

    def __init__(
        self,
        config: CreatorsConfig,
        names: list[str],
        topic_names: list[str],
        vocabulary: list[TopicVocab],
        skill: np.ndarray,
        frequency: np.ndarray,
        niche: np.ndarray | None = None,
    ) -> None:
        if [v[0] for v in vocabulary] != list(topic_names):
            raise ValueError("creators: vocabulary topics must match topic_names, in order")
        self.config = config
        self.names = list(names)
        self.topic_names = list(topic_names)
        self.vocabulary = vocabulary
        self.skill = np.asarray(skill, dtype=np.float64)
        self.frequency = np.asarray(frequency, dtype=np.float64)
        self.niche = np.asarray(niche, dtype=bool) if niche is not None else self.skill >= 0.5
        c = len(self.names)
        # beliefs start where skill would put them: a skill of 0.5 expects the reference feedback
        self.belief = self.skill / 0.5 * config.reference
        self.active = np.ones(c, dtype=bool)
        self.quit_day = np.full(c, -1, dtype=np.int64)
        self.recent_feedback = np.full(c, np.nan)
        self.no_click_streak = np.zeros(c, dtype=np.int64)
        self.day = -1
        self.usage = Usage()
        self._index = {n: k for k, n in enumerate(self.names)}
        # every published item, one row each: owner, topic, cumulative feedback, reports received
        self._item_row: dict[str, int] = {}
        self._owner = np.zeros(0, dtype=np.int64)
        self._topic = np.zeros(0, dtype=np.int64)
        self._imp = np.zeros(0)
        self._clk = np.zeros(0)
        self._reports = np.zeros(0, dtype=np.int64)
        self._own: list[list[int]] = [[] for _ in range(c)]  # rows in publication order
        self._titles: list[str] = []
        self._decisions: dict[str, list] = {k: [] for k in _DECISION_COLUMNS}

    @classmethod
    def sample(
        cls,
        config: CreatorsConfig,
        topic_names: list[str],
        rng: np.random.Generator,
        vocabulary: list[TopicVocab] | None = None,
        name_prefix: str = "creator",
    ) -> CreatorPopulation:
        """``config.count`` creators with niche skills and Gamma-distributed creation frequencies."""
        c, t = config.count, len(topic_names)
        if t == 0:
            raise ValueError("creators: no topics")
        lo, hi = config.niches
        n_niches = np.minimum(rng.integers(lo, hi + 1, size=c), t)
        ranks = np.argsort(np.argsort(rng.random((c, t)), axis=1), axis=1)
        niche = ranks < n_niches[:, None]
        k = config.skill_concentration
        high = rng.beta(config.niche_skill * k, (1 - config.niche_skill) * k, size=(c, t))
        low = rng.beta(config.other_skill * k, (1 - config.other_skill) * k, size=(c, t))
        skill = np.where(niche, high, low)
        frequency = rng.gamma(config.frequency_shape, config.items_per_day / config.frequency_shape, size=c)
        vocab = vocabulary if vocabulary is not None else topic_vocabulary(topic_names)
        return cls(config, [f"{name_prefix}{i}" for i in range(c)], list(topic_names), vocab, skill, frequency, niche)

    # ------------------------------------------------------------------ publishing
    def p_exploit(self, recent: np.ndarray) -> np.ndarray:
        """Probability of exploiting given recent feedback (NaN = none yet: the bias alone)."""
        cfg = self.config
        signal = np.nan_to_num((np.asarray(recent, dtype=float) - cfg.reference) / cfg.scale, nan=0.0)
        return _sigmoid(cfg.exploit_bias + cfg.exploit_slope * signal)

    def publish(
        self,
        day: int,
        rng: np.random.Generator,
        language_model: LanguageModel | None = None,
        max_in_flight: int = 16,
    ) -> list[Item]:
        """Today's new items: each active creator publishes Poisson(frequency) items.

        Parametric draws are made for every item whatever the backend, so the LLM's failures fall
        back to exactly the item the parametric creator would have made.
        """
        cfg = self.config
        if cfg.backend == "llm" and language_model is None:
            raise ValueError("creators.backend is 'llm': publish() needs a language_model")
        self.day = day
        counts = rng.poisson(self.frequency) * self.active
        who = np.repeat(np.arange(len(self.names)), counts)
        n, t = len(who), len(self.topic_names)
        if n == 0:
            return []
        # slow thinking: explore or exploit, then the topic
        recent = self.recent_feedback[who]
        p = self.p_exploit(recent)
        explore = rng.random(n) >= p
        best = np.argmax(self.belief[who], axis=1)
        other = np.minimum((rng.random(n) * max(t - 1, 1)).astype(np.int64), max(t - 2, 0))
        topic = np.where(explore & (t > 1), other + (other >= best), best)
        # fast thinking: text, quality and duration
        titles, descriptions, tags = compose_texts(self.vocabulary, topic, *draw_text_choices(rng, n))
        noise = rng.normal(0.0, cfg.quality_noise, size=n)
        stretch = rng.lognormal(0.0, 0.5, size=n)
        published = np.array([len(rows) for rows in self._own], dtype=np.int64)
        serial = published[who] + np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        ids = [f"{self.names[c]}-d{day}-{s}" for c, s in zip(who, serial)]
        fallback = np.zeros(n, dtype=bool)
        errors: list[str | None] = [None] * n
        if cfg.backend == "llm":
            drafts = self._llm_drafts(day, who, ids, recent, language_model, max_in_flight)
            for i, draft in enumerate(drafts):
                if isinstance(draft, str):
                    fallback[i], errors[i] = True, draft
                    continue
                topic[i], explore[i] = self.topic_names.index(draft.topic), draft.explore
                titles[i], descriptions[i] = draft.title, draft.description
                tags[i] = tuple(draft.tags)
        quality = np.clip(self.skill[who, topic] + noise, 0.0, 1.0)
        medians = np.array([v[3] for v in self.vocabulary]) * SHORT_VIDEO_SCALE
        duration = np.clip(medians[topic] * stretch, 10.0, 7200.0)
        items = [
            Item(
                item_id=ids[i], title=titles[i], description=descriptions[i], topic=self.topic_names[topic[i]],
                tags=list(tags[i]), creator=self.names[who[i]], duration=float(duration[i]),
                quality=float(quality[i]), created_day=day, popularity=0.0,
            )
            for i in range(n)
        ]
        self._record(day, who, ids, topic, explore, recent, p, fallback, errors, titles)
        return items

    def _record(
        self, day: int, who: np.ndarray, ids: list[str], topic: np.ndarray, explore: np.ndarray, recent: np.ndarray,
        p: np.ndarray, fallback: np.ndarray, errors: list[str | None], titles: np.ndarray,
    ) -> None:
        start = len(self._owner)
        for i, c in enumerate(who):
            self._item_row[ids[i]] = start + i
            self._own[c].append(start + i)
        n = len(who)
        self._owner = np.concatenate([self._owner, who])
        self._topic = np.concatenate([self._topic, topic])
        self._imp = np.concatenate([self._imp, np.zeros(n)])
        self._clk = np.concatenate([self._clk, np.zeros(n)])
        self._reports = np.concatenate([self._reports, np.zeros(n, dtype=np.int64)])
        self._titles.extend(str(x) for x in titles)
        d = self._decisions
        d["day"].extend([day] * n)
        d["creator"].extend(self.names[c] for c in who)
        d["item_id"].extend(ids)
        d["topic"].extend(self.topic_names[k] for k in topic)
        d["explore"].extend(bool(x) for x in explore)
        d["recent_feedback"].extend(float(x) for x in recent)
        d["p_exploit"].extend(float(x) for x in p)
        d["fallback"].extend(bool(x) for x in fallback)
        d["error"].extend(errors)

    # ------------------------------------------------------------------ LLM fast thinking
    def messages(self, c: int, day: int, item_id: str, recent: float) -> list[Message]:
        """The prompt of creator ``c`` for one item: skills, own beliefs, own recent items (delimited)."""
        cfg = self.config
        unit = "CTR" if cfg.feedback == "ctr" else "clicks per item"
        order = np.argsort(-self.belief[c])
        system = (
            f"You are {self.names[c]}, a creator on a short-video platform. You decide your next item: explore "
            "(try something new) or exploit (more of what works), then write its title, topic, description and "
            f"tags. {DATA_RULE}"
        )
        lines = [
            f"Day {day}. Topics: {quote_all(self.topic_names)}.",
            "Your skills: " + ", ".join(f"{quote(self.topic_names[k], TOPIC_CHARS)} {self.skill[c, k]:.2f}" for k in np.argsort(-self.skill[c])[:5]) + ".",
            f"What you believe each topic earns you ({unit}): "
            + ", ".join(f"{quote(self.topic_names[k], TOPIC_CHARS)} {self.belief[c, k]:.3g}" for k in order[:5]) + ".",
            (
                f"Your recent feedback: {'none yet' if np.isnan(recent) else f'{recent:.3g} {unit}'} "
                f"(typical: {cfg.reference:.3g}). Items in a row without a click: {self.no_click_streak[c]} "
                f"(you quit at {cfg.quit_after})."
            ),
        ]
        rows = self._own[c][-cfg.recent_items :]
        if rows:
            lines.append("Your latest items:")
            lines.extend(
                f"{quote(self._titles[r], 80)} ({quote(self.topic_names[self._topic[r]], TOPIC_CHARS)}: "
                f"{int(self._imp[r])} impressions, {int(self._clk[r])} clicks)"
                for r in rows
            )
        lines.append(f"Write item {item_id}. Title at most {TITLE_CHARS} characters, description one or two sentences.")
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]

    def _llm_drafts(
        self, day: int, who: np.ndarray, ids: list[str], recent: np.ndarray, model: LanguageModel, max_in_flight: int
    ) -> list[CreatorDraft | str]:
        """One validated, capped draft per item, or the name of the error that makes it fall back."""
        from recoworld.llm.requests import run_requests

        requests = [(self.messages(int(c), day, ids[i], float(recent[i])), CreatorDraft) for i, c in enumerate(who)]
        lookup = name_lookup(self.topic_names)
        out: list[CreatorDraft | str] = []
        for result in run_requests(model, requests, max_in_flight):
            if isinstance(result, LLMError):
                out.append(type(result).__name__)
                continue
            self.usage = self.usage + result.usage
            d = result.value
            topic = find_name(lookup, d.topic)
            title = inert(d.title, TITLE_CHARS)
            if topic is None or not title:
                out.append("invalid topic" if topic is None else "empty title")
                continue
            tags = [t for t in (inert(g, TAG_CHARS).lstrip("#") for g in d.tags[:MAX_TAGS]) if t]
            out.append(CreatorDraft(topic=topic, explore=d.explore, title=title,
                                    description=inert(d.description, DESCRIPTION_CHARS), tags=tags))
        return out

    # ------------------------------------------------------------------ feedback
    def observe(self, feedback: Sequence[CreatorFeedback], day: int | None = None) -> None:
        """Update beliefs, recent feedback, no-click streaks and quits from each creator's own feedback.

        An item is *evaluated* once it has impressions or has been in ``settle_days`` reports. A
        topic's belief moves (EMA, ``belief_rate``) toward the creator's own CTR (or clicks per
        evaluated item) in that topic whenever that topic's items got new impressions; with full
        information every topic also moves toward the platform figure. The no-click streak is the
        number of most recent evaluated items with zero clicks; reaching ``quit_after`` quits.
        Items unknown to the population are ignored; items of another creator raise ValueError.
        """
        cfg, rate = self.config, self.config.belief_rate
        day = self.day if day is None else day
        for fb in feedback:
            c = self._index.get(fb.creator)
            if c is None:
                continue
            rows = np.array([self._item_row.get(str(i), -1) for i in fb.item_ids], dtype=np.int64)
            known = rows >= 0
            rows = rows[known]
            if np.any(self._owner[rows] != c):
                raise ValueError(f"creators: feedback for '{fb.creator}' lists items of another creator")
            imp, clk = np.asarray(fb.impressions, float)[known], np.asarray(fb.clicks, float)[known]
            grew = imp > self._imp[rows]
            self._imp[rows], self._clk[rows] = imp, clk
            self._reports[rows] += 1
            own = np.asarray(self._own[c], dtype=np.int64)
            evaluated = own[(self._imp[own] > 0) | (self._reports[own] >= cfg.settle_days)]
            for k in np.unique(self._topic[rows[grew]]):
                in_topic = evaluated[self._topic[evaluated] == k]
                self.belief[c, k] += rate * (self._value(in_topic) - self.belief[c, k])
            platform = fb.topic_ctr if cfg.feedback == "ctr" else fb.topic_clicks
            if cfg.full_information and platform is not None:
                seen = np.isfinite(platform)
                self.belief[c, seen] += rate * (platform[seen] - self.belief[c, seen])
            if len(evaluated):
                self.recent_feedback[c] = self._value(evaluated[-cfg.recent_items :])
                clicked = np.flatnonzero(self._clk[evaluated] > 0)
                self.no_click_streak[c] = len(evaluated) - 1 - clicked[-1] if len(clicked) else len(evaluated)
            if self.active[c] and self.no_click_streak[c] >= cfg.quit_after:
                self.active[c], self.quit_day[c] = False, day

    def _value(self, rows: np.ndarray) -> float:
        """Pooled CTR (clicks / impressions, 0 without impressions) or mean clicks of ``rows``."""
        clicks = float(self._clk[rows].sum())
        if self.config.feedback == "clicks":
            return clicks / max(len(rows), 1)
        impressions = float(self._imp[rows].sum())
        return clicks / impressions if impressions > 0 else 0.0

    # ------------------------------------------------------------------ records
    def decision_frame(self) -> pd.DataFrame:
        """Every publish decision: day, creator, item_id, topic, explore, recent_feedback, p_exploit, fallback, error."""
        return pd.DataFrame(self._decisions, columns=list(_DECISION_COLUMNS))

    def day_table(self, day: int) -> pd.DataFrame:
        """One row per creator: what they did on ``day`` and where they stand now."""
        dec = self.decision_frame()
        dec = dec[dec["day"] == day]
        by = dec.groupby("creator")
        names = pd.Index(self.names)

        def count(per_creator: pd.Series) -> np.ndarray:
            return per_creator.reindex(names, fill_value=0).to_numpy().astype(np.int64)

        c = len(self.names)
        owner = self._owner
        return pd.DataFrame(
            {
                "day": day,
                "creator": self.names,
                "active": self.active,
                "quit": self.quit_day == day,
                "published": count(by.size()),
                "explored": count(by["explore"].sum()),
                "exploited": count(by.size()) - count(by["explore"].sum()),
                "fallbacks": count(by["fallback"].sum()),
                "recent_feedback": self.recent_feedback,
                "items_total": np.bincount(owner, minlength=c),
                "impressions_total": np.bincount(owner, self._imp, minlength=c),
                "clicks_total": np.bincount(owner, self._clk, minlength=c),
                "best_topic": [self.topic_names[k] for k in np.argmax(self.belief, axis=1)] if c else [],
            }
        )
