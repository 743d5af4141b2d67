"""Biased logistic matrix factorisation with optional side features, and the rule that tunes it.

The engagement logit of user u on item i is ``mu + b_u + b_i + p_u . q_i + x_ui . w``. It serves two
roles: the ``mf`` fidelity baseline (no side features; factors and L2 tuned on a validation split carved
from the training period) and the calibrated simulator's click model (the same MF term plus the
kernel's utility terms as side features), so both are fitted by one solver (:mod:`.solver`, full-batch
Adam in torch) under one tuning rule.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from recoworld.progress import stage

LR = 0.05  # Adam's step size
EPOCHS = 300  # most full-batch steps of a fit (it stops sooner once its objective stops improving)
ROWS = 1 << 18  # rows scored at once by LogisticMF.logit

@dataclass
class LogisticMF:
    """Fitted parameters; :meth:`logit` scores (user, item, features) rows; unseen codes (-1) get zeros."""

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    weights: np.ndarray

    def logit(self, users: np.ndarray, items: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """Logits of (user, item) rows, plus ``x @ weights`` when features are given; an unknown user or item (-1)
        contributes no bias or factors. Scored ``ROWS`` at a time: each row's factors are gathered, and all of them
        at once would take (rows × factors) float64 twice over (5 GB for 10M rows and 32 factors)."""
        if len(users) <= ROWS:
            return self._logit(users, items, x)
        out = np.empty(len(users))
        for s in range(0, len(users), ROWS):
            part = slice(s, s + ROWS)
            out[part] = self._logit(users[part], items[part], None if x is None else x[part])
        return out

    def _logit(self, users: np.ndarray, items: np.ndarray, x: np.ndarray | None) -> np.ndarray:
        ub = np.where(users >= 0, self.user_bias[np.maximum(users, 0)], 0.0)
        ib = np.where(items >= 0, self.item_bias[np.maximum(items, 0)], 0.0)
        pu = self.user_factors[np.maximum(users, 0)] * (users >= 0)[:, None]
        qi = self.item_factors[np.maximum(items, 0)] * (items >= 0)[:, None]
        s = self.mu + ub + ib + np.einsum("nk,nk->n", pu, qi)
        if x is not None and len(self.weights):
            s = s + x @ self.weights
        return s

    def predict(self, users: np.ndarray, items: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """Probabilities of engagement: the sigmoid of :meth:`logit`."""
        return 1.0 / (1.0 + np.exp(-self.logit(users, items, x)))


@dataclass
class ValidRows:
    """Validation rows for early stopping (unweighted)."""

    users: np.ndarray
    items: np.ndarray
    y: np.ndarray
    x: np.ndarray | None = None


def _solver():
    try:
        from recoworld.users.calibration import solver
    except ImportError as exc:
        raise ImportError(f"the logistic-MF solver needs torch (pip install 'recoworld[rl]'): {exc}") from None
    return solver


def fit_logistic_mf(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int, factors: int = 16,
                    l2: float = 0.1, x: np.ndarray | None = None, *, l2_bias: float | None = None, epochs: int = EPOCHS,
                    lr: float = LR, seed: int = 0, sample_weight: np.ndarray | None = None,
                    valid: ValidRows | None = None) -> tuple[LogisticMF, int, float]:
    """Maximum a-posteriori fit (weighted mean log-loss + ``l2``/2 · squared norms of the biases and factors of
    every row) by full-batch Adam (:mod:`.solver`), at most ``epochs`` steps, each a pass over every row; side
    features ``x`` (n, f) get unpenalised weights. Returns (model, steps taken, log-loss on ``valid`` or nan)."""
    model, done, loss, _ = _fit(users, items, y, n_users, n_items, factors, l2, x, l2_bias=l2_bias, epochs=epochs, lr=lr,
                                seed=seed, sample_weight=sample_weight, valid=valid)
    return model, done, loss


@dataclass
class Warm:
    """Where a fit ended (the solver's model and Adam's moments, and the feature scale), for the next fit to start from."""

    model: Any  # solver.BiasedMF (torch is imported lazily)
    optimizer: Any  # torch.optim.Adam
    scale: np.ndarray


def _fit(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int, factors: int, l2: float,
         x: np.ndarray | None, *, l2_bias: float | None = None, epochs: int = EPOCHS, lr: float = LR, seed: int = 0,
         sample_weight: np.ndarray | None = None, valid: ValidRows | None = None, start: Warm | None = None,
         best: float | None = None) -> tuple[LogisticMF, int, float, Warm]:
    """:func:`fit_logistic_mf` from the seed's factors, or from ``start`` (its parameters, Adam's moments and feature
    scale); with ``best`` (the grid's lowest validation loss so far), the fit also stops once its log-loss on ``valid``
    stops moving, or stays above ``best`` (:func:`.solver.train`). Returns (model, steps, validation loss or nan,
    where it ended)."""
    solver = _solver()
    import torch

    l2_bias = l2 if l2_bias is None else l2_bias
    x = np.zeros((len(y), 0)) if x is None else x
    if start is not None:
        scale = start.scale
    else:  # features in [-1, 1]: one step size fits all
        scale = np.maximum(np.abs(x).max(0), 1e-12) if len(x) else np.ones(x.shape[1])
    with solver.one_thread():
        held = None if valid is None else solver.Rows.of(
            valid.users, valid.items, valid.y, np.zeros((len(valid.y), 0)) if valid.x is None else _scaled(valid.x, scale), None)
        if start is None:
            model = solver.BiasedMF(n_users, n_items, factors, x.shape[1], torch.Generator().manual_seed(seed))
            rate = float(np.mean(y))
            model.mu.fill_(np.log(max(rate, 1e-6) / max(1 - rate, 1e-6)))
            optimizer = None
        else:  # copies: the grid fit it starts from may be started from again (the final fit)
            model = copy.deepcopy(start.model)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            optimizer.load_state_dict(copy.deepcopy(start.optimizer.state_dict()))
        done, optimizer = solver.train(model, solver.Rows.of(users, items, y, _scaled(x, scale), sample_weight), l2, l2_bias, epochs, lr,
                                       optimizer, None if best is None or held is None else solver.Watch(held, best))
        loss = float("nan") if held is None else solver.mean_log_loss(model, held)
        p = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    fitted = LogisticMF(float(p["mu"][0]), p["user_bias"], p["item_bias"], p["user_factors"], p["item_factors"], p["weights"] / scale)
    return fitted, done, loss, Warm(model, optimizer, scale)


def _scaled(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``x / scale`` as the solver's float32, without a float64 copy of the features (the same numbers)."""
    return np.divide(x, scale, out=np.empty(x.shape, np.float32), casting="unsafe")


def tune_logistic_mf(users: np.ndarray, items: np.ndarray, y: np.ndarray, valid: np.ndarray, n_users: int, n_items: int,
                     x: np.ndarray | None = None, grid_factors: tuple[int, ...] = (8, 16, 32),
                     grid_l2: tuple[float, ...] = (0.03, 0.1, 0.3), grid_recency: tuple[float, ...] = (0.0, 2.0),
                     recency: np.ndarray | None = None, epochs: int = EPOCHS, seed: int = 0,
                     name: str = "logistic MF", warm_start: bool = True, lr: float = LR) -> tuple[LogisticMF, dict[str, float]]:
    """Pick factors, L2 and recency weighting by validation log-loss (``valid`` marks validation rows, carved
    from the training period), then fit on all rows with the chosen setting. ``recency`` (n,) in [0, 1] is
    each row's place in its user's history; a row weighs ``exp(r·(recency − 1))`` under recency weight r
    (later interactions say more about the taste the user has now). With ``warm_start``, each factor count goes
    through L2 from the largest to the smallest for each recency weight in turn, each fit starting where the previous
    one ended and stopping once its validation loss stops moving, and the final fit starts from the chosen one; without,
    every fit starts from the seed's factors and runs until its training objective converges or ``epochs`` steps.
    ``lr`` is Adam's step size. Returns the model and the choice."""
    place = np.ones(len(y)) if recency is None else recency
    if warm_start and np.any(users[1:] < users[:-1]):  # rows by user: large tables are then built per block of users
        order = np.argsort(users, kind="stable")
        users, items, y, valid, place = users[order], items[order], y[order], valid[order], place[order]
        x = None if x is None else x[order]
    fit_rows = ~valid
    held = ValidRows(users[valid], items[valid], y[valid], None if x is None else x[valid])
    fit_u, fit_i, fit_y, fit_place = users[fit_rows], items[fit_rows], y[fit_rows], place[fit_rows]
    fit_x = None if x is None else x[fit_rows]
    recencies = grid_recency if recency is not None else (0.0,)
    if warm_start:  # one chain per factor count: L2 downwards, then again for the next recency weight
        grid = [(r, k, l2) for k in grid_factors for r in recencies for l2 in sorted(grid_l2, reverse=True)]
    else:
        grid = [(r, k, l2) for r in recencies for k in grid_factors for l2 in grid_l2]
    best: tuple[float, float, int, float] | None = None
    start: Warm | None = None
    chosen: Warm | None = None
    with stage(f"tuning the {name}", total=len(grid)) as progress:
        for j, (r, k, l2) in enumerate(grid):
            weight = np.exp(r * (fit_place - 1))
            chain = warm_start and j > 0 and grid[j - 1][1] == k
            _, done, loss, end = _fit(fit_u, fit_i, fit_y, n_users, n_items, k, l2, fit_x, epochs=epochs, lr=lr, seed=seed,
                                      sample_weight=weight / weight.mean(), valid=held, start=start if chain else None,
                                      best=(math.inf if best is None else best[0]) if warm_start else None)
            if best is None or loss < best[0]:
                best, chosen = (loss, r, k, l2), end
            start = end
            progress.advance()
            progress.note(f"factors {k}, L2 {l2:g}, recency {r:g}: validation log-loss {loss:.4f} after {done} steps")
        assert best is not None
        loss, r, k, l2 = best
        progress.note(f"chose factors {k}, L2 {l2:g}, recency {r:g}: validation log-loss {loss:.4f}")
    choice = {"factors": float(k), "l2": l2, "recency": r, "valid_log_loss": loss, "epochs": float(epochs), "lr": lr}
    with stage(f"refitting the {name} on every training row"):
        model = refit(users, items, y, n_users, n_items, choice, x, place, seed, chosen if warm_start else None)
    return model, choice


def refit(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int, choice: dict[str, float],
          x: np.ndarray | None, place: np.ndarray | None, seed: int, start: Warm | None = None) -> LogisticMF:
    """The logistic MF fitted with a setting :func:`tune_logistic_mf` chose (factors, L2, recency, step cap, step size),
    from the seed's factors or from ``start`` (the chosen grid fit)."""
    weight = np.exp(choice.get("recency", 0.0) * ((np.ones(len(y)) if place is None else place) - 1))
    model, _, _, _ = _fit(users, items, y, n_users, n_items, int(choice["factors"]), choice["l2"], x, epochs=int(choice["epochs"]),
                          lr=choice.get("lr", LR), seed=seed, sample_weight=weight / weight.mean(), start=start)
    return model


def platt(s: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """(a, b) of σ(a·s + b) by Newton's method on the mean log-loss (a small ridge keeps it finite)."""
    X = np.column_stack([s, np.ones(len(s))])
    beta = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ beta))
        hess = (X * (p * (1 - p))[:, None]).T @ X / len(s) + l2 * np.eye(2)
        beta -= np.linalg.solve(hess, X.T @ (p - y) / len(s) + l2 * beta)
    return beta
