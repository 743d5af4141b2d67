"""Pick rules for the 1:m protocol, tuned on the training period only, for baselines and calibrated users alike.

F1 depends on how often a model picks ("pick every item" scores 2/(2 + m) at 1:m), so a baseline
that picks by a Bernoulli draw of its probability is at the mercy of its calibration. Beside that
literature protocol, every baseline gets pick rules tuned per ratio, with no held-out data:

* the training period is split again by the same rule (each user's latest ``config.validation`` share
  of training rows plays the held-out part: exactly the calibration's validation rows);
* every baseline is refitted on the earlier rows (the MF with the setting its tuning chose; popularity
  from those rows; registered baselines through their factory; the selection stage likewise), and so is
  the calibrated world (the simulator's click model with its chosen setting, the selection stage, the
  kernel mapping): the calibrated users' score is the kernel's utility of each item as they review it;
* validation lists are built from the validation rows by the 1:m construction of the test lists;
* on them, per ratio, the F1-maximising **threshold** on the baseline's probability and the
  F1-maximising **top share** of each list (pick the ⌈q·n⌉ highest-scoring of a list of n) are chosen;
  the full-training-period baseline then picks on the test lists with that threshold or share.

``with_selection`` offers each liking baseline combined with the calibrated world's selection stage
(liking logit + selection logit: the simulator's product of experts with a plain liking model), which
isolates what the kernel's own terms add to the pick.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from recoworld.fidelity.baselines import Scorer, baseline_scorers
from recoworld.fidelity.lists import flat_lists, kernel_review, mixed_lists
from recoworld.users.calibration.fit import FittedModels, Prepared, world_calibration
from recoworld.users.calibration.mf import LogisticMF, refit
from recoworld.users.calibration.selection import fit_selection, selection_features

SIMULATED = "parametric"  # the calibrated users' rules: on the kernel's utility (hybrid users decide alike)
SHARES = np.round(np.arange(0.01, 1.0001, 0.01), 2)


class PickRule(BaseModel):
    """One baseline's tuned rules at one ratio, with the F1 each reached on the validation lists."""

    model_config = ConfigDict(extra="forbid")

    threshold: float
    threshold_f1: float
    share: float
    share_f1: float


def best_threshold(score: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """(threshold, F1): picking ``score >= threshold`` maximises F1 against ``label`` (ties picked together;
    the threshold lies halfway between the last score picked and the next)."""
    order = np.argsort(-score, kind="stable")
    s, y = score[order], label[order].astype(float)
    tp = np.cumsum(y)
    picked = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # a cut only after the last of tied scores
    f1 = np.where(last, 2 * tp / (picked + y.sum()), -1.0)
    k = int(np.argmax(f1))
    cut = (s[k] + s[k + 1]) / 2 if k + 1 < len(s) else s[k]  # halfway to the next score down
    return float(cut), float(max(f1[k], 0.0))


def list_rank(score: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank within its list by descending score, 0 first; size of its list) per row; ``groups`` numbers lists."""
    order = np.lexsort((-score, groups))
    g = groups[order]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    size = np.diff(np.r_[start, len(g)])
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(start, size)
    return rank, np.repeat(size, size)[np.argsort(order)]


def top_share_picks(score: np.ndarray, groups: np.ndarray, share: float) -> np.ndarray:
    """Picks the ⌈share·n⌉ highest-scoring items of every list of n."""
    rank, size = list_rank(score, groups)
    return rank < np.ceil(share * size - 1e-9)


def best_share(score: np.ndarray, label: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """(share, F1): the top share of each list (0.01 steps) that maximises F1 against ``label``; of shares
    that pick the same, the largest (on lists of n it picks ⌈share·n⌉, so small shares tie at one item)."""
    rank, size = list_rank(score, groups)
    f1 = np.array([2 * float(((rank < np.ceil(q * size - 1e-9)) & label).sum())
                   / max(float((rank < np.ceil(q * size - 1e-9)).sum() + label.sum()), 1.0) for q in SHARES])
    k = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[-1])
    return float(SHARES[k]), float(f1[k])


def inner_split(prep: Prepared) -> Prepared:
    """The training period as a data set of its own, its validation rows as the held-out part."""
    train = prep.frame[prep.train].drop(columns=["test", "session", "position"])
    config = prep.config.model_copy(update={"holdout": prep.config.validation, "min_interactions": 2})
    return Prepared(train, prep.catalog, config)


def refit_mf(prep: Prepared, choice: dict[str, float], with_features: bool = False) -> LogisticMF:
    """The logistic MF refitted on ``prep``'s training rows with a chosen setting (factors, L2, recency), with the
    kernel's terms as side features (the simulator's click model) or without (the MF baseline)."""
    t = prep.train
    return refit(prep.users[t], prep.rows[t], prep.y[t], len(prep.user_ids), len(prep.catalog), choice,
                 prep.x[t] if with_features else None, prep.recency[t], prep.config.seed)


def selection_scorer(prep: Prepared, selection: LogisticMF) -> Scorer:
    """(user codes, catalog rows) -> the selection stage's logit, with its popularity features."""
    conformity = prep.traits["conformity"].to_numpy()
    return lambda u, i: selection.logit(u, i, selection_features(conformity, prep.popularity, u, i))


def with_selection(scorers: dict[str, Scorer], select: Scorer,
                   names: Sequence[str] = ("mf", "popularity_rate")) -> dict[str, Scorer]:
    """``name+selection``: σ(logit of the baseline's probability + the selection logit) for each liking baseline."""
    def combined(score: Scorer) -> Scorer:
        def pick(u: np.ndarray, i: np.ndarray) -> np.ndarray:
            p = np.clip(score(u, i), 1e-9, 1 - 1e-9)
            return 1 / (1 + np.exp(-(np.log(p / (1 - p)) + select(u, i))))
        return pick

    return {f"{n}+selection": combined(scorers[n]) for n in names if n in scorers}


def baseline_pickers(prep: Prepared, models: FittedModels) -> dict[str, Scorer]:
    """Every baseline of ``models`` (fitted on ``prep``), plus each liking baseline with the selection stage."""
    pickers = dict(models.scorers)
    if models.selection is not None:
        pickers.update(with_selection(pickers, selection_scorer(prep, models.selection)))
    return pickers


def inner_models(prep: Prepared, models: FittedModels) -> tuple[Prepared, FittedModels]:
    """(the inner split, ``models`` refitted on its earlier rows with the settings their tuning chose: the
    simulator's click model, the selection stage and every baseline of ``models.scorers``)."""
    inner = inner_split(prep)
    mf = refit_mf(inner, models.mf_choice)
    liking = refit_mf(inner, models.choice, with_features=True)
    scorers = baseline_scorers(inner, mf, registered=models.scorers)
    selection = None
    if models.selection is not None and models.selection_choice is not None:
        sc = models.selection_choice
        inner.config = inner.config.model_copy(update={"l2": [sc["l2"]]})  # the setting the selection's tuning chose
        selection, _ = fit_selection(inner, (int(sc["factors"]),))
    predictions = {"simulator": liking.predict(inner.users, inner.rows, inner.x), "mf": mf.predict(inner.users, inner.rows)}
    return inner, FittedModels(liking, models.choice, mf, models.mf_choice, predictions, scorers, selection, models.selection_choice)


def tune_pick_rules(prep: Prepared, models: FittedModels, ratios: Sequence[int], max_per_user: int | None,
                    seed: int) -> dict[int, dict[str, PickRule]]:
    """Per ratio and model: the threshold and top share maximising F1 on validation lists from the training
    period (no held-out row, label or item is read). Every baseline, and the calibrated users (``SIMULATED``):
    the calibrated world refitted on the earlier rows, its threshold and share on the kernel's utility of
    each item as the simulated user reviews the list."""
    inner, refitted = inner_models(prep, models)
    world = world_calibration(inner, refitted)
    pickers = baseline_pickers(inner, refitted)
    out: dict[int, dict[str, PickRule]] = {}
    for m in ratios:
        users, lists, labels = mixed_lists(inner, m, np.random.default_rng(seed + 500 + m), max_per_user)
        label, groups, codes, rows = flat_lists(inner, users, lists, labels)
        _, utility = kernel_review(inner, world, SIMULATED, None, users, lists, 5, seed)
        scores = {SIMULATED: np.concatenate(utility), **{name: score(codes, rows) for name, score in pickers.items()}}
        rules = {}
        for name, s in scores.items():
            (t, tf), (q, qf) = best_threshold(s, label), best_share(s, label, groups)
            rules[name] = PickRule(threshold=t, threshold_f1=tf, share=q, share_f1=qf)
        out[m] = rules
    return out
