"""ToolRec's tools for one user: attribute-oriented retrieval and re-ranking over a base ranker."""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any

import numpy as np

from recoworld.agents.baselines import GreedyRelevance
from recoworld.agents.protocol import UserView
from recoworld.agents.scoring import mmr_positions
from recoworld.agents.toolrec.actions import (
    LLM_RERANK,
    MMR_LAMBDA,
    RERANK_ATTRIBUTES,
    RETRIEVE_ATTRIBUTES,
    ToolError,
    normalise_attribute,
    parse_sid_prefix,
)
from recoworld.llm.text import find_name, name_lookup
from recoworld.world.embeddings import HashingEncoder, tokenize


# ------------------------------------------------------------------------------------ the tools
def user_view(view: UserView, row: int) -> UserView:
    """The one-user view of user ``row`` of a batch view."""
    b = len(view)
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(view):
        value = getattr(view, f.name)
        is_array = isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == b
        if is_array or (isinstance(value, list) and len(value) == b):
            changes[f.name] = value[row : row + 1]
        elif isinstance(value, dict):
            changes[f.name] = {k: v[row : row + 1] for k, v in value.items()}
    return dataclasses.replace(view, **changes)


class _CatalogFacts:
    """Per-catalog constants the tools need (computed once per catalog)."""

    def __init__(self, catalog) -> None:
        self.catalog = catalog
        self.duration_median = float(np.median(catalog.duration))
        codes = {name: t for t, name in enumerate(catalog.topic_names)}
        # a topic by its name, or by the form a prompt shows it in (quoted, capped)
        self.topic_index = {key: codes[name] for key, name in name_lookup(catalog.topic_names).items()}

    @cached_property
    def encoder(self):
        """The catalog's text encoder, or a hashing encoder of the embeddings' width."""
        return self.catalog._encoder or HashingEncoder(dim=self.catalog.embeddings.shape[1])

    @cached_property
    def centred(self) -> np.ndarray:
        """Unit item embeddings with the mean item removed (what text similarity compares against)."""
        centred = self.catalog.embeddings - self.catalog.mean_embedding
        return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)

    @cached_property
    def tokens(self) -> list[frozenset[str]]:
        return [frozenset(tokenize(t)) for t in self.catalog.texts]


class ToolBox:
    """Retrieval and rank tools over one user's candidates, backed by the base ranker's scores."""

    def __init__(self, view: UserView, base_scores: np.ndarray | None = None, facts: _CatalogFacts | None = None) -> None:
        if len(view) != 1:
            raise ValueError(f"ToolBox: expects a view of one user, got {len(view)}")
        self.view = view
        self.catalog = view.catalog
        self.cands = view.candidates[0]
        if base_scores is None:
            base_scores = GreedyRelevance().scores(view)[0]
        self.scores = np.asarray(base_scores, dtype=np.float64).reshape(-1)
        self.consumed = np.asarray(view.consumed[0], dtype=bool)
        self.facts = facts or _CatalogFacts(view.catalog)
        # the topic the user asked to see less of: never retrieved, used to fill only as a last resort
        less = int(view.instr_less[0])
        self.avoid = view.catalog.topic[self.cands] == less if less >= 0 else np.zeros(self.n, dtype=bool)

    @property
    def n(self) -> int:
        """Number of candidates the tools choose from."""
        return len(self.cands)

    # -- helpers -------------------------------------------------------------------------------
    def _k(self, k: int | None) -> int:
        k = self.view.slate_size if k is None else int(k)
        if k <= 0:
            raise ToolError(f"k must be > 0, got {k}")
        return min(k, self.n)

    def topic_code(self, name: str | None) -> int:
        """The topic's code, by its name (ToolError naming the known topics when none matches)."""
        code = find_name(self.facts.topic_index, name or "")
        if code is None:
            raise ToolError(f"unknown topic '{name}' (known: {', '.join(self.catalog.topic_names)})")
        return code

    def base_order(self, positions: np.ndarray | list[int]) -> list[int]:
        """Positions sorted by the base ranker's score, best first (stable)."""
        pos = np.asarray(positions, dtype=np.int64)
        return pos[np.argsort(-self.scores[pos], kind="stable")].tolist()

    def _ordered(self, mask: np.ndarray, k: int, primary: np.ndarray | None, exclude) -> list[int]:
        mask = mask & ~self.avoid
        if exclude:
            mask[np.asarray(list(exclude), dtype=np.int64)] = False
        pos = np.flatnonzero(mask)
        keys = [-self.scores[pos]]
        if primary is not None:
            keys.append(-primary[pos])
        keys.append(self.consumed[pos])  # np.lexsort: the last key is the primary one
        order = np.lexsort(keys)
        return pos[order[:k]].tolist()

    # -- retrieval -----------------------------------------------------------------------------
    def matches(self, attribute: str, value: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(mask over candidates, primary order key or None) of a retrieval attribute."""
        attribute = normalise_attribute(attribute)
        cat, cands = self.catalog, self.cands
        everything = np.ones(self.n, dtype=bool)
        if attribute == "topic":
            return cat.topic[cands] == self.topic_code(value), None
        if attribute == "recency":
            return everything, cat.created_day[cands].astype(np.float64)
        if attribute == "popularity":
            return everything, cat.popularity[cands].astype(np.float64)
        if attribute == "duration":
            which = (value or "").strip().lower()
            if which not in ("short", "long"):
                raise ToolError(f"duration value must be 'short' or 'long', got '{value}'")
            short = cat.duration[cands] <= self.facts.duration_median
            return (short if which == "short" else ~short), None
        if attribute == "semantic_id":
            prefix = parse_sid_prefix(value)
            codes = cat.semantic_ids()
            if len(prefix) > codes.shape[1]:
                raise ToolError(f"semantic_id prefix '{value}' has more than {codes.shape[1]} levels")
            return np.all(codes[cands, : len(prefix)] == np.asarray(prefix), axis=1), None
        if attribute == "text":
            sim = self.text_similarity(value)
            return sim > 0, sim
        raise ToolError(f"unknown retrieval attribute '{attribute}' (known: {', '.join(RETRIEVE_ATTRIBUTES)})")

    def text_similarity(self, text: str | None) -> np.ndarray:
        """(M,) cosine between the query's embedding and each candidate's (mean item removed), plus the
        share of the query's words found in the item's text (the hashing space is noisy for short queries)."""
        if not (text or "").strip():
            raise ToolError("text retrieval needs a non-empty value")
        q = np.asarray(self.facts.encoder.encode([str(text)]), dtype=np.float64)[0]
        norm = np.linalg.norm(q)
        if norm < 1e-9:
            raise ToolError(f"text query '{text}' has no usable words")
        cosine = self.facts.centred[self.cands] @ (q / norm)
        words = set(tokenize(str(text)))
        tokens = self.facts.tokens
        overlap = np.array([len(words & tokens[row]) for row in self.cands]) / max(len(words), 1)
        return cosine + overlap

    def retrieve(self, attribute: str, value: str | None = None, k: int | None = None, exclude=()) -> list[int]:
        """Up to ``k`` candidate positions matching the attribute, best first (``exclude``: skip these)."""
        k = self._k(k)
        mask, primary = self.matches(attribute, value)
        return self._ordered(mask, k, primary, exclude)

    # -- ranking -------------------------------------------------------------------------------
    def rerank(self, pool: list[int], attribute: str, k: int | None = None) -> list[int]:
        """The pool re-ordered by the attribute, cut to ``k`` (default: all of it)."""
        attribute = normalise_attribute(attribute)
        if not pool:
            raise ToolError("the pool is empty: retrieve something first")
        k = len(pool) if k is None else int(k)
        if k <= 0:
            raise ToolError(f"k must be > 0, got {k}")
        pos = np.asarray(pool, dtype=np.int64)
        cat, rows = self.catalog, self.cands[pos]
        if attribute == "relevance":
            return self.base_order(pos)[:k]
        if attribute == "diversity":
            return self.diversify(pool, k)
        attr = {"popularity": cat.popularity, "recency": cat.created_day, "quality": cat.quality}.get(attribute)
        if attr is None:
            known = ", ".join((*RERANK_ATTRIBUTES, LLM_RERANK))
            raise ToolError(f"unknown rank attribute '{attribute}' (known: {known})")
        order = np.lexsort((-self.scores[pos], -attr[rows].astype(np.float64), self.consumed[pos]))
        return pos[order[:k]].tolist()

    def diversify(self, pool: list[int], k: int, lambda_: float = MMR_LAMBDA) -> list[int]:
        """MMR (:func:`recoworld.agents.scoring.mmr_positions`) with relevance = base-score rank in the
        pool, in [0, 1]; watched items sink."""
        pos = np.asarray(pool, dtype=np.int64)
        n = len(pos)
        rank = np.empty(n)
        rank[np.argsort(-self.scores[pos], kind="stable")] = np.arange(n)
        relevance = 1.0 - rank / max(n - 1, 1) - self.consumed[pos]
        picked = mmr_positions(self.catalog.embeddings, self.cands[pos][None, :], relevance[None, :], lambda_, min(k, n))[0]
        return pos[picked].tolist()

    def fill(self, slate: list[int], k: int) -> list[int]:
        """``slate`` completed to ``k`` distinct positions with the base ranker's best others."""
        have = set(slate)
        out = list(slate)
        order = self.base_order(np.arange(self.n))
        for p in [p for p in order if not self.avoid[p]] + [p for p in order if self.avoid[p]]:
            if len(out) >= k:
                break
            if p not in have:
                out.append(p)
                have.add(p)
        return out
