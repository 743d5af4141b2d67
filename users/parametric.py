"""The reference parametric user model, vectorised over a batch of users.

State lives in :class:`UserBatch` (struct of arrays). :class:`ParametricUserModel` reads and
writes the rows selected by ``idx`` (an index array, or ``slice(None)`` for the whole batch),
so the single-user env (a batch of one) and the population runner share one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.catalog import Catalog
from recoworld.users.instructions import NO_TOPIC, compliance, familiar_topics
from recoworld.users.profile import TONES, UserProfile

Index = np.ndarray | slice


class ParametricUserParams(BaseModel):
    """Constants of the parametric user model (all overridable from a scenario's ``user_model``)."""

    model_config = ConfigDict(extra="forbid")

    # utility u = a·cos + b·(q−.5) + c·conf·pop + d·nov·novelty − e·satiation − f·fatigue + noise
    w_taste: float = Field(3.0, description="a: weight of cos(taste, item).")
    w_quality: float = Field(1.0, description="b: weight of quality − 0.5.")
    w_popularity: float = Field(0.8, description="c: weight of conformity × popularity.")
    w_novelty: float = Field(1.0, description="d: weight of novelty_seeking × topic novelty.")
    w_satiation: float = Field(1.2, description="e: weight of the item's topic satiation.")
    w_fatigue: float = Field(0.5, description="f: weight of session fatigue.")
    w_dislike: float = Field(2.0, description="Penalty for a disliked topic.")
    w_repeat: float = Field(2.5, description="Penalty for an item already watched (or repeated in the slate).")
    noise_sd: float = Field(0.3, ge=0, description="Std of the utility noise.")
    novelty_scale: float = Field(3.0, gt=0, description="Exposure at which a topic's novelty falls to 1/e.")
    # actions
    click_threshold: float = Field(1.5, description="Utility with a 50% click chance.")
    click_temperature: float = Field(0.35, gt=0, description="Softness of the click decision.")
    watch_midpoint: float = Field(0.9, description="Utility at which half the item is watched.")
    watch_slope: float = Field(2.5, ge=0, description="How fast watch fraction rises with utility.")
    like_threshold: float = Field(1.8, description="Utility with a 50% like chance (agreeableness shifts it).")
    share_threshold: float = Field(2.6, description="Utility with a 50% share chance (extraversion shifts it).")
    comment_threshold: float = Field(2.4, description="Utility with a 50% comment chance (extraversion, verbosity).")
    # satiation and fatigue
    satiation_gain: float = Field(0.15, ge=0, description="Short-term satiation per fully watched item of a topic.")
    satiation_exposure_gain: float = Field(0.04, ge=0, description="Short-term satiation per item of a topic shown.")
    satiation_long_gain: float = Field(0.1, ge=0, description="Long-term satiation per fully watched item.")
    satiation_step_decay: float = Field(0.9, ge=0, le=1, description="Short-term satiation kept after each slate.")
    satiation_day_decay: float = Field(0.3, ge=0, le=1, description="Short-term satiation kept per day away.")
    satiation_long_day_decay: float = Field(0.9, ge=0, le=1, description="Long-term satiation kept per day away.")
    in_slate_repeat: float = Field(0.1, ge=0, description="Satiation added per earlier same-topic item in the slate.")
    exposure_step_decay: float = Field(0.95, ge=0, le=1, description="Topic exposure kept after each slate.")
    exposure_day_decay: float = Field(0.7, ge=0, le=1, description="Topic exposure kept per day away.")
    fatigue_per_item: float = Field(0.01, ge=0, description="Fatigue per item reviewed.")
    fatigue_per_minute: float = Field(0.01, ge=0, description="Fatigue per minute watched.")
    # satisfaction, trust, taste
    satisfaction_rate: float = Field(0.3, gt=0, le=1, description="EMA rate of satisfaction per slate.")
    satisfaction_value_scale: float = Field(0.35, gt=0, description="Slate value that counts as full satisfaction.")
    satisfaction_day_reversion: float = Field(0.85, ge=0, le=1, description="Share of satisfaction's distance from 0.5 kept per day.")
    taste_drift: float = Field(0.03, ge=0, description="Step of the taste towards liked items.")
    # leave hazard (per item reviewed)
    hazard_bias: float = Field(-4.5, description="Logit of leaving after an item at neutral state.")
    hazard_fatigue: float = Field(1.0, description="Hazard logit per unit fatigue.")
    hazard_boredom: float = Field(0.12, description="Hazard logit per consecutive skip.")
    hazard_satiation: float = Field(0.6, description="Hazard logit per unit satiation of the item's topic.")
    hazard_satisfaction: float = Field(2.5, description="Hazard logit per unit satisfaction above 0.5 (lowers it).")
    hazard_trust: float = Field(1.5, description="Hazard logit per unit trust above 0.5 (lowers it).")
    hazard_patience: float = Field(1.5, description="Hazard logit per unit patience above 0.5 (lowers it).")
    # reflective instructions
    voice_threshold: float = Field(0.3, ge=0, le=1, description="Users with verbosity at or above this can speak up.")
    instruction_risk: float = Field(0.3, ge=0, le=1, description="Chance of leaving within the next slate that triggers an instruction.")
    instruction_satiation: float = Field(0.6, ge=0, description="Satiation above which a topic is named as 'less'.")
    instruction_patience: int = Field(3, ge=1, description="Slates the user waits for compliance.")
    instruction_cooldown: int = Field(3, ge=0, description="Slates after an instruction ends before the next one.")
    compliance_resolve: float = Field(0.7, ge=0, le=1, description="Compliance that settles an instruction.")
    compliance_satisfaction: float = Field(0.2, ge=0, description="Satisfaction change per unit compliance above 0.5.")
    compliance_trust: float = Field(0.15, ge=0, description="Trust change per unit compliance above 0.5.")
    ignored_trust_penalty: float = Field(0.12, ge=0, description="Trust lost when an instruction is ignored to the end.")
    # returning between sessions
    return_bias: float = Field(-0.4, description="Daily return logit at neutral state.")
    return_satisfaction: float = Field(3.5, description="Return logit per unit satisfaction above 0.5.")
    return_trust: float = Field(2.0, description="Return logit per unit trust above 0.5.")
    return_activity: float = Field(2.5, description="Return logit per unit activity above 0.5.")


@dataclass
class UserBatch:
    """Per-user arrays: profile-derived constants, then the hidden mindset."""

    # profile (constant)
    taste: np.ndarray  # (B, D) unit vectors; drifts
    interest: np.ndarray  # (B, T)
    dislike: np.ndarray  # (B, T) bool
    patience: np.ndarray
    novelty_seeking: np.ndarray
    conformity: np.ndarray
    activity: np.ndarray
    verbosity: np.ndarray
    extraversion: np.ndarray
    agreeableness: np.ndarray
    neuroticism: np.ndarray
    tone: np.ndarray  # (B,) index into TONES
    # mindset (hidden from the recommender)
    sat_short: np.ndarray  # (B, T)
    sat_long: np.ndarray  # (B, T)
    exposure: np.ndarray  # (B, T) decayed count of items shown per topic
    fatigue: np.ndarray
    satisfaction: np.ndarray
    trust: np.ndarray
    boredom: np.ndarray  # consecutive skips
    instr_more: np.ndarray  # (B,) topic or NO_TOPIC
    instr_less: np.ndarray
    instr_surprise: np.ndarray  # bool
    instr_age: np.ndarray  # slates since the instruction; -1 = none pending
    instr_cooldown: np.ndarray
    consumed: np.ndarray  # (B, N) bool: items clicked before

    def __len__(self) -> int:
        return len(self.fatigue)

    @property
    def instr_active(self) -> np.ndarray:
        return self.instr_age >= 0

    @classmethod
    def from_profiles(
        cls, profiles: Sequence[UserProfile], catalog: Catalog, rng: np.random.Generator, taste_noise: float = 0.35
    ) -> "UserBatch":
        """Arrays for ``profiles``; a profile without ``taste`` gets its interests' topic centroids plus noise."""
        b, t_count = len(profiles), catalog.n_topics
        topic_index = {name: k for k, name in enumerate(catalog.topic_names)}
        interest = np.zeros((b, t_count), dtype=np.float32)
        dislike = np.zeros((b, t_count), dtype=bool)
        for r, prof in enumerate(profiles):
            for name, w in prof.interests.items():
                if name not in topic_index:
                    raise ValueError(f"user {prof.user_id}: interest topic '{name}' is not in the catalog")
                interest[r, topic_index[name]] = w
            for name in prof.dislikes:
                if name in topic_index:
                    dislike[r, topic_index[name]] = True
        interest /= np.maximum(interest.sum(1, keepdims=True), 1e-9)
        centroids = catalog.topic_centroids
        dim = centroids.shape[1]
        noise = rng.standard_normal((b, dim)).astype(np.float32) * taste_noise / np.sqrt(dim)
        taste = interest @ centroids + noise
        for r, prof in enumerate(profiles):
            if prof.taste is not None:
                if len(prof.taste) != dim:
                    raise ValueError(f"user {prof.user_id}: taste has {len(prof.taste)} dims, catalog embeddings have {dim}")
                taste[r] = prof.taste
        taste /= np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-9)

        def trait(name: str) -> np.ndarray:
            return np.array([getattr(p.traits, name) for p in profiles], dtype=np.float32)

        zeros_t = np.zeros((b, t_count), dtype=np.float32)
        return cls(
            taste=taste.astype(np.float32),
            interest=interest,
            dislike=dislike,
            patience=trait("patience"),
            novelty_seeking=trait("novelty_seeking"),
            conformity=trait("conformity"),
            activity=trait("activity"),
            verbosity=trait("verbosity"),
            extraversion=trait("extraversion"),
            agreeableness=trait("agreeableness"),
            neuroticism=trait("neuroticism"),
            tone=np.array([TONES.index(p.traits.tone) for p in profiles], dtype=np.int8),
            sat_short=zeros_t.copy(),
            sat_long=zeros_t.copy(),
            exposure=zeros_t.copy(),
            fatigue=np.zeros(b, dtype=np.float32),
            satisfaction=np.full(b, 0.5, dtype=np.float32),
            trust=np.full(b, 0.5, dtype=np.float32),
            boredom=np.zeros(b, dtype=np.float32),
            instr_more=np.full(b, NO_TOPIC, dtype=np.int32),
            instr_less=np.full(b, NO_TOPIC, dtype=np.int32),
            instr_surprise=np.zeros(b, dtype=bool),
            instr_age=np.full(b, -1, dtype=np.int32),
            instr_cooldown=np.zeros(b, dtype=np.int32),
            consumed=np.zeros((b, len(catalog)), dtype=bool),
        )

    def copy(self) -> "UserBatch":
        return UserBatch(**{f.name: getattr(self, f.name).copy() for f in fields(self)})


@dataclass
class SlateResponse:
    """What each user did with each slot of their slate (b users × K slots)."""

    reviewed: np.ndarray  # bool: the user got to this slot
    click: np.ndarray
    like: np.ndarray
    share: np.ndarray
    comment: np.ndarray
    watch_frac: np.ndarray  # fraction of the item watched (0 where not clicked)
    watch_seconds: np.ndarray
    utility: np.ndarray
    left: np.ndarray  # (b,) the user left the session in this slate
    left_at: np.ndarray  # (b,) slot at which they left, -1 if they stayed
    boredom_after: np.ndarray  # (b, K) consecutive skips after each slot

    @property
    def skip(self) -> np.ndarray:
        return self.reviewed & ~self.click


@dataclass
class SlateEffects:
    """Hidden consequences of a slate that the world reports (b users)."""

    compliance: np.ndarray  # score in [0, 1]; nan where no instruction was pending
    resolved: np.ndarray  # instruction followed well enough this slate
    ignored: np.ndarray  # instruction given up on this slate
    emitted: np.ndarray  # a new instruction was voiced after this slate
    risk: np.ndarray  # chance of leaving within the next slate


def user_rows(users: UserBatch, idx: Index) -> np.ndarray:
    """The batch rows that ``idx`` selects, as an index array."""
    return np.arange(len(users))[idx] if isinstance(idx, slice) else np.asarray(idx)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def topic_sums(topics: np.ndarray, values: np.ndarray, n_topics: int) -> np.ndarray:
    """(b, T) per-topic sums of (b, K) values."""
    b = topics.shape[0]
    flat = (np.arange(b)[:, None] * n_topics + topics).ravel()
    return np.bincount(flat, weights=values.ravel(), minlength=b * n_topics).reshape(b, n_topics).astype(np.float32)


class ParametricUserModel:
    """Reviews slates, updates the mindset, and decides when users come back."""

    def __init__(self, params: ParametricUserParams | None = None) -> None:
        self.params = params or ParametricUserParams()

    # -------------------------------------------------------------- reviewing
    def hazard_logit(
        self, users: UserBatch, idx: Index, fatigue: np.ndarray, boredom: np.ndarray, satiation: np.ndarray
    ) -> np.ndarray:
        """Logit of leaving after an item; ``fatigue``/``boredom``/``satiation`` broadcast over (b, K)."""
        p = self.params
        base = (
            p.hazard_bias
            - p.hazard_satisfaction * (users.satisfaction[idx] - 0.5)
            - p.hazard_trust * (users.trust[idx] - 0.5)
            - p.hazard_patience * (users.patience[idx] - 0.5)
        )
        if base.ndim < np.ndim(fatigue):
            base = base[:, None]
        return base + p.hazard_fatigue * fatigue + p.hazard_boredom * boredom + p.hazard_satiation * satiation

    def review(
        self, users: UserBatch, idx: Index, slates: np.ndarray, catalog: Catalog, rng: np.random.Generator
    ) -> SlateResponse:
        """Each user reviews their slate in order: click, watch, like/share/comment, or skip; maybe leave."""
        p = self.params
        b, k = slates.shape
        pos = np.arange(k)
        rows = np.arange(b)[:, None]
        topics = catalog.topic[slates]
        emb = catalog.embeddings[slates]
        aff = np.einsum("bkd,bd->bk", emb, users.taste[idx])
        sat = users.sat_short[idx] + users.sat_long[idx]
        same_topic = topics[:, :, None] == topics[:, None, :]
        earlier_same = np.tril(same_topic, -1).sum(2)
        sat_item = np.take_along_axis(sat, topics, 1) + p.in_slate_repeat * earlier_same
        novelty = np.exp(-np.take_along_axis(users.exposure[idx], topics, 1) / p.novelty_scale)
        repeat = users.consumed[user_rows(users, idx)[:, None], slates] | np.tril(slates[:, :, None] == slates[:, None, :], -1).any(2)
        fatigue = users.fatigue[idx][:, None] + p.fatigue_per_item * pos
        u = (
            p.w_taste * aff
            + p.w_quality * (catalog.quality[slates] - 0.5)
            + p.w_popularity * users.conformity[idx][:, None] * catalog.popularity[slates]
            + p.w_novelty * users.novelty_seeking[idx][:, None] * novelty
            - p.w_satiation * sat_item
            - p.w_fatigue * fatigue
            - p.w_dislike * np.take_along_axis(users.dislike[idx], topics, 1)
            - p.w_repeat * repeat
            + p.noise_sd * rng.standard_normal((b, k))
        )
        draws = rng.random((5, b, k))
        click = draws[0] < sigmoid((u - p.click_threshold) / p.click_temperature)
        patience = users.patience[idx][:, None]
        watch_frac = sigmoid(p.watch_slope * (u - p.watch_midpoint)) * (0.6 + 0.4 * patience)
        watch_frac = np.where(click, np.clip(watch_frac, 0.02, 1.0), 0.0)
        extra = users.extraversion[idx][:, None]
        like = click & (draws[1] < sigmoid(u - p.like_threshold + 2.0 * (users.agreeableness[idx][:, None] - 0.5)))
        share = click & (draws[2] < sigmoid(u - p.share_threshold + 2.0 * (extra - 0.5)))
        talk = 0.5 * (extra + users.verbosity[idx][:, None])
        comment = click & (draws[3] < sigmoid(u - p.comment_threshold + 2.0 * (talk - 0.5)))
        last_click = np.maximum.accumulate(np.where(click, pos, -1), axis=1)
        boredom = np.where(last_click >= 0, pos - last_click, users.boredom[idx][:, None] + pos + 1).astype(np.float32)
        leave_now = draws[4] < sigmoid(self.hazard_logit(users, idx, fatigue, boredom, sat_item))
        left = leave_now.any(1)
        left_at = np.where(left, leave_now.argmax(1), -1)
        reviewed = pos[None, :] <= np.where(left, left_at, k)[:, None]
        click &= reviewed
        watch_frac = np.where(reviewed, watch_frac, 0.0).astype(np.float32)
        return SlateResponse(
            reviewed=reviewed,
            click=click,
            like=like & reviewed,
            share=share & reviewed,
            comment=comment & reviewed,
            watch_frac=watch_frac,
            watch_seconds=(watch_frac * catalog.duration[slates]).astype(np.float32),
            utility=u.astype(np.float32),
            left=left,
            left_at=left_at,
            boredom_after=boredom,
        )

    # --------------------------------------------------------------- updating
    def update(
        self,
        users: UserBatch,
        idx: Index,
        slates: np.ndarray,
        resp: SlateResponse,
        catalog: Catalog,
        rng: np.random.Generator,
    ) -> SlateEffects:
        """Mindset after a slate: satiation, fatigue, satisfaction, trust, taste drift, instructions."""
        p = self.params
        b, k = slates.shape
        t_count = catalog.n_topics
        topics = catalog.topic[slates]
        rows = np.arange(b)
        watched = topic_sums(topics, resp.watch_frac, t_count)
        shown = topic_sums(topics, resp.reviewed.astype(np.float32), t_count)
        users.sat_short[idx] = users.sat_short[idx] * p.satiation_step_decay + p.satiation_gain * watched + p.satiation_exposure_gain * shown
        users.sat_long[idx] = users.sat_long[idx] + p.satiation_long_gain * watched
        users.exposure[idx] = users.exposure[idx] * p.exposure_step_decay + shown
        n_reviewed = resp.reviewed.sum(1)
        minutes = resp.watch_seconds.sum(1) / 60.0
        users.fatigue[idx] = users.fatigue[idx] + p.fatigue_per_item * n_reviewed + p.fatigue_per_minute * minutes
        last = np.maximum(n_reviewed - 1, 0)
        users.boredom[idx] = resp.boredom_after[rows, last]
        value = (resp.click * (0.5 + 0.5 * resp.watch_frac) + 0.25 * resp.like).sum(1) / np.maximum(n_reviewed, 1)
        target = np.clip(value / p.satisfaction_value_scale, 0.0, 1.0)
        satisfaction = users.satisfaction[idx] + p.satisfaction_rate * (target - users.satisfaction[idx])
        trust = users.trust[idx].copy()

        # compliance with a pending instruction
        active = users.instr_age[idx] >= 0
        score = np.full(b, np.nan)
        resolved = np.zeros(b, dtype=bool)
        ignored = np.zeros(b, dtype=bool)
        if active.any():
            familiar = familiar_topics(users.exposure[idx] - shown)
            c = compliance(topics, users.instr_more[idx], users.instr_less[idx], users.instr_surprise[idx], familiar)
            score = np.where(active, c, np.nan)
            delta = np.where(active, c - 0.5, 0.0)
            satisfaction = satisfaction + p.compliance_satisfaction * delta
            trust = trust + p.compliance_trust * delta * (1.0 + 0.5 * (users.neuroticism[idx] - 0.5))
            age = np.where(active, users.instr_age[idx] + 1, users.instr_age[idx])
            resolved = active & (c >= p.compliance_resolve)
            ignored = active & ~resolved & (age >= p.instruction_patience)
            trust = trust - p.ignored_trust_penalty * ignored
            ended = resolved | ignored
            users.instr_age[idx] = np.where(ended, -1, age)
            users.instr_more[idx] = np.where(ended, NO_TOPIC, users.instr_more[idx])
            users.instr_less[idx] = np.where(ended, NO_TOPIC, users.instr_less[idx])
            users.instr_surprise[idx] = users.instr_surprise[idx] & ~ended
            users.instr_cooldown[idx] = np.where(ended, p.instruction_cooldown, users.instr_cooldown[idx])
            users.boredom[idx] = np.where(resolved, 0.0, users.boredom[idx])
        users.satisfaction[idx] = np.clip(satisfaction, 0.0, 1.0)
        users.trust[idx] = np.clip(trust, 0.0, 1.0)

        # taste drifts towards liked items; consumed items are remembered
        if resp.like.any():
            liked = np.einsum("bk,bkd->bd", resp.like.astype(np.float32), catalog.embeddings[slates])
            taste = users.taste[idx] + p.taste_drift * liked
            users.taste[idx] = taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-9)
        r, s = np.nonzero(resp.click)
        users.consumed[user_rows(users, idx)[r], slates[r, s]] = True

        # disengagement risk and reflective instructions
        risk = self.leave_risk(users, idx, k)
        cooldown = users.instr_cooldown[idx]
        can_speak = (users.verbosity[idx] >= p.voice_threshold) & (users.instr_age[idx] < 0) & (cooldown == 0)
        emitted = can_speak & (risk > p.instruction_risk) & (rng.random(b) < 0.5 + 0.5 * users.verbosity[idx])
        users.instr_cooldown[idx] = np.maximum(cooldown - 1, 0)
        if emitted.any():
            self._emit(users, idx, emitted)
        return SlateEffects(compliance=score, resolved=resolved, ignored=ignored, emitted=emitted, risk=risk)

    def leave_risk(self, users: UserBatch, idx: Index, slate_size: int) -> np.ndarray:
        """Chance of leaving within the next slate if it were like the last (used to decide to speak up)."""
        sat = users.sat_short[idx] + users.sat_long[idx]
        h = sigmoid(self.hazard_logit(users, idx, users.fatigue[idx], users.boredom[idx], sat.max(1)))
        return 1.0 - (1.0 - h) ** slate_size

    def _emit(self, users: UserBatch, idx: Index, emitted: np.ndarray) -> None:
        """Set the intent of newly voiced instructions: less of the most satiated topic, more of a fresh interest."""
        p = self.params
        sat = (users.sat_short[idx] + users.sat_long[idx])[emitted]
        less = np.where(sat.max(1) >= p.instruction_satiation, sat.argmax(1), NO_TOPIC)
        exposure = users.exposure[idx][emitted]
        freshness = np.exp(-exposure / p.novelty_scale) * np.exp(-sat)
        appeal = users.interest[idx][emitted] * freshness
        appeal[np.arange(len(less)), np.maximum(less, 0)] *= less < 0  # never ask for the topic named as 'less'
        appeal[users.dislike[idx][emitted]] = 0.0
        more = np.where(appeal.max(1) > 0.05, appeal.argmax(1), NO_TOPIC)
        for name, value in (
            ("instr_more", more),
            ("instr_less", less),
            ("instr_surprise", more == NO_TOPIC),
            ("instr_age", np.zeros(len(more), dtype=np.int32)),
        ):
            arr = getattr(users, name)
            sub = arr[idx]
            sub[emitted] = value
            arr[idx] = sub

    # ------------------------------------------------------- between sessions
    def return_probability(self, users: UserBatch, idx: Index) -> np.ndarray:
        """Daily chance of coming back, from the last session's satisfaction, trust and activity."""
        p = self.params
        return sigmoid(
            p.return_bias
            + p.return_satisfaction * (users.satisfaction[idx] - 0.5)
            + p.return_trust * (users.trust[idx] - 0.5)
            + p.return_activity * (users.activity[idx] - 0.5)
        )

    def return_gap(self, users: UserBatch, idx: Index, rng: np.random.Generator) -> np.ndarray:
        """Days until the next session (>= 1), geometric in the daily return probability."""
        return rng.geometric(self.return_probability(users, idx)).astype(np.int64)

    def rest(self, users: UserBatch, idx: Index, gap_days: np.ndarray) -> None:
        """Recover between sessions: satiation and exposure decay, fatigue and boredom reset."""
        p = self.params
        gap = np.asarray(gap_days, dtype=np.float32)[:, None]
        users.sat_short[idx] = users.sat_short[idx] * p.satiation_day_decay**gap
        users.sat_long[idx] = users.sat_long[idx] * p.satiation_long_day_decay**gap
        users.exposure[idx] = users.exposure[idx] * p.exposure_day_decay**gap
        users.fatigue[idx] = 0.0
        users.boredom[idx] = 0.0
        keep = p.satisfaction_day_reversion ** gap[:, 0]
        users.satisfaction[idx] = 0.5 + (users.satisfaction[idx] - 0.5) * keep
