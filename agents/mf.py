"""Matrix factorisation retrained on the impression logs: implicit-feedback ALS in numpy.

The population runner calls :meth:`MatrixFactorization.retrain` every few days with all the
impressions logged so far. Positives are the items a user engaged with (click, like, comment,
share; stronger actions and longer watches count more), reviewed skips are observed negatives,
and every other item is an implicit zero of confidence one (Hu, Koren & Volinsky, 2008).

Scoring adds ``mf_weight`` times the factor score to the greedy relevance score, so a user or an
item the last retrain never saw still gets the greedy ranking, and before the first retrain the
model ranks exactly like :class:`~recoworld.agents.baselines.GreedyRelevance`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recoworld.agents.baselines import BaseRecommender, GreedyRelevance
from recoworld.agents.protocol import UserView
from recoworld.world.catalog import Catalog, require_columns

REQUIRED_COLUMNS: tuple[str, ...] = ("user", "item", "action", "watch_seconds")
# how much each engaged action is worth (the confidence is 1 + alpha * strength)
ACTION_STRENGTH: dict[str, float] = {"click": 1.0, "like": 2.0, "comment": 2.0, "share": 3.0}
# reviewed without engaging ('leave' = skipped, then closed the app)
NEGATIVE_ACTIONS: tuple[str, ...] = ("skip", "leave")
IGNORED_ACTIONS: tuple[str, ...] = ("unseen",)  # the user never got to the item
_ACTIONS: tuple[str, ...] = (*IGNORED_ACTIONS, *NEGATIVE_ACTIONS, *ACTION_STRENGTH)
_CHUNK_ENTRIES = 1 << 17  # padded (owner, entry) cells per batched solve: bounds memory at ~20 MB
_SCORE_USERS = 1024  # users scored per einsum


class MatrixFactorization(BaseRecommender):
    """Implicit ALS on the logs, on top of greedy relevance for what the logs do not cover."""

    name = "mf"

    def __init__(
        self,
        factors: int = 16,
        regularization: float = 5.0,
        alpha: float = 10.0,
        skip_weight: float = 0.5,
        watch_weight: float = 0.5,
        iterations: int = 8,
        mf_weight: float = 2.0,
        popularity_weight: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        checks = {
            "factors": factors >= 1,
            "regularization": regularization > 0,
            "alpha": alpha >= 0,
            "skip_weight": skip_weight >= 0,
            "watch_weight": watch_weight >= 0,
            "iterations": iterations >= 1,
            "mf_weight": mf_weight >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                bound = ">= 1" if key in ("factors", "iterations") else "> 0" if key == "regularization" else ">= 0"
                raise ValueError(f"mf.{key}: must be {bound}")
        self.factors = int(factors)
        self.regularization = float(regularization)
        self.alpha = float(alpha)
        self.skip_weight = float(skip_weight)
        self.watch_weight = float(watch_weight)
        self.iterations = int(iterations)
        self.mf_weight = float(mf_weight)
        self._fallback = GreedyRelevance(popularity_weight=popularity_weight, seed=seed)
        # fitted state: ids of the users / items of the last retrain and their factors
        self.user_ids: np.ndarray | None = None  # (U,) str
        self.item_ids: np.ndarray | None = None  # (I,) str
        self.user_factors: np.ndarray | None = None  # (U, factors)
        self.item_factors: np.ndarray | None = None  # (I, factors)
        self._user_row: dict[str, int] = {}
        self._reset_cache()

    @property
    def popularity_weight(self) -> float:
        """Weight of popularity in the scores of the fallback used before the first fit."""
        return self._fallback.popularity_weight

    @property
    def trained(self) -> bool:
        """Whether the factors have been fitted (before that, scores come from the fallback)."""
        return self.item_factors is not None

    # ----------------------------------------------------------------- fitting
    def retrain(self, impressions: pd.DataFrame) -> None:
        """Refit on all impression logs so far. Columns used: 'user' (str user id), 'item' (str item id),
        'action' (str, one of 'unseen','skip','click','like','comment','share','leave'), 'watch_seconds' (float).

        Duplicate (user, item) rows add up. An empty log (or one with only 'unseen' rows) leaves the
        model untrained, so it ranks like greedy relevance.
        """
        if len(impressions) == 0:
            self._forget()
            return
        require_columns(impressions, REQUIRED_COLUMNS, "mf.retrain")
        data = self._interactions(impressions)
        if data is None:
            self._forget()
            return
        user_ids, item_ids, u, i, pref, weight = data
        x, y = implicit_als(
            u, i, pref, weight, len(user_ids), len(item_ids), self.factors, self.regularization, self.iterations, self.rng
        )
        self.user_ids, self.item_ids, self.user_factors, self.item_factors = user_ids, item_ids, x, y
        self._user_row = {uid: k for k, uid in enumerate(user_ids.tolist())}
        self._reset_cache()

    def _interactions(
        self, frame: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Aggregate the log to one (user, item) entry: ids, codes, preference (0/1) and confidence − 1."""
        action = _codes(frame["action"], _ACTIONS)
        keep = action >= len(IGNORED_ACTIONS)
        if not keep.any():
            return None
        action = action[keep]
        watch = pd.to_numeric(frame["watch_seconds"], errors="coerce").to_numpy(dtype=np.float64)[keep]
        watch = np.nan_to_num(np.maximum(watch, 0.0), nan=0.0, posinf=0.0)
        u, user_ids = _factorize(frame["user"], keep)
        i, item_ids = _factorize(frame["item"], keep)

        strength_of = np.zeros(len(_ACTIONS))
        strength_of[[_ACTIONS.index(a) for a in ACTION_STRENGTH]] = list(ACTION_STRENGTH.values())
        positive = strength_of[action] > 0
        strength = np.where(positive, strength_of[action] + self.watch_weight * np.log1p(watch / 60.0), 0.0)

        key, inverse = np.unique(u.astype(np.int64) * len(item_ids) + i, return_inverse=True)
        pos = np.bincount(inverse, weights=strength, minlength=len(key))
        neg = np.bincount(inverse, weights=(~positive).astype(np.float64), minlength=len(key))
        pref = (pos > 0).astype(np.float64)
        # an engaged pair counts by its engagement; a pair only ever skipped by how often it was skipped
        weight = self.alpha * np.where(pos > 0, pos, self.skip_weight * neg)
        return user_ids, item_ids, key // len(item_ids), key % len(item_ids), pref, weight

    def _forget(self) -> None:
        self.user_ids = self.item_ids = self.user_factors = self.item_factors = None
        self._user_row = {}
        self._reset_cache()

    # ----------------------------------------------------------------- scoring
    def scores(self, view: UserView) -> np.ndarray:
        """The fallback's scores plus ``mf_weight`` times the MF's predicted preference (items unseen at the last
        retrain get the mean item factor, unknown users zero); the fallback's alone before the first retrain."""
        base = self._fallback.scores(view)
        if not self.trained:
            return base
        rows = self._factor_rows(view.catalog)[view.candidates]  # (b, M), -1 = not in the last retrain
        # unknown items get the mean item factor (the user's average predicted preference); unknown users zero
        items = np.vstack([self.item_factors, self.item_factors.mean(0, keepdims=True)])
        users = np.vstack([self.user_factors, np.zeros((1, self.factors))])
        u = np.array([self._user_row.get(str(uid), -1) for uid in view.user_ids], dtype=np.int64)
        mf = np.empty(rows.shape)
        for s in range(0, len(u), _SCORE_USERS):  # bounded (users, candidates, factors) temporaries
            mf[s : s + _SCORE_USERS] = np.einsum("bmk,bk->bm", items[rows[s : s + _SCORE_USERS]], users[u[s : s + _SCORE_USERS]])
        return base + self.mf_weight * mf

    def _factor_rows(self, catalog: Catalog) -> np.ndarray:
        """(len(catalog),) factor row of each catalog row (-1 = unknown); extended as the catalog grows."""
        n = len(catalog)
        if self._map_catalog is not catalog or len(self._row_map) > n:
            self._map_catalog, self._row_map = catalog, np.empty(0, dtype=np.int64)
        if len(self._row_map) < n:
            if self._item_index is None:
                self._item_index = pd.Index(self.item_ids)
            new_ids = np.asarray(catalog.item_id[len(self._row_map) : n]).astype(str)
            self._row_map = np.concatenate([self._row_map, self._item_index.get_indexer(new_ids).astype(np.int64)])
        return self._row_map

    def _reset_cache(self) -> None:
        self._map_catalog: Catalog | None = None
        self._row_map = np.empty(0, dtype=np.int64)
        self._item_index: pd.Index | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_map_catalog=None, _row_map=np.empty(0, dtype=np.int64), _item_index=None)
        return state


def _codes(column: pd.Series, labels: tuple[str, ...]) -> np.ndarray:
    """Index into ``labels`` of every value (ValueError names the first missing or unknown value)."""
    codes, uniques = pd.factorize(column)
    if (codes < 0).any():
        raise ValueError(f"mf.retrain: column '{column.name}' has a missing value at row {int(np.flatnonzero(codes < 0)[0])}")
    lookup = np.array([labels.index(str(v)) if str(v) in labels else -1 for v in uniques], dtype=np.int64)
    if (lookup < 0).any():
        bad = uniques[int(np.flatnonzero(lookup < 0)[0])]
        raise ValueError(f"mf.retrain: column '{column.name}' has unknown value '{bad}' (known: {', '.join(labels)})")
    return lookup[codes]


def _factorize(column: pd.Series, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..n-1 of the kept rows and the str ids they stand for (1 and '1' are the same id)."""
    codes, uniques = pd.factorize(column, sort=True)  # sorted: the fit does not depend on the log's row order
    codes = codes[keep]
    if (codes < 0).any():
        raise ValueError(f"mf.retrain: column '{column.name}' has a missing value")
    present = np.bincount(codes, minlength=len(uniques)) > 0
    ids = np.asarray(uniques, dtype=object)[present].astype(str)
    codes = (np.cumsum(present) - 1)[codes]
    merged, ids_unique = pd.factorize(ids)
    if len(ids_unique) < len(ids):
        codes, ids = merged[codes], np.asarray(ids_unique).astype(str)
    return codes.astype(np.int64), ids.astype(object)


# --------------------------------------------------------------------------- the solver
def implicit_als(
    users: np.ndarray,
    items: np.ndarray,
    pref: np.ndarray,
    weight: np.ndarray,
    n_users: int,
    n_items: int,
    factors: int,
    regularization: float,
    iterations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Alternating least squares for implicit feedback (Hu, Koren & Volinsky, 2008).

    Minimises Σ_ui c_ui (p_ui − x_u·y_i)² + λ(Σ|x_u|² + Σ|y_i|²) over all user-item pairs, where
    the listed entries have preference ``pref`` and confidence ``1 + weight`` and every other
    pair has p = 0, c = 1. Each half-step solves, per user, (YᵀY + Y_uᵀ diag(w_u) Y_u + λI) x_u = Y_uᵀ c_u p_u,
    with YᵀY shared and the sparse corrections built by batched matrix products over users
    grouped by how many entries they have.
    """
    user_side = _Side(users, items, pref, weight, n_users)
    item_side = _Side(items, users, pref, weight, n_items)
    x = np.zeros((n_users, factors))
    y = rng.normal(0.0, 0.01, size=(n_items, factors))
    for _ in range(iterations):
        x = user_side.solve(y, regularization)
        y = item_side.solve(x, regularization)
    return x, y


class _Side:
    """One side of the factorisation: each owner's entries, padded into batches of similar length."""

    def __init__(self, owner: np.ndarray, other: np.ndarray, pref: np.ndarray, weight: np.ndarray, n_owners: int) -> None:
        self.n_owners = n_owners
        order = np.argsort(owner, kind="stable")
        counts = np.bincount(owner, minlength=n_owners)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        other_s, weight_s, cp_s = other[order], weight[order], ((1.0 + weight) * pref)[order]
        by_count = np.argsort(counts, kind="stable")
        by_count = by_count[counts[by_count] > 0]
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        s = 0
        while s < len(by_count):
            # owners are in ascending count order, so a batch's padded length is its last owner's count
            window = counts[by_count[s : s + _CHUNK_ENTRIES]]
            cells = np.arange(1, len(window) + 1) * window
            e = s + max(1, int(np.searchsorted(cells, _CHUNK_ENTRIES, side="right")))
            own = by_count[s:e]
            length = int(counts[own[-1]])
            pos = starts[own][:, None] + np.arange(length)[None, :]
            valid = np.arange(length)[None, :] < counts[own][:, None]
            pos = np.where(valid, pos, 0)
            self.batches.append(
                (
                    own,
                    np.where(valid, other_s[pos], -1).astype(np.intp),  # -1 picks the zero row appended to the fixed factors
                    np.where(valid, weight_s[pos], 0.0).astype(np.float32),
                    np.where(valid, cp_s[pos], 0.0).astype(np.float32),
                )
            )
            s = e

    def solve(self, fixed: np.ndarray, regularization: float) -> np.ndarray:
        k = fixed.shape[1]
        gram = fixed.T @ fixed + regularization * np.eye(k)
        padded = np.vstack([fixed, np.zeros((1, k))]).astype(np.float32)
        out = np.zeros((self.n_owners, k))
        for own, idx, w, cp in self.batches:
            f = np.take(padded, idx, axis=0)  # (n, L, k)
            a = gram + np.matmul(f.transpose(0, 2, 1), f * w[:, :, None])
            b = np.matmul(cp[:, None, :], f)  # (n, 1, k)
            out[own] = np.linalg.solve(a, b.transpose(0, 2, 1).astype(np.float64))[:, :, 0]
        return out
