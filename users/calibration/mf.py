"""Biased logistic matrix factorisation with optional side features, by full-batch Adam in numpy.

The engagement logit of user u on item i is ``mu + b_u + b_i + p_u . q_i + x_ui . w``. It serves two
roles: the ``mf`` fidelity baseline (no side features; factors and L2 tuned on a validation split carved
from the training period) and the calibrated simulator's click model (the same MF term plus the
kernel's utility terms as side features), so both are fitted by one solver under one tuning rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _scatter(order: np.ndarray, starts: np.ndarray, ids: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Row sums of ``values`` grouped by ``ids`` (pre-sorted by ``order``), into an (n, ...) array."""
    out = np.zeros((n,) + values.shape[1:])
    if len(order):
        out[ids] = np.add.reduceat(values[order], starts, axis=0)
    return out


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
        ub = np.where(users >= 0, self.user_bias[np.maximum(users, 0)], 0.0)
        ib = np.where(items >= 0, self.item_bias[np.maximum(items, 0)], 0.0)
        pu = self.user_factors[np.maximum(users, 0)] * (users >= 0)[:, None]
        qi = self.item_factors[np.maximum(items, 0)] * (items >= 0)[:, None]
        s = self.mu + ub + ib + np.einsum("nk,nk->n", pu, qi)
        if x is not None and len(self.weights):
            s = s + x @ self.weights
        return s

    def predict(self, users: np.ndarray, items: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(users, items, x)))


def fit_logistic_mf(users: np.ndarray, items: np.ndarray, y: np.ndarray, n_users: int, n_items: int, factors: int = 16,
                    l2: float = 0.1, x: np.ndarray | None = None, *, l2_bias: float | None = None, iterations: int = 300, lr: float = 0.05,
                    seed: int = 0, sample_weight: np.ndarray | None = None) -> LogisticMF:
    """Maximum a-posteriori fit (mean log-loss + ``l2``/2 · squared norms of biases and factors per row they
    touch) by full-batch Adam; side features ``x`` (n, f) get unpenalised weights."""
    rng = np.random.default_rng(seed)
    l2_bias = l2 if l2_bias is None else l2_bias
    n = len(y)
    x = np.zeros((n, 0)) if x is None else np.asarray(x, dtype=np.float64)
    params = {
        "mu": np.array([np.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6))]),
        "bu": np.zeros(n_users), "bi": np.zeros(n_items),
        "P": rng.normal(0, 0.1, (n_users, factors)), "Q": rng.normal(0, 0.1, (n_items, factors)),
        "w": np.zeros(x.shape[1]),
    }
    u_order = np.argsort(users, kind="stable")
    u_ids, u_starts = np.unique(users[u_order], return_index=True)
    i_order = np.argsort(items, kind="stable")
    i_ids, i_starts = np.unique(items[i_order], return_index=True)
    u_count = np.maximum(np.bincount(users, minlength=n_users), 1)[:, None]
    i_count = np.maximum(np.bincount(items, minlength=n_items), 1)[:, None]
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, iterations + 1):
        P, Q = params["P"], params["Q"]
        s = params["mu"][0] + params["bu"][users] + params["bi"][items] + np.einsum("nk,nk->n", P[users], Q[items]) + x @ params["w"]
        g = (1.0 / (1.0 + np.exp(-s)) - y) / n
        if sample_weight is not None:
            g = g * sample_weight
        grads = {
            "mu": np.array([g.sum()]),
            "bu": _scatter(u_order, u_starts, u_ids, g, n_users) + l2_bias * params["bu"] * u_count[:, 0] / n,
            "bi": _scatter(i_order, i_starts, i_ids, g, n_items) + l2_bias * params["bi"] * i_count[:, 0] / n,
            "P": _scatter(u_order, u_starts, u_ids, g[:, None] * Q[items], n_users) + l2 * P * u_count / n,
            "Q": _scatter(i_order, i_starts, i_ids, g[:, None] * P[users], n_items) + l2 * Q * i_count / n,
            "w": x.T @ g,
        }
        for k, grad in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * grad
            v2[k] = 0.999 * v2[k] + 0.001 * grad**2
            params[k] -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v2[k] / (1 - 0.999**t)) + 1e-8)
    return LogisticMF(float(params["mu"][0]), params["bu"], params["bi"], params["P"], params["Q"], params["w"])


def tune_logistic_mf(users: np.ndarray, items: np.ndarray, y: np.ndarray, valid: np.ndarray, n_users: int, n_items: int,
                     x: np.ndarray | None = None, grid_factors: tuple[int, ...] = (8, 16, 32),
                     grid_l2: tuple[float, ...] = (0.03, 0.1, 0.3), grid_recency: tuple[float, ...] = (0.0, 2.0),
                     recency: np.ndarray | None = None, iterations: int = 300,
                     seed: int = 0) -> tuple[LogisticMF, dict[str, float]]:
    """Pick factors, L2 and recency weighting by validation log-loss (``valid`` marks validation rows, carved
    from the training period), then refit on all rows with the chosen setting. ``recency`` (n,) in [0, 1] is
    each row's place in its user's history; a row weighs ``exp(r·(recency − 1))`` under recency weight r
    (later interactions say more about the taste the user has now). Returns the model and the choice."""
    fit_rows = ~valid
    place = np.ones(len(y)) if recency is None else recency
    best: tuple[float, int, float, float] | None = None
    for r in grid_recency if recency is not None else (0.0,):
        weight = np.exp(r * (place - 1))
        for k in grid_factors:
            for l2 in grid_l2:
                w = weight[fit_rows] / weight[fit_rows].mean()
                model = fit_logistic_mf(users[fit_rows], items[fit_rows], y[fit_rows], n_users, n_items, factors=k, l2=l2,
                                        x=None if x is None else x[fit_rows], iterations=iterations, seed=seed, sample_weight=w)
                p = np.clip(model.predict(users[valid], items[valid], None if x is None else x[valid]), 1e-6, 1 - 1e-6)
                loss = float(-np.mean(y[valid] * np.log(p) + (1 - y[valid]) * np.log(1 - p)))
                if best is None or loss < best[0]:
                    best = (loss, k, l2, r)
    assert best is not None
    weight = np.exp(best[3] * (place - 1))
    model = fit_logistic_mf(users, items, y, n_users, n_items, factors=best[1], l2=best[2], x=x, iterations=iterations, seed=seed,
                            sample_weight=weight / weight.mean())
    return model, {"factors": float(best[1]), "l2": best[2], "recency": best[3], "valid_log_loss": best[0]}


def platt(s: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    """(a, b) of σ(a·s + b) by Newton's method on the mean log-loss (a small ridge keeps it finite)."""
    X = np.column_stack([s, np.ones(len(s))])
    beta = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ beta))
        hess = (X * (p * (1 - p))[:, None]).T @ X / len(s) + l2 * np.eye(2)
        beta -= np.linalg.solve(hess, X.T @ (p - y) / len(s) + l2 * beta)
    return beta
