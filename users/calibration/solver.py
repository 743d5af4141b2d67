"""The logistic-MF solver: full-batch Adam in torch, with the gradient written out and summed over chunks of rows.

Imported lazily by :mod:`.mf` (torch comes with the ``rl`` and ``align`` extras). Every step reads every row
(in chunks of ``CHUNK``, so memory stays bounded on large logs; through the dense table of logits when users ×
items is small, a block of users at a time when it is larger and the rows are sorted by user) and moves every
parameter by Adam (the caller's step size), the algorithm the numpy solver ran; a fit stops at its step cap, once
the training objective stops improving or, for a tuning fit, once its validation loss stops moving. A fit can start
where another ended (:class:`.mf.Warm`: parameters and Adam's moments). Mini-batches are not used: on sparse rows their noise swamps Adam's per-coordinate
step, and the factors stall near their start instead of reaching the maximum a posteriori (measured on
ML-100K: objective 0.5841 against 0.5830, validation log-loss 0.5966 against 0.5937). One fit runs on one
thread with torch's deterministic algorithms; its only randomness is the seeded initial factors.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn

CHUNK = 1 << 19  # rows whose gradient is computed at once
DENSE_CELLS = 1 << 26  # a (users x items) table of logits up to this size (256 MB) ...
DENSITY = 64  # ... and at most this many cells per row replaces the gathers of factors by matrix products
BLOCKED_ABOVE = 1 << 22  # a table larger than this (16 MB), of rows sorted by user, is built a block of users at a time ...
BLOCK_CELLS = 1 << 18  # ... of about this many cells (1 MB: it stays in cache, and memory stays bounded)
WINDOW = 10  # steps over which the objective must improve ...
TOLERANCE = 1e-6  # ... by more than this (relative), or the fit stops
WARM_WINDOW = 30  # the window of a fit that starts where another ended: Adam's carried moments meet new rows or a new
# penalty, and the objective oscillates for its first tens of steps (measured: 13 steps and 1e-4 short of the optimum
# with the short window on a million ratings, at the optimum after about 60 steps)
EVERY = 5  # a watched fit (a warm-started tuning fit) scores its validation rows every this many steps ...
VALID_WINDOW = 4  # ... and stops once the last this many scores and the one before ...
VALID_TOLERANCE = 1e-4  # ... lie within this (relative) of each other ...
PATIENCE = 20  # ... or once this many scores in a row of a fit that started warm were above the grid's best so far
# (it will not be picked; measured: a warm start's transient lifted the validation loss above the best for 50 steps
# before it fell below, on ML-100K's selection stage when it was warm-started; it is tuned cold now)


class BiasedMF(nn.Module):
    """``mu + b_u + b_i + p_u·q_i + x·w`` as tables (no autograd: :func:`train` writes the gradient out)."""

    def __init__(self, n_users: int, n_items: int, factors: int, features: int, generator: torch.Generator) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.user_bias = nn.Parameter(torch.zeros(n_users), requires_grad=False)
        self.item_bias = nn.Parameter(torch.zeros(n_items), requires_grad=False)
        self.user_factors = nn.Parameter(torch.randn(n_users, factors, generator=generator) * 0.1, requires_grad=False)
        self.item_factors = nn.Parameter(torch.randn(n_items, factors, generator=generator) * 0.1, requires_grad=False)
        self.weights = nn.Parameter(torch.zeros(features), requires_grad=False)

    def forward(self, u: torch.Tensor, i: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logit, the user factors, the item factors of each row)."""
        pu, qi = self.user_factors[u], self.item_factors[i]
        return self.mu + self.user_bias[u] + self.item_bias[i] + (pu * qi).sum(1) + x @ self.weights, pu, qi


@dataclass
class Rows:
    """Training or validation rows as tensors (features (n, f), weights (n,))."""

    u: torch.Tensor
    i: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    w: torch.Tensor
    counted: dict[tuple[str, int], object] = field(default_factory=dict, repr=False)  # what the fixed rows give, once

    def share(self, side: str, size: int) -> torch.Tensor:
        """(size,) each user's (``side`` "user") or item's share of the rows."""
        if (side, size) not in self.counted:
            codes = self.u if side == "user" else self.i
            self.counted[side, size] = torch.bincount(codes, minlength=size).to(torch.float32) / len(self.y)
        return self.counted[side, size]  # type: ignore[return-value]

    def blocks(self, size: int, n_users: int) -> list[int] | None:
        """The first row of each block of ``size`` users (and the end), or None unless the rows are sorted by user."""
        if ("blocks", size) not in self.counted:
            by_user = len(self.u) < 2 or bool((self.u[1:] >= self.u[:-1]).all())
            self.counted["blocks", size] = torch.searchsorted(self.u, torch.arange(0, n_users + size, size)).tolist() if by_user else None
        return self.counted["blocks", size]  # type: ignore[return-value]

    @classmethod
    def of(cls, users: np.ndarray, items: np.ndarray, y: np.ndarray, x: np.ndarray, w: np.ndarray | None) -> "Rows":
        """Log rows as tensors (indices int64, the rest float32; weights 1 when ``w`` is None)."""
        return cls(torch.from_numpy(np.ascontiguousarray(users, dtype=np.int64)), torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64)),
                   torch.from_numpy(np.asarray(y, dtype=np.float32)), torch.from_numpy(np.asarray(x, dtype=np.float32)),
                   torch.ones(len(y)) if w is None else torch.from_numpy(np.asarray(w, dtype=np.float32)))


@dataclass
class Watch:
    """A tuning fit's validation rows, and the lowest validation loss of the grid's earlier fits."""

    rows: Rows
    best: float


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread with deterministic algorithms; the caller's settings come back afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def mean_log_loss(model: BiasedMF, rows: Rows) -> float:
    """Weighted mean log-loss of ``model`` on ``rows`` (scored in chunks)."""
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(rows.y), CHUNK):
            part = slice(s, s + CHUNK)
            logit, _, _ = model(rows.u[part], rows.i[part], rows.x[part])
            total += float(nn.functional.binary_cross_entropy_with_logits(logit, rows.y[part], weight=rows.w[part], reduction="sum"))
    return total / max(float(rows.w.sum()), 1e-12)


def gradient(model: BiasedMF, rows: Rows, l2: float, l2_bias: float) -> float:
    """Write into each parameter's ``.grad`` the gradient of the objective (the weighted mean log-loss + ``l2``/2 ·
    squared factor norms and ``l2_bias``/2 · squared biases of every row, averaged over rows); returns the objective."""
    n, total = len(rows.y), float(rows.w.sum())
    grads = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    n_users, n_items = len(model.user_bias), len(model.item_bias)
    cells = n_users * n_items
    if cells > BLOCKED_ABOVE and cells <= DENSITY * n and rows.blocks(max(1, BLOCK_CELLS // n_items), n_users) is not None:
        loss = _blocked_terms(model, rows, grads, total)
    else:
        loss = (_dense_terms if cells <= min(DENSE_CELLS, DENSITY * n) else _gathered_terms)(model, rows, grads, total)
    for side, bias, factors in (("user", model.user_bias, model.user_factors), ("item", model.item_bias, model.item_factors)):
        share = rows.share(side, len(bias))
        grads[f"{side}_bias"] += l2_bias * share * bias
        grads[f"{side}_factors"] += l2 * share[:, None] * factors
        loss += 0.5 * float(l2_bias * (share * bias * bias).sum() + l2 * (share * (factors * factors).sum(1)).sum()) * total
    for name, p in model.named_parameters():
        p.grad = grads[name]
    return loss / total


def _row_terms(logit: torch.Tensor, rows: Rows, part: slice, grads: dict[str, torch.Tensor], total: float) -> tuple[float, torch.Tensor]:
    """(summed weighted log-loss, d objective / d logit) of a chunk of rows; adds the intercept's and weights' gradients."""
    w, y = rows.w[part], rows.y[part]
    g = w * (torch.sigmoid(logit) - y) / total
    grads["mu"] += g.sum()
    grads["weights"] += rows.x[part].T @ g
    return float((w * (nn.functional.softplus(logit) - y * logit)).sum()), g


def _gathered_terms(model: BiasedMF, rows: Rows, grads: dict[str, torch.Tensor], total: float) -> float:
    """The log-loss terms, each row's factors gathered and its gradient scattered back (any number of cells)."""
    loss = 0.0
    for s in range(0, len(rows.y), CHUNK):
        part = slice(s, s + CHUNK)
        u, i = rows.u[part], rows.i[part]
        logit, pu, qi = model(u, i, rows.x[part])
        chunk_loss, g = _row_terms(logit, rows, part, grads, total)
        loss += chunk_loss
        grads["user_bias"].index_add_(0, u, g)
        grads["item_bias"].index_add_(0, i, g)
        grads["user_factors"].index_add_(0, u, qi.mul_(g[:, None]))
        grads["item_factors"].index_add_(0, i, pu.mul_(g[:, None]))
    return loss


def _dense_terms(model: BiasedMF, rows: Rows, grads: dict[str, torch.Tensor], total: float) -> float:
    """The log-loss terms through the dense (users × items) table of logits, when it is small and not too sparse:
    each row reads one cell and adds its gradient to one cell, and the factors' gradients are two matrix products."""
    n_items = len(model.item_bias)
    table = (model.user_factors @ model.item_factors.T).add_(model.user_bias[:, None]).add_(model.item_bias[None, :]).add_(model.mu)
    cell_grad = torch.zeros(table.numel())
    loss = 0.0
    for s in range(0, len(rows.y), CHUNK):
        part = slice(s, s + CHUNK)
        cell = rows.u[part] * n_items + rows.i[part]
        chunk_loss, g = _row_terms(table.view(-1)[cell] + rows.x[part] @ model.weights, rows, part, grads, total)
        loss += chunk_loss
        cell_grad.index_add_(0, cell, g)
    cell_grad = cell_grad.view(table.shape)
    grads["user_bias"] += cell_grad.sum(1)
    grads["item_bias"] += cell_grad.sum(0)
    grads["user_factors"] += cell_grad @ model.item_factors
    grads["item_factors"] += cell_grad.T @ model.user_factors
    return loss


def _blocked_terms(model: BiasedMF, rows: Rows, grads: dict[str, torch.Tensor], total: float) -> float:
    """The dense path's terms one block of users at a time (rows sorted by user): each block's table of logits and
    its gradient stay small, and the whole table is never built."""
    n_users, n_items = len(model.user_bias), len(model.item_bias)
    size = max(1, BLOCK_CELLS // n_items)
    bounds = rows.blocks(size, n_users)
    assert bounds is not None
    loss = 0.0
    for b, first in enumerate(range(0, n_users, size)):
        part, users = slice(bounds[b], bounds[b + 1]), slice(first, min(first + size, n_users))
        if part.start == part.stop:
            continue
        pu = model.user_factors[users]
        table = (pu @ model.item_factors.T).add_(model.user_bias[users, None]).add_(model.item_bias[None, :]).add_(model.mu)
        cell = (rows.u[part] - first) * n_items + rows.i[part]
        chunk_loss, g = _row_terms(table.view(-1)[cell] + rows.x[part] @ model.weights, rows, part, grads, total)
        loss += chunk_loss
        cell_grad = torch.zeros(table.numel()).index_add_(0, cell, g).view(table.shape)
        grads["user_bias"][users] += cell_grad.sum(1)
        grads["item_bias"] += cell_grad.sum(0)
        grads["user_factors"][users] += cell_grad @ model.item_factors
        grads["item_factors"] += cell_grad.T @ pu
    return loss


def train(model: BiasedMF, rows: Rows, l2: float, l2_bias: float, steps: int, lr: float,
          optimizer: torch.optim.Adam | None = None, watch: Watch | None = None) -> tuple[int, torch.optim.Adam]:
    """Full-batch Adam on the objective of :func:`gradient` for at most ``steps`` steps, stopping sooner once the
    last ``WINDOW`` steps lowered its best value by at most ``TOLERANCE`` (relative), or, with ``watch`` (validation
    rows scored every ``EVERY`` steps), once their log-loss stopped moving (its last ``VALID_WINDOW`` + 1 scores
    within ``VALID_TOLERANCE``, relative, of each other). ``optimizer`` carries Adam's moments over from the fit this
    one starts from (its window is then ``WARM_WINDOW``, and it also stops once its last ``PATIENCE`` scores were all
    above ``watch.best``). Returns (steps taken, the optimizer)."""
    window = WINDOW if optimizer is None else WARM_WINDOW
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history: list[float] = []
    scores: list[float] = []
    for step in range(1, steps + 1):
        history.append(gradient(model, rows, l2, l2_bias))
        opt.step()
        if len(history) > window and min(history[:-window]) - min(history[-window:]) <= TOLERANCE * abs(history[-1]):
            return step, opt
        if watch is not None and step % EVERY == 0:
            scores.append(mean_log_loss(model, watch.rows))
            recent = scores[-VALID_WINDOW - 1:]
            settled = len(scores) > VALID_WINDOW and max(recent) - min(recent) <= VALID_TOLERANCE * scores[-1]
            if settled or (optimizer is not None and len(scores) >= PATIENCE and min(scores[-PATIENCE:]) > watch.best):
                return step, opt
    return steps, opt
