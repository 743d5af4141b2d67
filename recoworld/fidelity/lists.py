"""The lists the 1:m and choice protocols show: held-out liked items mixed with items the user never interacted
with, and the calibrated users' review of them through the kernel."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recoworld.users.calibration.fit import Prepared
from recoworld.users.calibration.io import Calibration
from recoworld.users.calibration.replay import replay_scenario, serve_lists


def mixed_lists(prep: Prepared, ratio: int, rng: np.random.Generator, max_per_user: int | None) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Per user: held-out liked rows mixed with ``ratio`` times as many never-interacted rows, shuffled."""
    test = ~prep.train & (prep.y > 0)
    seen_any = np.flatnonzero(np.bincount(prep.rows[prep.train], minlength=len(prep.catalog)) > 0)
    touched = pd.Series(prep.rows).groupby(prep.users).apply(lambda r: set(r.tolist()))
    users, lists, labels = [], [], []
    held = np.flatnonzero(test)
    held = held[np.argsort(prep.users[held], kind="stable")]  # each user's held-out liked rows, in order (one pass, not one per user)
    codes, starts = np.unique(prep.users[held], return_index=True)
    for code, part in zip(codes, np.split(held, starts[1:])):
        pos = prep.rows[part]
        if max_per_user:
            pos = pos[:max_per_user]
        pool = np.setdiff1d(seen_any, np.fromiter(touched[code], dtype=np.int64))
        neg = rng.choice(pool, size=min(ratio * len(pos), len(pool)), replace=False)
        items = np.concatenate([pos, neg])
        order = rng.permutation(len(items))
        users.append(str(prep.user_ids[code]))
        lists.append(items[order])
        labels.append(np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])[order])
    return users, lists, labels


def flat_lists(prep: Prepared, users: list[str], lists: list[np.ndarray], labels: list[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lists of :func:`mixed_lists` as flat arrays: (label, list number, user code, catalog row) per item."""
    code_of = {str(u): k for k, u in enumerate(prep.user_ids)}
    groups = np.concatenate([np.full(len(x), k) for k, x in enumerate(lists)])
    return np.concatenate(labels), groups, np.array([code_of[u] for u in users])[groups], np.concatenate(lists)


def kernel_review(prep: Prepared, calibration: Calibration, backend: str, language_model, users: list[str],
                  lists: list[np.ndarray], slate: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(clicks, kernel utilities) per list: each user of the calibrated world reviews their list in slates of
    ``slate`` through ``backend``, with leaving switched off (the protocols measure preference, not patience)."""
    model = {**calibration.result.user_model, "hazard_bias": -30.0}
    scenario = replay_scenario(model, backend, prep.config.model_copy(update={"replay_slate_size": slate}))
    return serve_lists(calibration, prep.catalog, users, lists, scenario, language_model, seed)
