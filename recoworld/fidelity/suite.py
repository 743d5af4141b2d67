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
  per ratio on validation lists from the training period (:mod:`recoworld.fidelity.pick_rules`); the calibrated users get
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
from pydantic import BaseModel, ConfigDict, Field

from recoworld.fidelity.pick_rules import PickRule, tune_pick_rules
from recoworld.fidelity.protocols import RATIOS, ChoiceScore, PickScore, choice_accuracy, discrimination, held_out_period
from recoworld.progress import stage
from recoworld.users.calibration.fit import Prepared, calibrate, fit_models, load_for_calibration
from recoworld.users.calibration.io import Calibration, CalibrationConfig, Fidelity
from recoworld.users.calibration.replay import replay, replay_scenario


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


def fidelity_suite(dataset: str | Path, items: str | Path | None = None, config: CalibrationConfig | None = None,
                   backends: dict[str, object] | None = None, ratios: Sequence[int] = RATIOS, seed: int = 0) -> tuple[FidelityReport, Calibration]:
    """Calibrate on ``dataset`` and score every user backend (name -> language model, None for parametric)
    and every baseline under every protocol on the same split."""
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
