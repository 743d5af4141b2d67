"""SASRec as a fidelity baseline: next-engaged-item scores turned into engagement probabilities.

The fidelity suite (``recoworld.fidelity``) scores baselines as ``(user codes, catalog rows) -> probability``
on one time split (:mod:`recoworld.fidelity.baselines`); this one plugs in by name. Here:

* training sequences: each user's engaged training items in time order, the validation share of the
  training period (``prepared.valid``) left out; early stopping on NDCG@10 of each user's first
  engaged validation item;
* probabilities: the log-softmax of SASRec's next-item scores over the catalog (from each user's
  engaged history before the validation rows) mapped by a logistic calibration ``σ(a·s + b)`` fitted on
  the validation rows' labels (Platt scaling on rows the network never trained on);
* scoring: histories are the whole training period's engaged items; no held-out label enters.

    from recoworld.fidelity.baselines import use_baseline
    use_baseline("sasrec")       # then the fidelity suite scores "sasrec" under every protocol
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from recoworld.agents.sasrec import SASRecConfig, fit_sasrec
from recoworld.users.calibration.mf import platt

# light: one thread, a few epochs, early stopping (the fidelity benchmark stays within minutes)
LIGHT = SASRecConfig(max_len=50, hidden=64, blocks=2, heads=2, inner=128, dropout=0.2, epochs=40, batch_size=128,
                     lr=1e-3, patience=4, eval_every=2, threads=1)


def engaged_sequences(users: np.ndarray, rows: np.ndarray, keep: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Per user code: the catalog rows of the kept interactions, in the frame's (time) order."""
    order = np.argsort(users[keep], kind="stable")
    u, r = users[keep][order], rows[keep][order]
    cuts = np.searchsorted(u, np.arange(n_users + 1))
    return [r[cuts[k]:cuts[k + 1]] for k in range(n_users)]


def log_softmax(scores: np.ndarray) -> np.ndarray:
    top = scores.max(1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(1, keepdims=True))


def sasrec_baseline(config: SASRecConfig = LIGHT) -> Callable[[object], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """A baseline factory for :func:`recoworld.fidelity.baselines.register_baseline` (the ``sasrec`` plug-in)."""

    def factory(prep) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        n_users, n_items = len(prep.user_ids), len(prep.catalog)
        engaged = prep.train & (prep.y > 0)
        fit_rows = engaged & ~prep.valid
        history = engaged_sequences(prep.users, prep.rows, fit_rows, n_users)
        later = engaged_sequences(prep.users, prep.rows, engaged & prep.valid, n_users)
        has = [k for k in range(n_users) if len(history[k]) and len(later[k])]
        valid = ([history[k] for k in has], [int(later[k][0]) for k in has]) if has else None
        fitted = fit_sasrec([h for h in history if len(h) >= 2], n_items, config, valid=valid)
        vrows = prep.train & prep.valid

        def log_prob(histories: list[np.ndarray]) -> np.ndarray:  # an empty history: log popularity share
            scores = fitted.score(histories)
            empty = np.array([len(h) == 0 for h in histories], dtype=bool)
            scores[empty] = np.log(fitted.popularity + 1.0)
            return log_softmax(scores)

        before = log_prob(history)
        a, b = platt(before[prep.users[vrows], prep.rows[vrows]], prep.y[vrows])
        prob = 1 / (1 + np.exp(-(a * log_prob(engaged_sequences(prep.users, prep.rows, engaged, n_users)) + b)))

        def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
            return prob[np.asarray(users), np.asarray(items)]

        return score

    return factory
