"""User populations, in one place: where a world's users come from.

- Segments (``SegmentConfig``, ``PopulationSampler``): seeded profiles from a scenario's segments.
- Diverse sampling after USP: profile vectors, kNN density and density-aware draws
  (``profile_vectors``, ``density``, ``sampling_weights``, ``sample_population``, ``draw_profiles``).
- Where a scenario's users come from (segments, a log, a calibration) is :mod:`recoworld.users.sources`.

Diverse sampling: profiles are embedded as their interests over the topics plus the ten trait values, each column
standardised. The density of a profile is 1 / (mean Euclidean distance to its k nearest
neighbours). Populations are then drawn towards the crowded middle (``majority``), towards the
sparse edges (``minority``), so that every density level is equally represented (``flattened``:
each profile weighted by the inverse size of its log-density bin, so the sample's density
histogram is flat), or uniformly.

Imports: numpy, pydantic, ``recoworld.users.profile``, ``recoworld.users.profile_draws``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recoworld.users.profile import TONES, TRAIT_NAMES, Tone, Traits, UserProfile
from recoworld.users.profile_draws import N_UNIFORMS, draw_segment_users, generator_address


# ------------------------------------------------------------------ segments
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
        """``size`` draws from the Beta distribution of this mean and concentration."""
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
    weight: float = Field(1.0, gt=0.0, description="Relative share of the population (ignored when sizes are given).")
    size: int | None = Field(None, ge=0, description="Users in this segment; give it on every segment or none.")
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
        if not self.tones or any(w < 0 for w in self.tones.values()) or sum(self.tones.values()) <= 0:
            raise ValueError("tones must give at least one tone a positive weight, and no weight below 0")
        return self


def _pick(rng_value: float, cumulative: np.ndarray) -> int:
    """Index drawn from a categorical given one uniform and the cumulative probabilities."""
    return int(np.searchsorted(cumulative, rng_value * cumulative[-1], side="right"))


@dataclass(frozen=True)
class _SegmentTable:
    """The segments as arrays for the compiled draws (``profile_draws.draw_segment_users``)."""

    in_pool: np.ndarray  # (S, T) bool: topics a segment's interests come from
    ranges: np.ndarray  # (S, 4) int64: interests lo, hi, dislikes lo, hi
    concentration: np.ndarray  # (S,) Dirichlet alpha of the interest weights
    beta_a: np.ndarray  # (S, traits) Beta parameters of the traits
    beta_b: np.ndarray
    tone_index: np.ndarray  # (S, tones) int64: each segment's tones as TONES indices (padded with 0)
    tone_cum: np.ndarray  # (S, tones) their cumulative weights (padded with the total)
    tone_count: np.ndarray  # (S,) int64: how many tones each segment has


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
        sizes = [s.size for s in self.segments]
        if any(v is not None for v in sizes) and any(v is None for v in sizes):
            raise ValueError("users.segments: give 'size' on every segment or on none")
        self._sizes = np.array(sizes, dtype=float) if sizes[0] is not None else None
        if self._sizes is not None and self._sizes.sum() <= 0:
            raise ValueError("users.segments: sizes add up to 0")
        weights = self._sizes if self._sizes is not None else np.array([s.weight for s in self.segments], dtype=float)
        self._weights = weights / weights.sum()
        self._cum_weights = np.cumsum(self._weights)
        # per segment: interest pool, Beta parameters of the traits, tone and age-band tables
        in_pool = np.zeros((len(self.segments), len(self.topic_names)), dtype=bool)
        for s, seg in enumerate(self.segments):
            in_pool[s, [self.topic_names.index(t) for t in seg.interest_topics] if seg.interest_topics else slice(None)] = True
        priors = [[getattr(seg.traits, t) for t in TRAIT_NAMES] for seg in self.segments]
        self._table = _SegmentTable(
            in_pool=in_pool,
            ranges=np.array([[*seg.n_interests, *seg.n_dislikes] for seg in self.segments], dtype=np.int64),
            concentration=np.array([seg.interest_concentration for seg in self.segments], dtype=float),
            beta_a=np.array([[p.mean * p.concentration for p in row] for row in priors]),
            beta_b=np.array([[(1 - p.mean) * p.concentration for p in row] for row in priors]),
            **_tone_tables(self.segments),
        )
        self._bands = [(list(seg.age_bands), np.cumsum(list(seg.age_bands.values()))) for seg in self.segments]

    def sample(self, n: int, rng: np.random.Generator, id_prefix: str = "u", start: int = 0) -> list[UserProfile]:
        """``n`` profiles; segment membership drawn by weight, or in exact quotas when sizes are given
        (the sizes themselves for ``n`` = their sum, else proportional by largest remainder)."""
        return [self.profile(d, f"{id_prefix}{start + k}") for k, d in enumerate(self.draw(n, rng))]

    def draw(self, n: int, rng: np.random.Generator) -> list[ProfileDraw]:
        """The random draws of ``n`` profiles (what :meth:`sample` draws, in its order), not yet written out as
        profiles: :meth:`profile` writes one, ``UserBatch.from_draws`` turns them into user state directly."""
        if self._sizes is not None:
            seg_of = rng.permutation(self._quota_segments(n))
        else:
            seg_of = np.searchsorted(self._cum_weights, rng.random(n) * self._cum_weights[-1], side="right")
        return list(self._draws(np.repeat(generator_address(rng)[None], n, axis=0), seg_of.astype(np.int64), 0)[0])

    def draw_each(self, gens: np.ndarray, noise_dim: int) -> tuple[ProfileDraws, np.ndarray, np.ndarray]:
        """One profile from each generator (``gens``: their :func:`generator_address` rows), as ``draw(1, rng)`` draws
        it, each followed by ``noise_dim`` standard normals and one raw 64-bit draw of the same generator (what
        ``random_raw()`` gives for PCG64, the env's bit generator; how an env's reset draws its user), in one compiled
        call. Returns the draws, the (n, noise_dim) normals and the (n,) uint64 raw draws."""
        n = len(gens)
        if self._sizes is not None:  # one user's quota names their segment (permuting one value draws nothing)
            seg_of = np.full(n, self._quota_segments(1)[0], dtype=np.int64)
        else:
            seg_of = np.full(n, -1, dtype=np.int64)
        return self._draws(gens, seg_of, noise_dim)

    def _quota_segments(self, n: int) -> np.ndarray:
        """The segments of ``n`` users in exact quotas by the segments' sizes (largest remainder), in segment order."""
        quota = self._weights * n
        counts = np.floor(quota).astype(int)
        counts[np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]] += 1
        return np.repeat(np.arange(len(self.segments)), counts)

    def _draws(self, gens: np.ndarray, seg_of: np.ndarray, noise_dim: int) -> tuple[ProfileDraws, np.ndarray, np.ndarray]:
        """Users drawn from the generators at ``gens`` (rows of ``generator_address``) in segments ``seg_of``
        (-1: drawn), by ``profile_draws.draw_segment_users``."""
        n, t = len(gens), len(self.topic_names)
        draws = ProfileDraws(
            segment=seg_of, u=np.empty((n, N_UNIFORMS)), interests=np.zeros((n, t), dtype=np.int64),
            n_interests=np.zeros(n, dtype=np.int64), weights=np.zeros((n, t)), dislikes=np.zeros((n, t), dtype=np.int64),
            n_dislikes=np.zeros(n, dtype=np.int64), traits=np.empty((n, len(TRAIT_NAMES))), tone=np.empty(n, dtype=np.int64),
        )
        noise, raws = np.empty((n, noise_dim)), np.zeros(n, dtype=np.uint64)
        table = self._table
        draw_segment_users(
            gens, seg_of, self._cum_weights, table.in_pool, table.ranges, table.concentration, table.beta_a, table.beta_b,
            table.tone_index, table.tone_cum, table.tone_count, draws.u, draws.interests, draws.n_interests, draws.weights,
            draws.dislikes, draws.n_dislikes, draws.traits, draws.tone, noise, raws,
        )
        return draws, noise, raws

    def profile(self, draw: ProfileDraw, user_id: str) -> UserProfile:
        """The profile ``draw`` describes, named ``user_id``."""
        s, u = draw.segment, draw.u
        seg = self.segments[s]
        ranked = sorted(zip(draw.interests, draw.weights), key=lambda p: -p[1])
        interests = {self.topic_names[t]: round(float(w), 4) for t, w in ranked}
        bands, band_cum = self._bands[s]
        goals = (int(u[5] * len(_GOALS)), int(u[6] * (len(_GOALS) - 1)))
        return UserProfile(
            user_id=user_id,
            segment=seg.name,
            age_band=bands[_pick(u[2], band_cum)],
            occupation=_OCCUPATIONS[int(u[3] * len(_OCCUPATIONS))],
            locale=_LOCALES[int(u[4] * len(_LOCALES))],
            goals=[_GOALS[goals[0]], [g for g in _GOALS if g != _GOALS[goals[0]]][goals[1]]],
            interests=interests,
            dislikes=[self.topic_names[t] for t in draw.dislikes],
            traits=Traits(**dict(zip(TRAIT_NAMES, draw.traits.tolist())), tone=TONES[draw.tone]),
        )


def _tone_tables(segments: Sequence[SegmentConfig]) -> dict[str, np.ndarray]:
    """Each segment's tones (TONES indices) and cumulative weights as padded tables, with their counts."""
    width = max(len(seg.tones) for seg in segments)
    index = np.zeros((len(segments), width), dtype=np.int64)
    cum = np.zeros((len(segments), width))
    for s, seg in enumerate(segments):
        k = len(seg.tones)
        index[s, :k] = [TONES.index(t) for t in seg.tones]
        cum[s, :k] = np.cumsum(list(seg.tones.values()))
        cum[s, k:] = cum[s, k - 1]
    return {"tone_index": index, "tone_cum": cum, "tone_count": np.array([len(seg.tones) for seg in segments], dtype=np.int64)}


@dataclass
class ProfileDraw:
    """One profile's random draws from a segment (``PopulationSampler.draw``), as topic and trait indices."""

    segment: int  # index into the sampler's segments
    u: np.ndarray  # (8,) uniforms: interest and dislike counts, age band, occupation, locale, goals, tone
    interests: np.ndarray  # topic indices of the interests, in drawn order
    weights: np.ndarray  # their Dirichlet weights (the profile states them rounded to 4 decimals)
    dislikes: np.ndarray  # topic indices of the dislikes
    traits: np.ndarray  # (10,) trait values in TRAIT_NAMES order, rounded to 4 decimals
    tone: int  # index into TONES


@dataclass
class ProfileDraws:
    """Profiles' random draws as arrays, row q for profile q (``PopulationSampler.draw_each``): a reset reads the
    arrays at once (``UserBatch.from_draws``); ``draws[q]`` is profile q's :class:`ProfileDraw`."""

    segment: np.ndarray  # (n,) int64
    u: np.ndarray  # (n, N_UNIFORMS)
    interests: np.ndarray  # (n, T) int64: row q's first n_interests[q] entries
    n_interests: np.ndarray  # (n,) int64
    weights: np.ndarray  # (n, T): row q's first n_interests[q] entries
    dislikes: np.ndarray  # (n, T) int64: row q's first n_dislikes[q] entries
    n_dislikes: np.ndarray  # (n,) int64
    traits: np.ndarray  # (n, 10)
    tone: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.segment)

    def __getitem__(self, q: int) -> ProfileDraw:
        k, d = int(self.n_interests[q]), int(self.n_dislikes[q])
        return ProfileDraw(int(self.segment[q]), self.u[q], self.interests[q, :k], self.weights[q, :k],
                           self.dislikes[q, :d], self.traits[q], int(self.tone[q]))

    def __iter__(self) -> Iterator[ProfileDraw]:
        return (self[q] for q in range(len(self)))


@dataclass
class PendingProfile:
    """A drawn profile not written out yet (a reset that only needs the user's state): :meth:`build` writes it
    from row ``index`` of ``draws``."""

    sampler: PopulationSampler
    draws: ProfileDraws
    index: int
    user_id: str

    def build(self) -> UserProfile:
        """The full profile from the kept draw (same values as drawing it at once)."""
        return self.sampler.profile(self.draws[self.index], self.user_id)


# ------------------------------------------------------------------ diverse sampling (USP)
SampleMode = Literal["majority", "minority", "flattened", "uniform"]
MODES: tuple[str, ...] = ("majority", "minority", "flattened", "uniform")
FLATTEN_BINS = 10  # density levels that "flattened" sampling makes equally likely
_BLOCK_FLOATS = 4_000_000  # distance block of about 32 MB (float64) per chunk


def profile_vectors(profiles: Sequence[UserProfile], topic_names: Sequence[str]) -> np.ndarray:
    """(n, T + 10) float64: interest weights over ``topic_names`` then the traits in ``TRAIT_NAMES``
    order, each column standardised (zero mean, unit variance; constant columns become 0).
    Interests in topics outside ``topic_names`` are ignored."""
    index = {name: k for k, name in enumerate(topic_names)}
    t_count = len(index)
    x = np.zeros((len(profiles), t_count + len(TRAIT_NAMES)), dtype=np.float64)
    for r, prof in enumerate(profiles):
        for topic, w in prof.interests.items():
            k = index.get(topic)
            if k is not None:
                x[r, k] = w
        x[r, t_count:] = [getattr(prof.traits, name) for name in TRAIT_NAMES]
    if len(profiles) == 0:
        return x
    mean = x.mean(0)
    std = x.std(0)
    return (x - mean) / np.where(std > 1e-12, std, 1.0)


def density(vectors: np.ndarray, k: int = 10, *, chunk_rows: int | None = None) -> np.ndarray:
    """1 / mean Euclidean distance to the ``k`` nearest other rows (k capped at n - 1).

    Exact brute force in row chunks, so the memory is O(chunk_rows × n): 20k profiles use about
    32 MB at a time. A single row gets density 1; coincident rows get a large finite density.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("density: vectors must be a 2-d array (n, d)")
    if k < 1:
        raise ValueError("density: k must be >= 1")
    n = len(x)
    if n <= 1:
        return np.ones(n)
    k = min(int(k), n - 1)
    sq = np.einsum("ij,ij->i", x, x)
    step = chunk_rows or max(1, _BLOCK_FLOATS // n)
    mean_dist = np.empty(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not your own neighbour
        nearest = np.partition(d2, k - 1, axis=1)[:, :k]
        mean_dist[start:stop] = np.sqrt(nearest).mean(1)
    return 1.0 / np.maximum(mean_dist, 1e-9)


def sampling_weights(dens: np.ndarray, mode: SampleMode) -> np.ndarray:
    """Draw probabilities (summing to 1) of each profile for a sampling ``mode``."""
    if mode not in MODES:
        raise ValueError(f"sample_population: unknown mode '{mode}' (expected one of {', '.join(MODES)})")
    d = np.asarray(dens, dtype=np.float64)
    if mode == "uniform":
        w = np.ones_like(d)
    elif mode == "majority":
        w = d.copy()
    elif mode == "minority":
        w = 1.0 / d
    else:  # flattened: every density level equally likely (inverse count of the profile's density bin)
        log_d = np.log(d)
        edges = np.linspace(log_d.min(), log_d.max() + 1e-12, FLATTEN_BINS + 1)
        bins = np.clip(np.searchsorted(edges, log_d, side="right") - 1, 0, FLATTEN_BINS - 1)
        w = 1.0 / np.bincount(bins, minlength=FLATTEN_BINS)[bins]
    return w / w.sum()


def sample_population(
    profiles: Sequence[UserProfile],
    n: int,
    mode: SampleMode,
    rng: np.random.Generator,
    k: int = 10,
) -> list[UserProfile]:
    """``n`` profiles drawn by density (see the module docstring), seeded by ``rng`` only.

    Without replacement when ``n <= len(profiles)`` (weighted draws in sequence, so the order is
    the draw order), else with replacement; a profile drawn again is a copy whose ``user_id``
    gets a ``#2``, ``#3``, ... suffix so ids stay unique.
    """
    if mode not in MODES:
        raise ValueError(f"sample_population: unknown mode '{mode}' (expected one of {', '.join(MODES)})")
    if n < 0:
        raise ValueError("sample_population: n must be >= 0")
    if n == 0:
        return []
    if not profiles:
        raise ValueError("sample_population: no profiles to sample from")
    topics = sorted({t for p in profiles for t in p.interests})
    return draw_profiles(profiles, n, rng, sampling_weights(density(profile_vectors(profiles, topics), k), mode))


def draw_profiles(profiles: Sequence[UserProfile], n: int, rng: np.random.Generator, p: np.ndarray | None = None) -> list[UserProfile]:
    """``n`` of ``profiles`` drawn with probabilities ``p`` (uniform when None): without replacement while
    they last, else with replacement, a repeat getting a ``#2``, ``#3``, ... suffix on its ``user_id``."""
    if not profiles:
        raise ValueError("users: no profiles to draw from")
    m = len(profiles)
    if n <= m:
        if p is None:
            picks = rng.choice(m, n, replace=False)
        else:  # Efraimidis-Spirakis: the n smallest Exp(1)/p keys are a weighted draw without replacement
            picks = np.argsort(rng.exponential(size=m) / p, kind="stable")[:n]
        return [profiles[i] for i in picks]
    picks = rng.choice(m, size=n, replace=True, p=p)
    seen: dict[int, int] = {}
    out: list[UserProfile] = []
    for i in picks.tolist():
        seen[i] = seen.get(i, 0) + 1
        prof = profiles[i]
        out.append(prof if seen[i] == 1 else prof.model_copy(update={"user_id": f"{prof.user_id}#{seen[i]}"}))
    return out
