"""Baseline recommenders, vectorised over users: random, popular, greedy relevance, MMR, ε-greedy, LinUCB.

Each scores the candidates (``scores``) and ranks them into a slate (``rank``); wrappers such
as ``recoworld.agents.instruction_following.InstructionFollowing`` adjust the scores of any base
and reuse its ranking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from recoworld.agents.protocol import Recommendation, SlateChoice, UserView
from recoworld.agents.scoring import mmr_positions, top_k_untied

if TYPE_CHECKING:
    import pandas as pd

BIG = 1e6


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(b, k) positions of the k highest scores per row, best first; ties as numpy's introselect and a stable sort
    order them (rows without ties in their top k + 1 are ranked by a compiled loop: they have one answer)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or not 0 < k <= scores.shape[1] or scores.dtype.kind not in "fiub":
        return _top_k_numpy(scores, k)
    pos = np.empty((len(scores), k), dtype=np.int64)
    tied = np.empty(len(scores), dtype=bool)
    top_k_untied(np.ascontiguousarray(scores, dtype=np.float64), k, pos, tied)
    if tied.any():
        pos[tied] = _top_k_numpy(scores[tied], k)
    return pos


def _top_k_numpy(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


class BaseRecommender:
    """Shared plumbing: ``slate`` for batches, ``recommend`` for one user, ``observe`` for feedback."""

    name = "base"
    needs_text = False  # wants the users' instructions in words (UserView.instructions)
    needs_observation = False  # wants the RecoWorld-v0 observation (UserView.observation)

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def scores(self, view: UserView) -> np.ndarray:
        """(b, M) preference over candidates; higher is better."""
        raise NotImplementedError

    def rank(self, view: UserView, scores: np.ndarray) -> SlateChoice:
        """Turn scores into slates; the default is a deterministic top-K."""
        pos = top_k(scores, view.slate_size)
        return SlateChoice(pos, np.ones(pos.shape, dtype=np.float32))

    def slate(self, view: UserView) -> SlateChoice:
        """Each user's slate: :meth:`rank` over :meth:`scores` (positions and their propensities)."""
        return self.rank(view, self.scores(view))

    def inclusion(self, view: UserView) -> np.ndarray:
        """(b, M) probability that each candidate would be in this recommender's slate (what off-policy
        estimators weigh logged items by). The default treats the slate as deterministic."""
        out = np.zeros(view.candidates.shape)
        np.put_along_axis(out, self.slate(view).positions, 1.0, axis=1)
        return out

    def recommend(self, view: UserView) -> Recommendation:
        """The one user's slate of ``view`` as a Recommendation (the agent-facing form of :meth:`slate`)."""
        if len(view) != 1:
            raise ValueError(f"recommend: expects a view of one user, got {len(view)}; use slate() for batches")
        return Recommendation(items=self.slate(view).positions[0].tolist(), reasoning=self.name)

    def observe(self, view: UserView, positions: np.ndarray, clicks: np.ndarray, reviewed: np.ndarray) -> None:
        """Feedback on the slates just served (b, K); stateless baselines ignore it."""

    # ------------------------------------------------ population runs (recoworld.runs.runner)
    additive_state: tuple[str, ...] = ()  # array attributes that online learning only adds to

    def retrain(self, impressions: "pd.DataFrame") -> None:
        """Refit on the run's impression logs so far (columns of recoworld.logs.records.ImpressionRecord);
        called every ``run.retrain_every`` days. Baselines that learn online ignore it."""

    @property
    def learns_from_logs(self) -> bool:
        """Whether this recommender overrides :meth:`retrain` (the runner hands it the logs only then)."""
        return type(self).retrain is not BaseRecommender.retrain

    def reseed(self, key: Sequence[int]) -> None:
        """Fresh random streams from ``key`` for every generator of this recommender and the parts
        it is built from (a population run reseeds each shard-day, so shards draw independently)."""
        _reseed(self, np.random.SeedSequence([int(k) for k in key]), depth=0)

    def merge(self, copies: Sequence["BaseRecommender"]) -> None:
        """Take in what copies of this recommender learned while serving shards of users in
        parallel: the sum of their changes to each ``additive_state`` array."""
        for name in self.additive_state:
            base = getattr(self, name)
            setattr(self, name, base + sum(getattr(c, name) - base for c in copies))


def _reseed(obj: object, seq: np.random.SeedSequence, depth: int) -> None:
    items = sorted(vars(obj).items())
    for (name, value), child in zip(items, seq.spawn(len(items))):
        if isinstance(value, np.random.Generator):
            setattr(obj, name, np.random.default_rng(child))
        elif depth < 3 and type(value).__module__.startswith("recoworld.") and hasattr(value, "__dict__"):
            _reseed(value, child, depth + 1)


def _not_consumed(view: UserView) -> np.ndarray:
    return -BIG * view.consumed


class WrapsBase(BaseRecommender):
    """A recommender built around a base ranker (``self.base``): feedback and log retraining go to the base,
    so a base that learns (online, or from logs like mf and sasrec) keeps learning underneath."""

    base: BaseRecommender

    def observe(self, view: UserView, positions: np.ndarray, clicks: np.ndarray, reviewed: np.ndarray) -> None:
        """The wrapped base recommender sees the feedback."""
        self.base.observe(view, positions, clicks, reviewed)

    def retrain(self, impressions: "pd.DataFrame") -> None:
        """The wrapped base recommender retrains on the logs."""
        self.base.retrain(impressions)

    @property
    def learns_from_logs(self) -> bool:
        """Whether the wrapped base recommender learns from the logs."""
        return self.base.learns_from_logs


class RandomRecommender(BaseRecommender):
    """K distinct candidates uniformly at random."""

    name = "random"

    def scores(self, view: UserView) -> np.ndarray:
        """Uniform random scores (from the recommender's seeded stream)."""
        return self.rng.random(view.candidates.shape)

    def rank(self, view: UserView, scores: np.ndarray) -> SlateChoice:
        """A uniformly random slate of K candidates per user."""
        pos = top_k(scores, view.slate_size)
        m = view.candidates.shape[1]
        return SlateChoice(pos, np.full(pos.shape, view.slate_size / m, dtype=np.float32))

    def inclusion(self, view: UserView) -> np.ndarray:
        """(b, M) chance each candidate is in the slate: K / M for every candidate."""
        return np.full(view.candidates.shape, view.slate_size / view.candidates.shape[1])


class PopularRecommender(BaseRecommender):
    """Most popular candidates the user has not watched."""

    name = "popular"

    def scores(self, view: UserView) -> np.ndarray:
        """Each candidate's popularity; items the user already consumed sink to the bottom."""
        return view.catalog.popularity[view.candidates] + _not_consumed(view)


class GreedyRelevance(BaseRecommender):
    """Closest to the user's engagement profile; popularity breaks the cold start."""

    name = "greedy"

    def __init__(self, popularity_weight: float = 0.1, seed: int = 0) -> None:
        super().__init__(seed)
        self.popularity_weight = popularity_weight

    def scores(self, view: UserView) -> np.ndarray:
        """Affinity with the platform's estimate of the user's taste, plus ``popularity_weight`` times popularity;
        consumed items sink."""
        return view.affinity() + self.popularity_weight * view.catalog.popularity[view.candidates] + _not_consumed(view)


class MMRDiversity(GreedyRelevance):
    """Maximal marginal relevance: λ·relevance − (1−λ)·max similarity to items already in the slate."""

    name = "mmr"

    def __init__(self, lambda_: float = 0.5, popularity_weight: float = 0.1, seed: int = 0) -> None:
        super().__init__(popularity_weight, seed)
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError("mmr.lambda_: must lie in [0, 1]")
        self.lambda_ = lambda_

    def rank(self, view: UserView, scores: np.ndarray) -> SlateChoice:
        """Greedy maximal marginal relevance: each slot takes the candidate best in λ·score − (1 − λ)·its highest
        similarity to the items already picked (λ = ``lambda_``)."""
        pos = mmr_positions(view.catalog.embeddings, view.candidates, scores, self.lambda_, view.slate_size)
        return SlateChoice(pos, np.ones(pos.shape, dtype=np.float32))


class EpsilonGreedy(GreedyRelevance):
    """Greedy relevance, but each slot is a uniformly random candidate with probability ε."""

    name = "egreedy"

    def __init__(self, epsilon: float = 0.1, popularity_weight: float = 0.1, seed: int = 0) -> None:
        super().__init__(popularity_weight, seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError("egreedy.epsilon: must lie in [0, 1]")
        self.epsilon = epsilon

    def rank(self, view: UserView, scores: np.ndarray) -> SlateChoice:
        """The top-K slate, each slot replaced with probability ``epsilon`` by a candidate drawn uniformly from those
        not yet in it; the propensities are the exact marginal inclusion probabilities."""
        b, m = scores.shape
        k = view.slate_size
        greedy = top_k(scores, k)
        explore = self.rng.random((b, k)) < self.epsilon
        pos = greedy.copy()
        taken = np.zeros((b, m), dtype=bool)
        kept_rows, kept_slots = np.nonzero(~explore)
        taken[kept_rows, greedy[kept_rows, kept_slots]] = True
        for j in range(k):  # random slots take a candidate not already in the slate
            rows = np.flatnonzero(explore[:, j])
            if len(rows):
                noise = self.rng.random((len(rows), m)) - BIG * taken[rows]
                pos[rows, j] = noise.argmax(1)
                taken[rows, pos[rows, j]] = True
        prop = np.take_along_axis(self._inclusion(greedy, m, k), pos, 1).astype(np.float32)
        return SlateChoice(pos, prop)

    def _inclusion(self, greedy: np.ndarray, m: int, k: int) -> np.ndarray:
        """Exact marginal inclusion. With e explored slots, the explored picks are e draws without
        replacement from the M − K + e candidates no kept greedy slot holds, so each of those is in the
        slate with probability e / (M − K + e). A greedy item is kept (1 − ε) or freed and drawn again."""
        from math import comb

        eps = self.epsilon

        def pmf(n: int, e: int) -> float:
            return comb(n, e) * eps**e * (1 - eps) ** (n - e)

        other = sum(pmf(k, e) * e / (m - k + e) for e in range(1, k + 1))
        freed = sum(pmf(k - 1, e) * (e + 1) / (m - k + e + 1) for e in range(k))
        incl = np.full((len(greedy), m), other)
        np.put_along_axis(incl, greedy, 1.0 - eps + eps * freed, axis=1)
        return incl

    def inclusion(self, view: UserView) -> np.ndarray:
        """(b, M) exact chance each candidate is in the slate under epsilon exploration of the greedy top K."""
        m, k = view.candidates.shape[1], view.slate_size
        return self._inclusion(top_k(self.scores(view), k), m, k)


class LinUCB(BaseRecommender):
    """Shared linear UCB over candidate features, learning click rates from every user's feedback."""

    name = "linucb"

    additive_state = ("_a", "_b")
    n_features = 7

    def __init__(self, alpha: float = 0.5, ridge: float = 1.0, seed: int = 0) -> None:
        super().__init__(seed)
        self.alpha = alpha
        self.ridge = ridge
        self._a = ridge * np.eye(self.n_features)
        self._b = np.zeros(self.n_features)

    @staticmethod
    def features(view: UserView) -> np.ndarray:
        """(b, M, d): affinity, popularity, quality, topic click share, topic novelty, consumed, bias."""
        cat, cands = view.catalog, view.candidates
        topics = cat.topic[cands]
        clicks = view.click_topics / np.maximum(view.click_topics.sum(1, keepdims=True), 1e-9)
        shown = np.take_along_axis(view.shown_topics, topics, 1)
        return np.stack(
            [
                view.affinity(),
                cat.popularity[cands],
                cat.quality[cands],
                np.take_along_axis(clicks, topics, 1),
                np.exp(-shown / 3.0),
                view.consumed.astype(np.float64),
                np.ones(cands.shape),
            ],
            axis=2,
        )

    def scores(self, view: UserView) -> np.ndarray:
        """Upper confidence bound per candidate: the ridge estimate on the candidate's features plus ``alpha`` times
        its confidence width."""
        x = self.features(view)
        a_inv = np.linalg.inv(self._a)
        theta = a_inv @ self._b
        bonus = np.sqrt(np.einsum("bmd,de,bme->bm", x, a_inv, x))
        return x @ theta + self.alpha * bonus

    def observe(self, view: UserView, positions: np.ndarray, clicks: np.ndarray, reviewed: np.ndarray) -> None:
        """Adds the reviewed slots' features and clicks to the ridge regression's sufficient statistics."""
        x = np.take_along_axis(self.features(view), positions[:, :, None], 1)[reviewed]
        self._a += x.T @ x
        self._b += x.T @ clicks[reviewed].astype(np.float64)
