"""The logistic-MF solver: embedding tables trained by torch's Adam on shuffled mini-batches.

Imported lazily by :mod:`.mf` (torch comes with the ``rl`` and ``align`` extras). One fit runs on one
thread with torch's deterministic algorithms and its own seeded generators (initial factors, batch
order), so a seed gives the same parameters on every run; the global RNG is never touched.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

BATCH = 8192  # rows per Adam step at most; smaller logs take smaller batches,
STEPS = 64  # so that every epoch makes at least this many steps
EVAL_CHUNK = 1 << 20  # rows scored at once when computing a validation loss
MIN_IMPROVEMENT = 1e-6  # an epoch improves the validation log-loss when it lowers it by more than this


class BiasedMF(nn.Module):
    """``mu + b_u + b_i + p_u·q_i + x·w`` as embedding tables and a linear term."""

    def __init__(self, n_users: int, n_items: int, factors: int, features: int, generator: torch.Generator) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1))
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.user_factors = nn.Parameter(torch.randn(n_users, factors, generator=generator) * 0.1)
        self.item_factors = nn.Parameter(torch.randn(n_items, factors, generator=generator) * 0.1)
        self.weights = nn.Parameter(torch.zeros(features))

    def forward(self, u: torch.Tensor, i: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logit, squared norm of the factors each row touches, squared biases it touches)."""
        embed = nn.functional.embedding  # a gather whose backward is a fast, deterministic scatter-add
        pu, qi = embed(u, self.user_factors), embed(i, self.item_factors)
        bu, bi = self.user_bias[u], self.item_bias[i]
        logit = self.mu + bu + bi + (pu * qi).sum(1) + x @ self.weights
        return logit, (pu * pu).sum(1) + (qi * qi).sum(1), bu * bu + bi * bi


@dataclass
class Rows:
    """Training or validation rows as tensors (features (n, f), weights (n,))."""

    u: torch.Tensor
    i: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    w: torch.Tensor

    @classmethod
    def of(cls, users: np.ndarray, items: np.ndarray, y: np.ndarray, x: np.ndarray, w: np.ndarray | None) -> "Rows":
        return cls(torch.from_numpy(np.ascontiguousarray(users, dtype=np.int64)), torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64)),
                   torch.from_numpy(np.asarray(y, dtype=np.float32)), torch.from_numpy(np.asarray(x, dtype=np.float32)),
                   torch.ones(len(y)) if w is None else torch.from_numpy(np.asarray(w, dtype=np.float32)))


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
        for s in range(0, len(rows.y), EVAL_CHUNK):
            part = slice(s, s + EVAL_CHUNK)
            logit, _, _ = model(rows.u[part], rows.i[part], rows.x[part])
            ll = nn.functional.binary_cross_entropy_with_logits(logit, rows.y[part], weight=rows.w[part], reduction="sum")
            total += float(ll)
    return total / max(float(rows.w.sum()), 1e-12)


def train(model: BiasedMF, rows: Rows, l2: float, l2_bias: float, epochs: int, lr: float, seed: int,
          valid: Rows | None = None, patience: int = 1) -> tuple[int, float]:
    """Adam on shuffled batches of ``rows``: the weighted mean log-loss + ``l2``/2 · squared factor norms (and
    ``l2_bias``/2 · squared biases) of the rows a batch touches. With ``valid``, after each epoch the validation
    loss is measured; training stops ``patience`` epochs after the best one and ``model`` is left at the best
    epoch. Returns (epochs of the kept model, its validation loss; nan without ``valid``)."""
    order = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(rows.y)
    batch = min(BATCH, max(n // STEPS, 64))
    best, best_epoch, best_state = float("inf"), 0, None
    if valid is not None:
        best, best_state = mean_log_loss(model, valid), {k: v.clone() for k, v in model.state_dict().items()}
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=order)
        for s in range(0, n, batch):
            b = perm[s:s + batch]
            logit, norms, biases = model(rows.u[b], rows.i[b], rows.x[b])
            w = rows.w[b]
            loss = (nn.functional.binary_cross_entropy_with_logits(logit, rows.y[b], weight=w, reduction="sum") / w.sum()
                    + 0.5 * (l2 * norms + l2_bias * biases).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if valid is None:
            continue
        current = mean_log_loss(model, valid)
        if current < best - MIN_IMPROVEMENT:
            best, best_epoch, best_state = current, epoch, {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if valid is None:
        return epochs, float("nan")
    assert best_state is not None
    model.load_state_dict(best_state)
    return best_epoch, best
