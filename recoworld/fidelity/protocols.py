"""The suite's protocols on one split: preference discrimination 1:m (picks scored against held-out likes),
choice from an exposure list, and the held-out period of a calibrated run (see :mod:`recoworld.fidelity.suite`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.fidelity.lists import flat_lists, kernel_review, mixed_lists
from recoworld.fidelity.pick_rules import SIMULATED, PickRule, baseline_pickers, top_share_picks
from recoworld.stats import bootstrap_groups
from recoworld.users.calibration.data import sessions_table
from recoworld.users.calibration.dynamics import ENV_PARAMS, behaviour, behaviour_jsd, simulate_log
from recoworld.users.calibration.fit import FittedModels, Prepared
from recoworld.users.calibration.io import Calibration

RATIOS = (1, 3, 9)
EVERY = "pick every item"


class PickScore(BaseModel):
    """Picks against labels, pooled over users, with a user-bootstrap interval of F1."""

    model_config = ConfigDict(extra="forbid")

    accuracy: float
    precision: float
    recall: float
    f1: float
    f1_interval: list[float] = Field(default_factory=list)
    items: int


class ChoiceScore(BaseModel):
    """How often a model chose the held-out liked item of its list, with a user-bootstrap interval."""

    model_config = ConfigDict(extra="forbid")

    accuracy: float
    interval: list[float]
    chance: float
    lists: int


def pick_score(picked: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int) -> PickScore:
    """Accuracy, precision, recall and F1 of ``picked`` against ``label``; F1's interval resamples the lists ``groups``."""
    def f1(rows: np.ndarray) -> float:
        tp = float((picked[rows] & label[rows]).sum())
        return 2 * tp / max(float(picked[rows].sum() + label[rows].sum()), 1.0)

    tp = int((picked & label).sum())
    return PickScore(accuracy=float((picked == label).mean()), precision=tp / max(int(picked.sum()), 1),
                     recall=tp / max(int(label.sum()), 1), f1=f1(np.arange(len(label))),
                     f1_interval=list(bootstrap_groups(f1, groups, seed=seed)), items=int(len(label)))


def tuned_picks(name: str, score: np.ndarray, rule: PickRule | None, label: np.ndarray, groups: np.ndarray,
                seed: int) -> dict[str, PickScore]:
    """``name``'s picks by its tuned threshold and by its tuned top share of each list (none without a rule)."""
    if rule is None:
        return {}
    return {f"{name} (tuned threshold)": pick_score(score >= rule.threshold, label, groups, seed),
            f"{name} (tuned top share)": pick_score(top_share_picks(score, groups, rule.share), label, groups, seed)}


def discrimination(prep: Prepared, calibration: Calibration, models: FittedModels, backends: dict[str, object],
                   ratios: Sequence[int] = RATIOS, max_per_user: int | None = 10, seed: int = 0,
                   rules: dict[int, dict[str, PickRule]] | None = None) -> dict[str, dict[str, PickScore]]:
    """Preference discrimination at each 1:m ratio for every backend (name -> language model or None), the
    "pick every item" reference, and every baseline (and baseline+selection): Bernoulli picks of its
    probability, and with ``rules`` (:func:`recoworld.fidelity.pick_rules.tune_pick_rules`) its tuned threshold and top share."""
    out: dict[str, dict[str, PickScore]] = {}
    pickers = baseline_pickers(prep, models)
    for m in ratios:
        users, lists, labels = mixed_lists(prep, m, np.random.default_rng(seed + m), max_per_user)
        label, groups, codes, rows = flat_lists(prep, users, lists, labels)
        tuned = (rules or {}).get(m, {})
        scores: dict[str, PickScore] = {}
        for name, lm in backends.items():
            clicks, utility = kernel_review(prep, calibration, name, lm, users, lists, 5, seed)
            scores[name] = pick_score(np.concatenate(clicks), label, groups, seed)
            if name != "llm":  # a parametric or hybrid user's utility is the kernel's
                scores.update(tuned_picks(name, np.concatenate(utility), tuned.get(SIMULATED), label, groups, seed))
        scores[EVERY] = pick_score(np.ones(len(label), dtype=bool), label, groups, seed)
        draw = np.random.default_rng(seed + 100 + m).random(len(rows))
        for name, score in pickers.items():
            s = score(codes, rows)
            scores[name] = pick_score(draw < s, label, groups, seed)
            scores.update(tuned_picks(name, s, tuned.get(name), label, groups, seed))
        out[f"1:{m}"] = scores
    return out


def choice_accuracy(prep: Prepared, calibration: Calibration, models: FittedModels, backends: dict[str, object], n: int = 10,
                    seed: int = 0) -> dict[str, ChoiceScore]:
    """One held-out liked item per user among ``n`` − 1 never-interacted items: how often each model chooses it."""
    rng = np.random.default_rng(seed + 7)
    users, lists, labels = mixed_lists(prep, n - 1, rng, max_per_user=1)
    target = np.array([int(np.flatnonzero(lab)[0]) for lab in labels])
    code_of = {str(u): k for k, u in enumerate(prep.user_ids)}
    codes = np.array([code_of[u] for u in users])
    groups = np.arange(len(users))
    out: dict[str, ChoiceScore] = {}

    def score(chosen: np.ndarray) -> ChoiceScore:
        hit = (chosen == target).astype(float)
        return ChoiceScore(accuracy=float(hit.mean()), interval=list(bootstrap_groups(lambda r: float(hit[r].mean()), groups, seed=seed)),
                           chance=1.0 / n, lists=len(users))

    for name, lm in backends.items():
        clicks, utility = kernel_review(prep, calibration, name, lm, users, lists, n, seed)
        if name == "llm":  # an LLM user's choice: its first click (none: no choice)
            chosen = np.array([int(np.flatnonzero(c)[0]) if c.any() else -1 for c in clicks])
        else:
            chosen = np.array([int(np.argmax(u)) for u in utility])
        out[name] = score(chosen)
    for name, scorer in baseline_pickers(prep, models).items():
        out[name] = score(np.array([int(np.argmax(scorer(np.full(len(x), c), x))) for c, x in zip(codes, lists)]))
    return out


def held_out_period(prep: Prepared, calibration: Calibration, seed: int = 0) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Aggregates of the real held-out period and of the calibrated users' simulated lives' held-out part,
    and the JSD of their session length and sessions per user."""
    fit = calibration.result
    model = {k: v for k, v in fit.user_model.items() if k not in ENV_PARAMS}
    span = prep.frame.groupby("user_id")["timestamp"].agg(lambda t: (t.max() - t.min()) / 86_400)
    log = simulate_log(calibration.items.apply(prep.catalog), calibration.profiles, model, {"churn_window_days": 14.0, **fit.env},
                       prep.exposure(), int(span.max()) + 2, seed)
    rank = log.groupby("user_id", sort=False).cumcount()
    size = log.groupby("user_id", sort=False)["item_id"].transform("size")
    sim_test = log[(rank >= np.ceil(size * (1 - prep.config.holdout))).to_numpy()]
    real_test = prep.frame[~prep.train]
    real_b, sim_b = behaviour(sessions_table(real_test)), behaviour(sessions_table(sim_test))

    def aggregates(frame: pd.DataFrame, engaged: np.ndarray, b: dict[str, np.ndarray]) -> dict[str, float]:
        return {"engagement_rate": float(engaged.mean()), "sessions_per_user": float(b["activity"].mean()),
                "session_length": float(b["session_length"].mean()), "users": float(frame["user_id"].nunique())}

    jsd = behaviour_jsd({k: real_b[k] for k in ("session_length", "activity")}, sim_b)
    return ({"real": aggregates(real_test, prep.y[~prep.train], real_b),
             "simulated": aggregates(sim_test, sim_test["click"].to_numpy(), sim_b)}, jsd)


