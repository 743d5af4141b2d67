"""Seeded population sampling from scenario segments."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recoworld.users.profile import TONES, TRAIT_NAMES, Tone, Traits, UserProfile

_OCCUPATIONS = ["student", "nurse", "engineer", "teacher", "designer", "driver", "retiree", "chef", "analyst", "artist", "sales clerk", "researcher"]
_GOALS = ["relaxing after work", "learning new things", "keeping up with friends", "getting inspired", "killing time on the commute", "following creators they like"]
_AGE_BANDS = {"18-24": 0.25, "25-34": 0.3, "35-44": 0.2, "45-54": 0.15, "55+": 0.1}
_LOCALES = ["en-US", "en-GB", "en-IN", "es-ES", "pt-BR", "fr-FR", "de-DE"]


class BetaPrior(BaseModel):
    """A Beta distribution on [0, 1] given by its mean and concentration (a + b)."""

    model_config = ConfigDict(extra="forbid")

    mean: float = Field(0.5, gt=0.0, lt=1.0)
    concentration: float = Field(6.0, gt=0.0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.beta(self.mean * self.concentration, (1 - self.mean) * self.concentration, size=size)


class TraitPriors(BaseModel):
    """Per-trait priors of a segment; a trait left out uses Beta(mean 0.5, concentration 6)."""

    model_config = ConfigDict(extra="forbid")

    openness: BetaPrior = BetaPrior()
    conscientiousness: BetaPrior = BetaPrior()
    extraversion: BetaPrior = BetaPrior()
    agreeableness: BetaPrior = BetaPrior()
    neuroticism: BetaPrior = BetaPrior()
    patience: BetaPrior = BetaPrior()
    novelty_seeking: BetaPrior = BetaPrior()
    conformity: BetaPrior = BetaPrior()
    activity: BetaPrior = BetaPrior()
    verbosity: BetaPrior = BetaPrior()


class SegmentConfig(BaseModel):
    """A slice of the population with its own distributions of interests and traits."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("default", description="Segment name, carried into each profile.")
    weight: float = Field(1.0, gt=0.0, description="Relative share of the population.")
    n_interests: tuple[int, int] = Field((2, 4), description="Inclusive range of interest topics per user.")
    interest_topics: list[str] | None = Field(None, description="Restrict interests to these topics.")
    interest_concentration: float = Field(1.0, gt=0.0, description="Dirichlet alpha of interest weights.")
    n_dislikes: tuple[int, int] = Field((0, 1), description="Inclusive range of disliked topics per user.")
    traits: TraitPriors = Field(default_factory=TraitPriors)
    tones: dict[Tone, float] = Field(default_factory=lambda: {t: 1.0 for t in TONES})
    age_bands: dict[str, float] = Field(default_factory=lambda: dict(_AGE_BANDS))

    @model_validator(mode="after")
    def _check_ranges(self) -> "SegmentConfig":
        for name in ("n_interests", "n_dislikes"):
            lo, hi = getattr(self, name)
            if lo < 0 or hi < lo:
                raise ValueError(f"{name} must be a range [lo, hi] with 0 <= lo <= hi")
        if self.n_interests[0] < 1:
            raise ValueError("n_interests must start at 1 or more")
        return self


class PopulationSampler:
    """Samples :class:`UserProfile` objects from weighted segments over a catalog's topics."""

    def __init__(self, segments: Sequence[SegmentConfig], topic_names: Sequence[str]) -> None:
        self.segments = list(segments) or [SegmentConfig()]
        self.topic_names = list(topic_names)
        known = set(self.topic_names)
        for seg in self.segments:
            for topic in seg.interest_topics or []:
                if topic not in known:
                    raise ValueError(f"users.segments[{seg.name}].interest_topics: unknown topic '{topic}'")
        weights = np.array([s.weight for s in self.segments], dtype=float)
        self._weights = weights / weights.sum()

    def sample(self, n: int, rng: np.random.Generator, id_prefix: str = "u", start: int = 0) -> list[UserProfile]:
        """``n`` profiles; segment membership drawn by weight."""
        seg_of = rng.choice(len(self.segments), size=n, p=self._weights)
        return [self._sample_one(self.segments[s], rng, f"{id_prefix}{start + k}") for k, s in enumerate(seg_of)]

    def _sample_one(self, seg: SegmentConfig, rng: np.random.Generator, user_id: str) -> UserProfile:
        pool = [self.topic_names.index(t) for t in seg.interest_topics] if seg.interest_topics else list(range(len(self.topic_names)))
        k = int(rng.integers(seg.n_interests[0], seg.n_interests[1] + 1))
        k = min(k, len(pool))
        chosen = rng.choice(pool, size=k, replace=False)
        weights = rng.dirichlet(np.full(k, seg.interest_concentration))
        interests = {self.topic_names[t]: round(float(w), 4) for t, w in sorted(zip(chosen, weights), key=lambda p: -p[1])}
        rest = [t for t in range(len(self.topic_names)) if t not in set(chosen.tolist())]
        n_dis = min(int(rng.integers(seg.n_dislikes[0], seg.n_dislikes[1] + 1)), len(rest))
        dislikes = [self.topic_names[t] for t in rng.choice(rest, size=n_dis, replace=False)] if n_dis else []
        trait_values = {name: round(float(getattr(seg.traits, name).sample(rng, 1)[0]), 4) for name in TRAIT_NAMES}
        tones = list(seg.tones)
        tone_p = np.array([seg.tones[t] for t in tones], dtype=float)
        tone = tones[int(rng.choice(len(tones), p=tone_p / tone_p.sum()))]
        bands = list(seg.age_bands)
        band_p = np.array([seg.age_bands[b] for b in bands], dtype=float)
        return UserProfile(
            user_id=user_id,
            segment=seg.name,
            age_band=bands[int(rng.choice(len(bands), p=band_p / band_p.sum()))],
            occupation=str(rng.choice(_OCCUPATIONS)),
            locale=str(rng.choice(_LOCALES)),
            goals=[str(g) for g in rng.choice(_GOALS, size=2, replace=False)],
            interests=interests,
            dislikes=dislikes,
            traits=Traits(**trait_values, tone=tone),
        )
