"""Selection: which items people pick to interact with at all, fitted beside liking (a two-stage fit).

A rating log only holds items users chose to rate, so the click model (:mod:`.fit`) learns *liking
given selection*. Shown items they did not choose, people mostly pass, and the items they choose are
popular ones, to their taste, as conformist as they are. The selection model is a logistic MF of
"rated" against items sampled from the catalog that the user never touched in training
(``selection_negatives`` per rated item; sampled-negative logistic MF, as implicit-feedback
recommenders are trained):

    s_ui = mu' + b'_u + b'_i + p'_u·q'_i + w'_c·conformity_u·pop_i + w'_p·pop_i

with L2 (and, unless given, factors; the calibration passes the liking fit's factor count) tuned on
the validation rows of the training period, the liking fit's rule. It uses which items were rated in
training, never a label and never a held-out item.

Its fits keep the cold rule at Adam's step size 0.05 (``STEP_SIZE``, capped at ``epochs`` steps) whatever
``warm_start`` and ``step_size`` say: a selection fit overfits the sampled negatives as it converges, and
the step cap stops it near its best validation loss. Measured on ML-100K (factors 32, L2 0.03): validation
log-loss 0.481 cold at 0.05, against 0.488 cold at 0.1, 0.491 warm-started at 0.1 and 0.491 cold at 0.05
run to 1,000 steps; the kernel pick's F1 at 1:9 follows (0.370 against 0.374-0.376).

The two stages combine as a product of experts: a shown item is picked (selected *and* liked) with
logit ``l_ui + s_ui`` (odds of liking times odds of selection). That sum is again a biased logistic MF
with the kernel's terms (factors side by side, biases and weights added), so it maps exactly onto
the kernel through :func:`.fit.kernel_space`; the calibrated world and its runs use it, and the
fidelity suite's 1:m and choice protocols (items shown that the user did not choose) see it. The
engagement protocol (held-out *rated* items) scores liking alone, selection being given there.
"""

from __future__ import annotations

import numpy as np

from recoworld.users.calibration.mf import LogisticMF, tune_logistic_mf

STEP_SIZE = 0.05  # Adam's step size of the selection stage's fits (cold, capped: see the module's docstring)


def sample_unrated(users: np.ndarray, rows: np.ndarray, n_items: int, per_row: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user codes, catalog rows, source pair) of ``per_row`` uniform catalog items per (user, row) pair,
    drawn again while a draw is an item the user interacted with among ``rows`` (20 tries, then dropped)."""
    touched = np.unique(users.astype(np.int64) * n_items + rows)  # (user, item) pairs as one sorted key
    u = np.repeat(users, per_row)
    items = rng.integers(0, n_items, len(u))
    for _ in range(20):
        bad = np.isin(u.astype(np.int64) * n_items + items, touched, assume_unique=False)
        if not bad.any():
            break
        items[bad] = rng.integers(0, n_items, int(bad.sum()))
    keep = ~bad
    return u[keep], items[keep], np.repeat(np.arange(len(users)), per_row)[keep]


def selection_features(conformity: np.ndarray, popularity: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(n, 2): conformity_u · pop_i and pop_i (the kernel's popularity terms)."""
    pop = popularity[items]
    return np.column_stack([conformity[users] * pop, pop])


def fit_selection(prep, factors: tuple[int, ...] | None = None) -> tuple[LogisticMF, dict[str, float]]:
    """Tune L2 (and factors over ``factors``, by default the config's grid) on the validation rows of the
    training period by the liking fit's rule (:func:`.mf.tune_logistic_mf`), then fit the selection model on
    ``prep``'s training rows (a :class:`.fit.Prepared`); returns the model and the choice."""
    c, t = prep.config, prep.train
    rng = np.random.default_rng(c.seed + 11)
    users, rows = prep.users[t], prep.rows[t]
    neg_u, neg_i, source = sample_unrated(users, rows, len(prep.catalog), c.selection_negatives, rng)
    valid_pos = prep.valid[t]
    valid_neg = valid_pos[source]  # a negative belongs to the split of the rated row it was drawn for
    # rows by user let large tables be built per block of users (bounded memory on large logs); the order changes the
    # sums' last bits, so a calibration with warm_start off (a pinned task world) keeps the order it always had
    order = np.argsort(np.concatenate([users, neg_u]), kind="stable") if c.warm_start else slice(None)
    u = np.concatenate([users, neg_u])[order]
    i = np.concatenate([rows, neg_i])[order]
    y = np.concatenate([np.ones(len(users)), np.zeros(len(neg_u))])[order]
    valid = np.concatenate([valid_pos, valid_neg])[order]
    del neg_u, neg_i, source, valid_neg
    conformity = prep.traits["conformity"].to_numpy()
    x = selection_features(conformity, prep.popularity, u, i)
    return tune_logistic_mf(u, i, y, valid, len(prep.user_ids), len(prep.catalog), x, factors or tuple(c.factors), tuple(c.l2),
                            epochs=c.epochs, seed=c.seed, name="selection stage", warm_start=False, lr=STEP_SIZE)


def combine(liking: LogisticMF, selection: LogisticMF) -> LogisticMF:
    """The product of experts as one logistic MF over the liking model's side features: logit = liking's +
    selection's (factors side by side; the selection's two popularity weights added to liking's first two)."""
    w = liking.weights.copy()
    w[: len(selection.weights)] += selection.weights
    return LogisticMF(liking.mu + selection.mu, liking.user_bias + selection.user_bias, liking.item_bias + selection.item_bias,
                      np.column_stack([liking.user_factors, selection.user_factors]),
                      np.column_stack([liking.item_factors, selection.item_factors]), w)
