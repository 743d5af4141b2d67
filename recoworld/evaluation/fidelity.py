"""The fidelity suite: calibrated users and honest baselines scored against real held-out behaviour.

Every model sees the same time split (the latest ``holdout`` share of each user's interactions held
out) and is fitted on the training part only. Protocols, so that numbers compare with the literature:

* **engagement**: AUC and log-loss of the engagement label on held-out rated items;
* **preference discrimination 1:m** (Agent4Rec: Zhang et al., "On Generative Agents in Recommendation",
  SIGIR 2024, user-taste alignment; SimUSER: Bougie & Watanabe, 2025, the same test at 1:1, 1:3, 1:9):
  each user's held-out liked items are mixed with m times as many items the user never interacted
  with, shuffled and shown as slates; the user picks; accuracy, precision, recall and F1 of the picks
  against "held-out liked". Negatives are drawn from items someone interacted with in training (a
  preference test, not a cold-start test). Simulated users pick with the kernel (in the calibrated
  world: liking and the selection stage, ``recoworld.users.calibration.selection``) (leaving is switched
  off: the protocol measures preference, not patience); baselines pick by a Bernoulli draw of their
  predicted probability (a user model that clicks as it predicts), from the same seed, and, since F1
  depends on how often a model picks, also by a threshold and by a top share of each list, each tuned
  per ratio on validation lists from the training period (:mod:`.pick_rules`); the calibrated users get
  the same two rules on the kernel's utility of each item they review (tuned on the calibrated world
  refitted on the earlier training rows); each liking baseline is also scored combined with the
  selection stage (``mf+selection``), and "pick every item" is the reference (F1 2/(2 + m));
* **choice from an exposure list** (Mirroring Users / UserMirrorer: one item chosen among N
  candidates): a held-out liked item among N − 1 items the user never interacted with; the model's
  choice is its highest-scoring item (the kernel's utility for simulated users; an LLM user's first
  click); accuracy against chance 1/N;
* **behaviour**: JSD of session length, inter-visit gap and sessions per user between the training
  period and the calibrated users' simulated lives (the dynamics fit), and of the held-out replay's
  topic mix;
* **held-out period**: a calibrated run's held-out-period aggregates (engagement rate, sessions per
  user, session length) against the real held-out period's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.progress import stage
from recoworld.users.calibration.data import sessions_table
from recoworld.users.calibration.fit import FittedModels, Prepared, calibrate, fit_models
from recoworld.users.calibration.io import Calibration, CalibrationConfig, Fidelity
from recoworld.users.calibration.replay import replay, replay_scenario, serve_lists
from recoworld.evaluation.pick_rules import SIMULATED, PickRule, baseline_pickers, top_share_picks, tune_pick_rules
from recoworld.stats import bootstrap_groups

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
    model_config = ConfigDict(extra="forbid")

    accuracy: float
    interval: list[float]
    chance: float
    lists: int


class FidelityReport(BaseModel):
    """Every protocol's scores for every model on one data set and split."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    engagement: Fidelity
    discrimination: dict[str, dict[str, PickScore]] = Field(description="'1:m' -> model -> picks against held-out likes.")
    pick_rules: dict[str, dict[str, PickRule]] = Field(default_factory=dict, description="'1:m' -> model -> its pick rules "
                                                       "tuned on validation lists from the training period.")
    choice: dict[str, ChoiceScore] = Field(description="model -> choice accuracy from an exposure list.")
    behaviour: dict[str, dict[str, float]] = Field(description="source -> JSD per behaviour statistic.")
    held_out_period: dict[str, dict[str, float]] = Field(description="real / simulated aggregates of the held-out period.")


def pick_score(picked: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int) -> PickScore:
    def f1(rows: np.ndarray) -> float:
        tp = float((picked[rows] & label[rows]).sum())
        return 2 * tp / max(float(picked[rows].sum() + label[rows].sum()), 1.0)

    tp = int((picked & label).sum())
    return PickScore(accuracy=float((picked == label).mean()), precision=tp / max(int(picked.sum()), 1),
                     recall=tp / max(int(label.sum()), 1), f1=f1(np.arange(len(label))),
                     f1_interval=list(bootstrap_groups(f1, groups, seed=seed)), items=int(len(label)))


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


def tuned_picks(name: str, score: np.ndarray, rule: PickRule | None, label: np.ndarray, groups: np.ndarray,
                seed: int) -> dict[str, PickScore]:
    """``name``'s picks by its tuned threshold and by its tuned top share of each list (none without a rule)."""
    if rule is None:
        return {}
    return {f"{name} (tuned threshold)": pick_score(score >= rule.threshold, label, groups, seed),
            f"{name} (tuned top share)": pick_score(top_share_picks(score, groups, rule.share), label, groups, seed)}


def kernel_review(prep: Prepared, calibration: Calibration, backend: str, language_model, users: list[str],
                  lists: list[np.ndarray], slate: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(clicks, kernel utilities) per list: each user of the calibrated world reviews their list in slates of
    ``slate`` through ``backend``, with leaving switched off (the protocols measure preference, not patience)."""
    model = {**calibration.result.user_model, "hazard_bias": -30.0}
    scenario = replay_scenario(model, backend, prep.config.model_copy(update={"replay_slate_size": slate}))
    return serve_lists(calibration, prep.catalog, users, lists, scenario, language_model, seed)


def discrimination(prep: Prepared, calibration: Calibration, models: FittedModels, backends: dict[str, object],
                   ratios: Sequence[int] = RATIOS, max_per_user: int | None = 10, seed: int = 0,
                   rules: dict[int, dict[str, PickRule]] | None = None) -> dict[str, dict[str, PickScore]]:
    """Preference discrimination at each 1:m ratio for every backend (name -> language model or None), the
    "pick every item" reference, and every baseline (and baseline+selection): Bernoulli picks of its
    probability, and with ``rules`` (:func:`.pick_rules.tune_pick_rules`) its tuned threshold and top share."""
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
    from recoworld.users.calibration.dynamics import ENV_PARAMS, behaviour, behaviour_jsd, simulate_log

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


def fidelity_suite(dataset: str | Path, items: str | Path | None = None, config: CalibrationConfig | None = None,
                   backends: dict[str, object] | None = None, ratios: Sequence[int] = RATIOS, seed: int = 0) -> tuple[FidelityReport, Calibration]:
    """Calibrate on ``dataset`` and score every user backend (name -> language model, None for parametric)
    and every baseline under every protocol on the same split."""
    from recoworld.users.calibration.fit import load_for_calibration

    config = config or CalibrationConfig()
    catalog_cfg, catalog, interactions = load_for_calibration(dataset, items, seed, config=config)
    with stage("splitting by time, features and traits"):
        prep = Prepared(interactions, catalog, config)
    models = fit_models(prep)
    calibration = calibrate(interactions, catalog, config, dataset=Path(dataset).name, prepared=prep, models=models)
    calibration.result.catalog, calibration.result.seed = catalog_cfg, seed
    backends = backends if backends is not None else {"parametric": None}
    fit = calibration.result
    behaviour = {"training period (dynamics fit)": dict(fit.dynamics.jsd) if fit.dynamics else {}}
    frame = prep.frame.assign(y=prep.y)
    for name, lm in backends.items():
        if name != "parametric":
            with stage(f"held-out replay ({name} users)"):
                fit.replays.append(replay(frame, catalog, calibration, replay_scenario(fit.user_model, name, config), lm, seed=config.seed))
    for rep in fit.replays:
        behaviour[f"held-out replay ({rep.backend})"] = dict(rep.jsd)
    with stage("held-out period: a calibrated run"):
        aggregates, jsd = held_out_period(prep, calibration, seed)
    behaviour["held-out period (calibrated run)"] = jsd
    with stage("pick rules: refits on the earlier training rows, validation lists"):
        rules = tune_pick_rules(prep, models, ratios, max_per_user=10, seed=seed)
    with stage("protocol: preference discrimination 1:m"):
        scores = discrimination(prep, calibration, models, backends, ratios, seed=seed, rules=rules)
    with stage("protocol: choice from an exposure list"):
        choice = choice_accuracy(prep, calibration, models, backends, seed=seed)
    report = FidelityReport(dataset=Path(dataset).name, engagement=fit.fidelity, discrimination=scores,
                            pick_rules={f"1:{m}": r for m, r in rules.items()}, choice=choice, behaviour=behaviour,
                            held_out_period=aggregates)
    fit.suite = report.model_dump(exclude={"engagement"})
    return report, calibration


def format_tables(report: FidelityReport) -> str:
    """The report as Markdown tables."""
    e = report.engagement
    lines = [f"### Engagement on held-out rated items ({e.n_test:,} interactions, {e.users:,} users; engagement rate "
             f"{e.positive_rate_test:.3f} held out, {e.positive_rate_train:.3f} in training)", "",
             "| model | AUC | AUC 95% CI | log-loss | log-loss 95% CI |", "| --- | ---: | ---: | ---: | ---: |"]
    for m, v in e.auc.items():
        a, ll = e.auc_interval.get(m, [np.nan] * 2), e.log_loss_interval.get(m, [np.nan] * 2)
        lines.append(f"| {m} | {v:.3f} | {a[0]:.3f}–{a[1]:.3f} | {e.log_loss[m]:.3f} | {ll[0]:.3f}–{ll[1]:.3f} |")
    lines += ["", "### Preference discrimination 1:m (Agent4Rec / SimUSER)", "",
              "| ratio | model | accuracy | precision | recall | F1 | F1 95% CI |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for ratio, scores in report.discrimination.items():
        for m, s in scores.items():
            lines.append(f"| {ratio} | {m} | {s.accuracy:.3f} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
                         f"{s.f1_interval[0]:.3f}–{s.f1_interval[1]:.3f} |")
    if report.pick_rules:
        lines += ["", "### Pick rules (baselines and the calibrated users' kernel utility), tuned on validation lists from the training period", "",
                  "| ratio | model | threshold | F1 (validation) | top share | F1 (validation) |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for ratio, rules in report.pick_rules.items():
            for m, r in rules.items():
                lines.append(f"| {ratio} | {m} | {r.threshold:.4f} | {r.threshold_f1:.3f} | {r.share:.2f} | {r.share_f1:.3f} |")
    lines += ["", "### Choice from an exposure list (UserMirrorer)", "", "| model | accuracy | 95% CI | chance |", "| --- | ---: | ---: | ---: |"]
    for m, c in report.choice.items():
        lines.append(f"| {m} | {c.accuracy:.3f} | {c.interval[0]:.3f}–{c.interval[1]:.3f} | {c.chance:.3f} |")
    lines += ["", "### Behaviour (Jensen–Shannon divergence, bits)", "", "| comparison | statistic | JSD |", "| --- | --- | ---: |"]
    for src, values in report.behaviour.items():
        for k, v in values.items():
            lines.append(f"| {src} | {k.replace('_', ' ')} | {v:.3f} |")
    lines += ["", "### Held-out period: real vs a calibrated run", "", "| aggregate | real | simulated |", "| --- | ---: | ---: |"]
    for k in report.held_out_period["real"]:
        lines.append(f"| {k.replace('_', ' ')} | {report.held_out_period['real'][k]:.3f} | {report.held_out_period['simulated'][k]:.3f} |")
    return "\n".join(lines)
