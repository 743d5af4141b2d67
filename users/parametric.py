"""The reference parametric user model over a batch of users.

State lives in :class:`UserBatch` (a few packed arrays, with named views); the model's constants
are :class:`ParametricUserParams`. The model gives the world its packed parameters
(:attr:`ParametricUserModel.vector`) and its users' state arrays (:meth:`UserBatch.arrays`); the
world calls the one compiled step (``recoworld.world.step.run_step``) for any batch size, so the
single-user env (a batch of one) and the population runner share one implementation.

Imports: numpy, pydantic, ``recoworld.users`` (layout, profile), ``recoworld.llm.base`` (Usage) and
the catalog's type; no world layout.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Sequence

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from recoworld.columns import column_view
from recoworld.fixed_order import matmul_into, round_as_python
from recoworld.llm.base import Usage
from recoworld.users import layout as UL
from recoworld.world.catalog import Catalog
from recoworld.users.jit import has_consumed
from recoworld.users.layout import INTEREST, Decisions, UserArrays
from recoworld.users.profile import TONES, TRAIT_NAMES, UserProfile

if TYPE_CHECKING:
    from recoworld.users.population import ProfileDraws
    from recoworld.users.world_view import SimulationView, StepOutcomeView

Index = np.ndarray | slice
_TRAIT_ORDER = np.array([TRAIT_NAMES.index(c) for c in UL.TRAIT_COLUMNS])  # TRAIT_NAMES -> UL.TRAIT_COLUMNS


_START_MIND = np.zeros((1, 4), dtype=np.float64)  # a new user's mindset: satisfaction and trust 0.5, the rest 0
_START_MIND[0, [UL.SATISFACTION, UL.TRUST]] = 0.5
_START_INSTR = np.zeros((1, 5), dtype=np.int64)  # no instruction pending
_START_INSTR[0, [UL.MORE, UL.LESS, UL.AGE]] = -1
_NONE_GIVEN = (np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32))  # no taste given in a profile
_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE


@njit(cache=True)
def _pairwise_block(a: np.ndarray, lo: int, n: int):
    """numpy's sum of ``a[lo:lo + n]`` for ``1 <= n <= 128`` finite values: in order below 8 values, else eight
    running sums."""
    if n < 8:
        res = a[lo] - a[lo]  # a zero of a's type (numpy starts from 0 and adds in order)
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def _pairwise_sum(a: np.ndarray):
    """``np.add.reduce(a)`` for a contiguous 1-D float array, summed as numpy sums it (pairwise: blocks of at most
    128 values summed by :func:`_pairwise_block`, larger ranges split in halves of a multiple of 8), so the bits
    are numpy's. The halving is walked with an explicit stack: numba's cache reloads recursive functions badly."""
    n = a.shape[0]
    if n <= _PAIRWISE_BLOCK:
        return _pairwise_block(a, 0, n)
    los, ns, stages = np.zeros(64, np.int64), np.zeros(64, np.int64), np.zeros(64, np.int64)
    lefts = np.zeros(64, a.dtype)
    top, ns[0] = 0, n
    while True:
        if ns[top] > _PAIRWISE_BLOCK:  # split: the left half first
            half = ns[top] // 2
            half -= half % 8
            stages[top] = 1
            top += 1
            los[top], ns[top], stages[top] = los[top - 1], half, 0
            continue
        v = _pairwise_block(a, los[top], ns[top])
        while True:  # hand the value up: a left half waits for its right half, a right half completes its range
            top -= 1
            if top < 0:
                return v
            if stages[top] == 1:
                half = ns[top] // 2
                half -= half % 8
                lefts[top], stages[top] = v, 2
                top += 1
                los[top], ns[top], stages[top] = los[top - 1] + half, ns[top - 1] - half, 0
                break
            v = lefts[top] + v


@njit(cache=True)  # no fast-math: numpy's operations, one for one, in its types
def _start_tastes(topic_state, centroids, noise, taste_noise, given_rows, given_tastes, taste) -> None:
    """New users' interests normalised in place and their tastes written to ``taste`` ((b, D) float32), with the
    bits of the numpy expressions this replaces (one call instead of a dozen array operations per reset)::

        interest /= np.maximum(interest.sum(1, keepdims=True), 1e-9)
        noise = noise.astype(np.float32) * taste_noise / np.sqrt(dim)        # float32 times a Python float, then float64
        taste = (matmul(interest, centroids) + noise).astype(np.float32)       # recoworld.fixed_order.matmul
        taste[given_rows] = given_tastes
        taste /= np.maximum(np.sqrt(np.add.reduce(taste * taste, axis=1, keepdims=True)), 1e-9)

    ``tests/users/test_start_tastes.py`` checks them against those expressions."""
    b, n_topics = topic_state.shape[0], topic_state.shape[2]
    dim = centroids.shape[1]
    scale = np.sqrt(np.float64(dim))
    noise_scale = np.float32(taste_noise)
    floor32 = np.float32(1e-9)
    interest = np.empty(n_topics)
    squares = np.empty(dim, dtype=np.float32)
    given_at = np.full(b, -1, dtype=np.int64)
    for g in range(given_rows.shape[0]):
        given_at[given_rows[g]] = g
    for i in range(b):
        for t in range(n_topics):
            interest[t] = topic_state[i, INTEREST, t]
        total = np.maximum(_pairwise_sum(interest), 1e-9)
        for t in range(n_topics):
            topic_state[i, INTEREST, t] = interest[t] / total
    products = np.empty((b, dim))
    matmul_into(topic_state[:, INTEREST, :], centroids, products)
    for i in range(b):
        if given_at[i] >= 0:
            for d in range(dim):
                taste[i, d] = given_tastes[given_at[i], d]
        else:
            for d in range(dim):
                taste[i, d] = np.float32(products[i, d] + np.float64(np.float32(noise[i, d]) * noise_scale) / scale)
        for d in range(dim):
            squares[d] = taste[i, d] * taste[i, d]
        norm = np.maximum(np.sqrt(_pairwise_sum(squares)), floor32)
        for d in range(dim):
            taste[i, d] = taste[i, d] / norm


@njit(cache=True)
def _consumed_rows(bits: np.ndarray, rows: np.ndarray, items: np.ndarray, out: np.ndarray) -> None:
    for i in range(items.shape[0]):
        for j in range(items.shape[1]):
            out[i, j] = has_consumed(bits, rows[i], items[i, j])


class ParametricUserParams(BaseModel):
    """Constants of the parametric user model (all overridable from a scenario's ``user_model``)."""

    model_config = ConfigDict(extra="forbid")

    # utility u = a·cos + b·(q−.5) + c·conf·pop + d·nov·novelty − e·satiation − f·fatigue + noise
    w_taste: float = Field(4.5, description="a: weight of cos(taste, item).")
    w_quality: float = Field(1.0, description="b: weight of quality − 0.5.")
    w_popularity: float = Field(0.8, description="c: weight of conformity × popularity.")
    w_novelty: float = Field(1.0, description="d: weight of novelty_seeking × topic novelty.")
    w_satiation: float = Field(1.2, description="e: weight of the item's topic satiation.")
    w_fatigue: float = Field(0.5, description="f: weight of session fatigue.")
    w_similarity: float = Field(0.3, description="Penalty per unit similarity to content watched lately (content-level satiation).")
    w_dislike: float = Field(2.0, description="Penalty for a disliked topic.")
    w_repeat: float = Field(2.5, description="Penalty for an item already watched (or repeated in the slate).")
    noise_sd: float = Field(0.3, ge=0, description="Std of the utility noise.")
    novelty_scale: float = Field(3.0, gt=0, description="Exposure at which a topic's novelty falls to 1/e.")
    # actions
    click_threshold: float = Field(2.0, description="Utility with a 50% click chance.")
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
    similarity_tolerance: float = Field(2.0, ge=0, description="Similarity to recent content tolerated before it bores.")
    similarity_step_decay: float = Field(0.95, ge=0, le=1, description="Share of the recently-watched content memory kept per slate.")
    similarity_day_decay: float = Field(0.9, ge=0, le=1, description="Share of the recently-watched content memory kept per day away.")
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
    platform_decay: float = Field(0.95, ge=0, le=1, description="Per-slate decay of the platform's engagement profile.")
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

    def as_vector(self) -> np.ndarray:
        """The parameters as the kernel reads them: float64, in ``recoworld.users.layout.PARAM_ORDER``."""
        return np.array([float(getattr(self, name)) for name in UL.PARAM_ORDER], dtype=np.float64)


def _topic_row(row: int, doc: str) -> property:
    return property(lambda self: self.topic_state[:, row, :], doc=doc)


@dataclass
class UserBatch:
    """Per-user arrays: profile-derived constants and the hidden mindset, packed for the kernel.

    Named views (``users.fatigue``, ``users.sat_short`` ...) read and write the packed arrays.
    """

    taste: np.ndarray  # (B, D) float32 unit vectors; drifts towards liked items
    recent: np.ndarray  # (B, D) float32 decayed sum of watched items' centred embeddings (content satiation)
    traits: np.ndarray  # (B, 8) float64, columns kernels.TRAIT_COLUMNS
    mind: np.ndarray  # (B, 4) float64: fatigue, satisfaction, trust, boredom
    topic_state: np.ndarray  # (B, 5, T) float64: sat_short, sat_long, exposure, interest, dislike
    instr: np.ndarray  # (B, 5) int64: more, less, surprise, age (-1 none), cooldown
    tone: np.ndarray  # (B,) index into TONES
    consumed: np.ndarray  # (B, ceil(N / 8)) uint8 bitset of items clicked before (see has_consumed)

    patience = column_view("traits", UL.PATIENCE, "Trait: tolerance before leaving.")
    novelty_seeking = column_view("traits", UL.NOVELTY, "Trait: appetite for unfamiliar topics.")
    conformity = column_view("traits", UL.CONFORMITY, "Trait: pull of popular items.")
    activity = column_view("traits", UL.ACTIVITY, "Trait: how often the user comes back.")
    verbosity = column_view("traits", UL.VERBOSITY, "Trait: readiness to speak up.")
    extraversion = column_view("traits", UL.EXTRAVERSION, "Trait: sharing and commenting.")
    agreeableness = column_view("traits", UL.AGREEABLENESS, "Trait: liking.")
    neuroticism = column_view("traits", UL.NEUROTICISM, "Trait: trust volatility.")
    fatigue = column_view("mind", UL.FATIGUE, "Session fatigue.")
    satisfaction = column_view("mind", UL.SATISFACTION, "EMA of slate value in [0, 1].")
    trust = column_view("mind", UL.TRUST, "Trust in the recommender in [0, 1].")
    boredom = column_view("mind", UL.BOREDOM, "Consecutive skips.")
    sat_short = _topic_row(UL.SAT_SHORT, "(B, T) short-term satiation.")
    sat_long = _topic_row(UL.SAT_LONG, "(B, T) long-term satiation.")
    exposure = _topic_row(UL.EXPOSURE, "(B, T) decayed items shown per topic.")
    interest = _topic_row(UL.INTEREST, "(B, T) profile interest weights.")
    instr_more = column_view("instr", UL.MORE, "Topic asked for, or NO_TOPIC.")
    instr_less = column_view("instr", UL.LESS, "Topic asked to avoid, or NO_TOPIC.")
    instr_age = column_view("instr", UL.AGE, "Slates since the pending instruction; -1 = none.")
    instr_cooldown = column_view("instr", UL.COOLDOWN, "Slates before the user may speak again.")

    @property
    def dislike(self) -> np.ndarray:
        """(B, T) topics the user dislikes."""
        return self.topic_state[:, UL.DISLIKE, :] > 0

    @property
    def instr_surprise(self) -> np.ndarray:
        """(B,) the pending instruction asks for something different."""
        return self.instr[:, UL.SURPRISE] > 0

    def __len__(self) -> int:
        return len(self.mind)

    def arrays(self) -> UserArrays:
        """The kernel's view of the batch (:class:`recoworld.users.layout.UserArrays`)."""
        return UserArrays(self.taste, self.recent, self.traits, self.mind, self.topic_state, self.instr, self.consumed)

    def has_consumed(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(b, n) bool: whether user ``rows[i]`` clicked ``items[i, j]`` before (``items``: (b, n); the kernel's rule)."""
        items = np.asarray(items, dtype=np.int64)
        out = np.empty(items.shape, dtype=bool)
        _consumed_rows(self.consumed, np.asarray(rows, dtype=np.int64), items, out)
        return out

    @classmethod
    def from_profiles(
        cls, profiles: Sequence[UserProfile], catalog: Catalog, rng: np.random.Generator, taste_noise: float = 0.35
    ) -> "UserBatch":
        """Arrays for ``profiles``; a profile without ``taste`` gets its interests' topic centroids plus noise."""
        b, t_count = len(profiles), catalog.n_topics
        topic_index = {name: k for k, name in enumerate(catalog.topic_names)}
        topic_state = np.zeros((b, 5, t_count), dtype=np.float64)
        for r, prof in enumerate(profiles):
            for name, w in prof.interests.items():
                if name not in topic_index:
                    raise ValueError(f"user {prof.user_id}: interest topic '{name}' is not in the catalog")
                topic_state[r, UL.INTEREST, topic_index[name]] = w
            for name in prof.dislikes:
                if name in topic_index:
                    topic_state[r, UL.DISLIKE, topic_index[name]] = 1.0
            for name, n in prof.topic_history.items():
                if name not in topic_index:
                    raise ValueError(f"user {prof.user_id}: topic_history topic '{name}' is not in the catalog")
                topic_state[r, UL.EXPOSURE, topic_index[name]] = n
        dim = catalog.topic_centroids.shape[1]
        given = {}
        for r, prof in enumerate(profiles):
            if prof.taste is not None:
                if len(prof.taste) != dim:
                    raise ValueError(f"user {prof.user_id}: taste has {len(prof.taste)} dims, catalog embeddings have {dim}")
                given[r] = prof.taste
        traits = np.array([[getattr(p.traits, c) for c in UL.TRAIT_COLUMNS] for p in profiles], dtype=np.float64).reshape(b, 8)
        tone = np.array([TONES.index(p.traits.tone) for p in profiles], dtype=np.int8)
        noise = rng.standard_normal((b, catalog.topic_centroids.shape[1]))
        return cls._start(topic_state, traits, tone, catalog, noise, taste_noise, given)

    @classmethod
    def from_draws(
        cls, draws: "ProfileDraws", catalog: Catalog, noise: np.ndarray, taste_noise: float = 0.35
    ) -> "UserBatch":
        """Arrays for the profiles ``draws`` describe (``PopulationSampler.draw_each`` over this catalog's topics),
        without writing the profiles out, each user as :meth:`from_profiles` of their profile alone makes them
        (``noise``: (b, D) the standard normals each user's generator drew after the profile)."""
        b, width = len(draws), draws.interests.shape[1]
        topic_state = np.zeros((b, 5, catalog.n_topics), dtype=np.float64)
        taken = np.arange(width) < draws.n_interests[:, None]  # each row's interests, in drawn order
        weights = round_as_python(draws.weights[taken], 4)  # as the profile states them
        topic_state[np.repeat(np.arange(b), draws.n_interests), UL.INTEREST, draws.interests[taken]] = weights
        disliked = np.arange(width) < draws.n_dislikes[:, None]
        topic_state[np.repeat(np.arange(b), draws.n_dislikes), UL.DISLIKE, draws.dislikes[disliked]] = 1.0
        traits = draws.traits[:, _TRAIT_ORDER]
        return cls._start(topic_state, traits, draws.tone.astype(np.int8), catalog, noise, taste_noise, {})

    @classmethod
    def _start(
        cls, topic_state: np.ndarray, traits: np.ndarray, tone: np.ndarray, catalog: Catalog, noise: np.ndarray,
        taste_noise: float, given: dict[int, Sequence[float]],
    ) -> "UserBatch":
        """Users at the start: interests normalised, tastes (``given`` by row, else the interests' topic centroids
        plus ``taste_noise`` times the standard normals ``noise``), a neutral mindset and no instruction. The
        product sums in a fixed order (``recoworld.fixed_order``): a user's taste is the same in any batch and
        on any CPU."""
        b = len(topic_state)
        centroids = catalog.topic_centroids
        dim = centroids.shape[1]
        taste = np.empty((b, dim), dtype=np.float32)
        if given:
            given_rows = np.fromiter(given, dtype=np.int64, count=len(given))
            given_tastes = np.array([given[r] for r in given], dtype=np.float32).reshape(len(given), dim)
        else:
            given_rows, given_tastes = _NONE_GIVEN
        _start_tastes(topic_state, centroids, np.ascontiguousarray(noise, dtype=np.float64), float(taste_noise),
                      given_rows, given_tastes, taste)
        return cls(
            taste=taste,
            recent=np.zeros((b, dim), dtype=np.float32),
            traits=traits,
            mind=np.repeat(_START_MIND, b, axis=0),
            topic_state=topic_state,
            instr=np.repeat(_START_INSTR, b, axis=0),
            tone=tone,
            consumed=np.zeros((b, (len(catalog) + 7) // 8), dtype=np.uint8),
        )

    def copy(self) -> "UserBatch":
        """A deep copy (every array copied)."""
        return UserBatch(**{f.name: getattr(self, f.name).copy() for f in fields(self)})


def user_rows(users: UserBatch, idx: Index) -> np.ndarray:
    """The batch rows that ``idx`` (a slice, row numbers or a boolean mask of every user) selects, as an index
    array. Compiled code does not check bounds, so a row outside the batch is refused here with a one-line error."""
    n = len(users)
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    rows = np.asarray(idx)
    if rows.dtype == np.bool_:
        if rows.shape != (n,):
            raise ValueError(f"users: a boolean mask must have one entry per user ({n}), got shape {rows.shape}")
        return np.flatnonzero(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"users: expected a slice, a 1-D array of row numbers or a boolean mask, got {rows.dtype} {rows.shape}")
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        bad = rows[(rows < 0) | (rows >= n)]
        raise ValueError(f"users: rows must lie in 0..{n - 1} (a batch of {n}), got {bad[0]}"
                         + (f" and {len(bad) - 1} more" if len(bad) > 1 else ""))
    return rows


class ParametricUserBackend:
    """Parametric users as a :class:`~recoworld.users.protocol.UserBackend`: the compiled model
    decides everything, so ``decide`` returns None and nothing is ever called or spent."""

    kind = "parametric"
    exhausted = False

    @property
    def usage(self) -> Usage:
        """No language model is called: an empty usage."""
        return Usage()

    def decide(self, sim: "SimulationView", rows: np.ndarray, slates: np.ndarray) -> None:
        """Nothing to decide outside the compiled model: None."""
        return None

    def after_step(self, sim: "SimulationView", rows: np.ndarray, slates: np.ndarray, outcome: "StepOutcomeView") -> None:
        """Nothing to record after a step."""
        return None

    def fallbacks(self, n: int) -> np.ndarray:
        """(n,) False: parametric decisions never fall back."""
        return np.zeros(n, dtype=bool)


class ParametricUserModel:
    """Reviews slates, updates the mindset, and decides when users come back: its parameters, which the
    world's compiled step (``recoworld.world.step.run_step``) reads."""

    def __init__(self, params: ParametricUserParams | None = None) -> None:
        self.params = params or ParametricUserParams()
        self._vector = self.params.as_vector()

    @property
    def vector(self) -> np.ndarray:
        """The packed parameters the world's step reads (``recoworld.users.layout.PARAM_ORDER``)."""
        return self._vector


@dataclass
class ForcedDecisions:
    """Actions decided outside the parametric model (e.g. by an LLM), for some users of a step.

    ``forced[i]`` marks user i's slate as decided; ``actions[i, j]`` = (click, watch fraction, like,
    share, comment) per slot (kernel.F_* columns); ``leave_at[i]`` = slot they leave at, -1 to stay.
    """

    forced: np.ndarray  # (b,) bool
    actions: np.ndarray  # (b, K, 5) float64
    leave_at: np.ndarray  # (b,) int64

    @classmethod
    def none(cls, b: int, k: int) -> "ForcedDecisions":
        """Decisions for ``b`` users and slates of ``k`` in which nobody's actions are forced."""
        return cls(np.zeros(b, dtype=np.bool_), np.zeros((b, k, UL.FORCED_COLUMNS)), np.full(b, -1, dtype=np.int64))

    def as_tuple(self) -> Decisions:
        """The kernel's view (:class:`recoworld.users.layout.Decisions`)."""
        return Decisions(self.forced, self.actions, self.leave_at)
