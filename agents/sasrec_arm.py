"""The ``sasrec`` arm: SASRec retrained from the impression logs every ``run.retrain_every`` days.

A user's sequence is the items they engaged with (click, like, comment, share), in log order
(the runner appends each day's impressions in the order they were served). At serving time
the logged sequence is extended with the engaged items of the view's recent history that the
last retrain has not seen, the model's last state is scored against the candidates' item
embeddings, and items the last retrain never saw rank after known ones, by popularity. Users
with no engaged item yet, and everyone before the first retrain, get the popularity ranking.
Already-watched candidates go last, as in the other baselines.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recoworld.agents.baselines import BIG, BaseRecommender, PopularRecommender
from recoworld.agents.mf import ACTION_STRENGTH, REQUIRED_COLUMNS
from recoworld.agents.protocol import UserView
from recoworld.agents.sasrec import FittedSASRec, SASRecConfig, fit_sasrec
from recoworld.world.catalog import Catalog, require_columns

ENGAGED = tuple(ACTION_STRENGTH)  # click, like, comment, share
SCORE_USERS = 1024  # users per candidate-scoring product
# lighter than the ML-100K benchmark: a retrain happens every few simulated days, without validation
ARM_DEFAULTS: dict[str, Any] = {"epochs": 20, "windows": 2, "batch_size": 64, "dropout": 0.2}


class SASRecRecommender(BaseRecommender):
    """SASRec over each user's engaged-item sequence; popularity until it knows something."""

    name = "sasrec"

    def __init__(self, seed: int = 0, **config: Any) -> None:
        super().__init__(seed)
        try:
            self.config = SASRecConfig(**{**ARM_DEFAULTS, **config, "seed": seed})
        except ValueError as exc:
            raise ValueError(f"sasrec: bad parameters ({exc})".splitlines()[0]) from None
        self._fallback = PopularRecommender(seed=seed)
        self.fitted: FittedSASRec | None = None
        self.item_ids: np.ndarray = np.empty(0, dtype=object)  # model item code -> item id
        self.sequences: dict[str, list[int]] = {}  # user id -> engaged item codes, oldest first
        self._reset_cache()

    @property
    def trained(self) -> bool:
        """True once a retrain fitted the network."""
        return self.fitted is not None

    # ----------------------------------------------------------------- fitting
    def retrain(self, impressions: pd.DataFrame) -> None:
        """Refit from scratch on all impression logs so far (columns 'user', 'item', 'action'; rows in
        the order served). Fewer than two engaged items for every user leaves the model untrained."""
        if len(impressions):
            require_columns(impressions, REQUIRED_COLUMNS, "sasrec.retrain")
        engaged = impressions[impressions["action"].astype(str).isin(ENGAGED)] if len(impressions) else impressions
        if len(engaged) == 0:
            self._forget()
            return
        codes, item_ids = pd.factorize(engaged["item"].astype(str), sort=True)
        users = engaged["user"].astype(str).to_numpy()
        order = np.argsort(users, kind="stable")  # grouped by user, log order kept within a user
        bounds = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1], True])
        sequences = {users[order[a]]: codes[order[a:b]].tolist() for a, b in zip(bounds[:-1], bounds[1:])}
        if max(len(s) for s in sequences.values()) < 2:
            self._forget()
            return
        self.fitted = fit_sasrec(list(sequences.values()), len(item_ids), self.config)
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.sequences = sequences
        self._reset_cache()

    def _forget(self) -> None:
        self.fitted, self.item_ids, self.sequences = None, np.empty(0, dtype=object), {}
        self._reset_cache()

    # ----------------------------------------------------------------- scoring
    def scores(self, view: UserView) -> np.ndarray:
        """(b, M): SASRec scores of known candidates, above unknown ones (by popularity); popularity for
        users with nothing engaged; watched candidates last."""
        base = self._fallback.scores(view)
        if not self.trained:
            return base
        codes = self._codes(view.catalog)
        histories = self.histories(view, codes)
        states = self.fitted.states(histories)
        cand = codes[view.candidates]  # (b, M) model codes, -1 = unknown to the last retrain
        vectors = np.vstack([self.fitted.item_vectors(), np.zeros((1, self.config.hidden), np.float32)])
        logits = np.empty(cand.shape)
        for s in range(0, len(cand), SCORE_USERS):  # bounded (users, candidates, hidden) temporaries
            logits[s : s + SCORE_USERS] = np.einsum("bmd,bd->bm", vectors[cand[s : s + SCORE_USERS]], states[s : s + SCORE_USERS])
        known = cand >= 0
        # known items keep their order above every unknown one; unknown ones by popularity
        floor = np.where(known, logits, np.inf).min(1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor, 0.0)
        pop = view.catalog.popularity[view.candidates]
        model = np.where(known, logits, floor - 1.0 - 1.0 / (1.0 + pop)) - BIG * view.consumed
        has_history = np.array([len(h) > 0 for h in histories], dtype=bool)
        return np.where(has_history[:, None], model, base)

    def histories(self, view: UserView, codes: np.ndarray) -> list[list[int]]:
        """Each user's model input: the logged sequence plus newer engaged items of the view's history."""
        out = []
        engaged = (view.history_items >= 0) & (view.history_engagement > 0)
        for i, user in enumerate(view.user_ids):
            logged = self.sequences.get(str(user), [])
            seen = self._seen.setdefault(str(user), set(logged))
            recent = codes[view.history_items[i][engaged[i]]].tolist()
            out.append(logged[-self.config.max_len :] + [c for c in recent if c >= 0 and c not in seen])
        return out

    def _codes(self, catalog: Catalog) -> np.ndarray:
        """(len(catalog),) model code of each catalog row (-1 = unknown); extended as the catalog grows."""
        n = len(catalog)
        if self._map_catalog is not catalog or len(self._row_map) > n:
            self._map_catalog, self._row_map = catalog, np.empty(0, dtype=np.int64)
        if len(self._row_map) < n:
            new_ids = np.asarray(catalog.item_id[len(self._row_map) : n]).astype(str)
            found = pd.Index(self.item_ids).get_indexer(new_ids).astype(np.int64)
            self._row_map = np.concatenate([self._row_map, found])
        return self._row_map

    def _reset_cache(self) -> None:
        self._map_catalog: Catalog | None = None
        self._row_map = np.empty(0, dtype=np.int64)
        self._seen: dict[str, set[int]] = {}  # user id -> the logged sequence as a set (built on first use)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_map_catalog=None, _row_map=np.empty(0, dtype=np.int64), _seen={})
        return state
