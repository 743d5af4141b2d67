"""The report's sections, each filled by its own function, and its plots."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from pathlib import Path

import pandas as pd

from recoworld.evaluation import plots
from recoworld.evaluation.data import RunLogs
from recoworld.evaluation.report.answer import GLOSSARY, INCUMBENTS, best_arms, glossary_rows, tradeoff_plot
from recoworld.evaluation.report.compute import Results, calibrations
from recoworld.evaluation.report.format import fmt, kind_of, metric_table, title_of
from recoworld.evaluation.report.model import (
    COMPARE,
    CREATORS,
    DIVERSITY,
    ENGAGEMENT,
    HEADLINE,
    INSTRUCTIONS,
    LEVEL,
    LLM,
    N_BOOT,
    NO_OPE,
    QUADRANTS,
    RETENTION,
    SECTIONS,
    Bullets,
    Plot,
    Section,
    Table,
)


# ------------------------------------------------------------------ the sections
def _plot(name: str, path: Path, alt: str, caption: str) -> Plot:
    return Plot(name, alt, caption, "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii"))


def _comparison_blocks(comparisons: pd.DataFrame, base: str) -> list[Table | Bullets]:
    """Per compared metric: a table of each arm against the baseline (the statements would repeat it)."""
    blocks: list[Table | Bullets] = []
    for metric, g in comparisons.groupby("metric", sort=False):
        kind = kind_of(str(metric))
        rows = [[str(r["arm"]), fmt(r["value"], kind), fmt(r["baseline_value"], kind), fmt(r["diff"], kind, signed=True),
                 f"{fmt(r['ci_low'], kind, signed=True)} to {fmt(r['ci_high'], kind, signed=True)}",
                 "yes" if bool(r["significant"]) else "no"] for r in g.to_dict("records")]
        definition = GLOSSARY.get(str(metric))
        blocks.append(Table(f"{title_of(str(metric))} per user: each arm against {base}"
                            + (f" ({definition})" if definition else ""),
                            ["arm", "mean", f"{base}", "difference", f"{LEVEL:.0%} CI", "clear difference"],
                            rows, [False, True, True, True, True, False]))
    return blocks


def _summary_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    """The answer first: the best arm per headline metric and the trade-off, then the runs, the headline table
    with one definition per metric."""
    several = len(runs) > 1
    sec.bullets = best_arms(res.users, res.comparisons, base) or ["only one arm was run: there is nothing to compare"]
    share = _fallback_share(runs)
    if share is not None:
        sec.paragraphs.append(f"LLM users: {share:.1%} of their decisions fell back to the parametric model"
                              + (" — these results are mostly not LLM behaviour." if share > 0.2 else "."))
    sec.paragraphs.append(f"Baseline arm: {base}{_baseline_reason(runs, base)}. "
                          f"{'Arms of several runs are compared unpaired. ' if several else ''}Best arm per headline metric:")
    if "tradeoff" in figs:
        sec.blocks.append(_plot("tradeoff", figs["tradeoff"], "Days active per user against CTR, one point per arm",
                                "Retention against CTR: one point per arm, 95% intervals over users."))
    sec.blocks.append(metric_table(res.summary, HEADLINE, "Headline metrics per arm (a dash marks a value that cannot be "
                                   "measured, for instance retention beyond the horizon)"))
    sec.blocks.append(Table("What the headline metrics mean", ["metric", "definition"], glossary_rows(HEADLINE), [False, False]))
    rows = []
    for name, logs in zip(res.run_names, runs):
        scn, m = logs.scenario, logs.manifest
        rows.append([name, scn.name, m.status, f"{m.days_completed} of {m.days_total}", f"{scn.users.n_users:,}",
                     ", ".join(logs.arms), scn.run.assignment, str(scn.env.slate_size), str(scn.creators.count), str(scn.seed)])
    sec.blocks.append(Table("Runs", ["run", "scenario", "status", "days logged", "users", "arms", "assignment", "slate size",
                                     "creators", "seed"], rows, [False, False, False, True, True, False, False, True, True, True]))


def _baseline_reason(runs: Sequence[RunLogs], base: str) -> str:
    if getattr(runs[0].scenario.run, "baseline", None):
        return " (run.baseline)"
    arm = base.rsplit("/", 1)[-1]
    return " (the incumbent; choose another with --baseline or run.baseline)" if arm in INCUMBENTS else \
        " (the first arm: no greedy or popular arm to call the incumbent; choose with --baseline or run.baseline)"


def _fallback_share(runs: Sequence[RunLogs]) -> float | None:
    """Share of LLM user decisions (logged impressions) that fell back, over the runs with LLM users."""
    from recoworld.evaluation.metrics.scan import figures

    llm = [r for r in runs if r.scenario.users.backend != "parametric" and "user_fallback" in r.impressions.columns]
    if not llm:
        return None
    sums = [figures(r).impressions.arm_sums for r in llm]
    rows = sum(float(s.get("rows").sum()) for s in sums)
    return sum(float(s.get("user_fallbacks").sum()) for s in sums) / rows if rows else None


def _comparison_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    several = len(runs) > 1
    if res.comparisons.empty:
        sec.empty = "only one arm was run: there is nothing to compare"
    else:
        paired = not several and runs[0].scenario.run.assignment == "copies"
        sec.paragraphs.append(
            f"Per-user metrics of each arm against {base}: difference of means with a {LEVEL:.0%} bootstrap interval "
            f"({N_BOOT} resamples, {'paired: the arms served the same users' if paired else 'unpaired: the arms served different users'}). "
            "A difference is clear when its interval excludes zero.")
        sec.blocks += _comparison_blocks(res.comparisons, base)


def _retention_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    sec.paragraphs.append("Kaplan–Meier survival: the share of users who have not churned, by days since their first session; "
                          "users who never churned are censored at the end of the run.")
    if "retention" in figs:
        sec.blocks.append(_plot("retention", figs["retention"], "Retention curves per arm", "Retention per arm with 95% bands."))
    sec.blocks.append(metric_table(res.summary, RETENTION, "Return, churn and day-N retention per arm"))
    if not res.quadrants.empty:
        sec.blocks.append(metric_table(res.quadrants, QUADRANTS,
                                       "NDCG against retention: share of each arm's users in each quadrant (split at the pooled medians "
                                       "of per-user NDCG and days active) and the Spearman correlation"))


def _engagement_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    sec.blocks.append(metric_table(res.summary, ENGAGEMENT, "Engagement per arm"))
    if "engagement" in figs:
        sec.blocks.append(_plot("engagement", figs["engagement"], "CTR and watch time per session over days per arm",
                                "CTR and watch minutes per session on each day."))


def _diversity_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    sec.paragraphs.append("ILD: mean pairwise 1 − cosine of item embeddings within a slate. Coverage: distinct items shown over "
                          "the items of the arm's world. Exposure Gini over reviewed impressions (0 = equal). Novelty: mean "
                          "−log2 of the share of users who clicked the item.")
    sec.blocks.append(metric_table(res.summary, DIVERSITY, "Diversity and exposure per arm"))
    if "lorenz" in figs:
        sec.blocks.append(_plot("lorenz", figs["lorenz"], "Lorenz curves of exposure per arm",
                                "Lorenz curves of reviewed impressions; the dashed diagonal is equal exposure."))


def _creators_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    if res.creator_summary.empty:
        sec.empty = "no creators in this run (creators.count is 0): the catalogue stayed fixed, so creator health is not measured"
    else:
        if any(logs.scenario.run.assignment == "split" for logs in runs):
            sec.paragraphs.append("Where arms split the users of one world (assignment: split), they share its creators: "
                                  "the population figures are the world's, repeated for each arm; exposure is the arm's own.")
        sec.blocks.append(metric_table(res.creator_summary, CREATORS, "Creator population per arm's world"))
        if "creators" in figs:
            sec.blocks.append(_plot("creators", figs["creators"], "Active creators over days per arm", "Active creators on each day."))


def _instructions_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    voiced = float(pd.to_numeric(res.users.get("instructions", pd.Series(dtype=float)), errors="coerce").fillna(0).sum()) \
        if not res.users.empty else 0.0
    if voiced == 0:
        sec.empty = "no user voiced an instruction in this run, so there is no compliance to measure"
    else:
        sec.blocks.append(metric_table(res.summary, INSTRUCTIONS, "Instructions and compliance per arm"))
        if "compliance" in figs:
            sec.blocks.append(_plot("compliance", figs["compliance"], "Instruction compliance over days per arm",
                                    "Mean compliance of slates with the pending instruction on each day."))


def _ope_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    if res.ope is None:
        sec.empty = NO_OPE
    else:
        sec.paragraphs.append("Clicks per slate of each target recommender estimated from another arm's logs (IPS, SNIPS, DR) "
                              f"with {LEVEL:.0%} bootstrap intervals over users, next to the target's value measured on-policy "
                              "when it also ran as an arm. In a copies run the estimates use each user's first slate, which "
                              "every copy of the world shows the same context, so the two are comparable. The estimators "
                              "assume clicks add up over a slate's items; a diversity re-ranker gains from the slate as a "
                              "whole, which they cannot see.")
        rows = [[str(r["arm"]), str(r["target"]), str(r["estimator"]), fmt(r["value"], "f3"),
                 f"{fmt(r['ci_low'], 'f3')} to {fmt(r['ci_high'], 'f3')}", fmt(r.get("on_policy"), "f3"),
                 fmt(r.get("n_slates"), "int")] for r in res.ope.to_dict("records")]
        sec.blocks.append(Table("Off-policy estimates", ["logging arm", "target", "estimator", "estimate", f"{LEVEL:.0%} CI",
                                                         "on-policy", "slates"], rows, [False, False, False, True, True, True, True]))


def _llm_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    if res.llm.empty:
        sec.empty = _no_llm(runs)
    else:
        sec.blocks.append(metric_table(res.summary, LLM, "LLM usage per arm"))
        cols = [c for c in ("calls", "cache_hits", "prompt_tokens", "completion_tokens") if c in res.llm.columns]
        rows = [[str(r.get("arm")), str(r.get("source")), *(fmt(r[c], "int") for c in cols), fmt(r.get("cost_usd"), "usd")]
                for r in res.llm.to_dict("records")]
        sec.blocks.append(Table("LLM usage per world and source", ["arm", "source", *(c.replace("_", " ") for c in cols), "cost"],
                                rows, [False, False, *([True] * (len(cols) + 1))]))


def _fidelity_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    fits = calibrations(runs, res.run_names)
    if not fits:
        sec.empty = "no calibration is attached: these users were not fitted to logged data (users.from_calibration)"
    for name, fit in fits.items():
        f = fit.fidelity
        sec.paragraphs.append(f"{name}: users calibrated on {fit.dataset}, {f.users:,} users; held out: the latest "
                              f"{f.n_test:,} interactions of each user (engagement rate {f.positive_rate_test:.3f} held out, "
                              f"{f.positive_rate_train:.3f} in training).")
        sec.blocks.extend(_fidelity_tables(fit))


def _fidelity_tables(fit: Any) -> list[Table]:
    """The tables of one calibration: engagement prediction, fitted dynamics, 1:m discrimination, replays."""
    f, tables = fit.fidelity, []

    def interval(model: str) -> str:
        low, high = f.auc_interval.get(model, [None, None])
        return f"{fmt(low, 'f3')}–{fmt(high, 'f3')}" if low is not None else "–"

    tables.append(Table("Held-out engagement prediction", ["model", "AUC", "AUC 95% CI", "log-loss"],
                        [[m, fmt(f.auc[m], "f3"), interval(m), fmt(f.log_loss[m], "f3")] for m in f.auc],
                        [False, True, True, True]))
    if fit.dynamics is not None:
        d = fit.dynamics
        tables.append(Table(
            "Session dynamics fitted by simulation (training period)", ["behaviour", "JSD", "real mean", "simulated mean"],
            [[k.replace("_", " "), fmt(v, "f3"), fmt(d.real.get(k), "f2"), fmt(d.simulated.get(k), "f2")] for k, v in d.jsd.items()],
            [False, True, True, True]))
    suite = fit.suite or {}
    if suite.get("discrimination"):
        ratios = list(suite["discrimination"])
        models = list(next(iter(suite["discrimination"].values())))
        tables.append(Table(
            "Preference discrimination 1:m (Agent4Rec / SimUSER): F1 of picks against held-out likes",
            ["model", *ratios, "choice accuracy (1 of 10)"],
            [[m, *(fmt(suite["discrimination"][r][m]["f1"], "f3") for r in ratios),
              fmt(suite.get("choice", {}).get(m, {}).get("accuracy"), "f3")] for m in models],
            [False, *([True] * (len(ratios) + 1))]))
    if fit.replays:
        tables.append(Table(
            "Held-out replay: users served the real slates", ["backend", "slates", "action F1", "precision", "recall",
                                                               "JSD session length", "JSD topic mix", "JSD activity"],
            [[r.backend, fmt(r.slates, "int"), fmt(r.f1, "f3"), fmt(r.precision, "f3"), fmt(r.recall, "f3"),
              *(fmt(r.jsd.get(k), "f3") for k in ("session_length", "topic_mix", "activity_per_user"))] for r in fit.replays],
            [False, *([True] * 7)]))
    return tables


def _notes_section(sec: Section, runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> None:
    if notes:
        sec.bullets = list(notes)
    else:
        sec.empty = "nothing is missing: every run is complete and every table was logged"


_FILL = {
    "summary": _summary_section,
    "comparison": _comparison_section,
    "retention": _retention_section,
    "engagement": _engagement_section,
    "diversity": _diversity_section,
    "creators": _creators_section,
    "instructions": _instructions_section,
    "ope": _ope_section,
    "llm": _llm_section,
    "fidelity": _fidelity_section,
    "notes": _notes_section,
}


_TOPIC = {"creators": ("no creators",), "ope": ("off-policy",), "llm": ("LLM",)}  # notes an empty section already says


def build_sections(runs: Sequence[RunLogs], res: Results, base: str, notes: list[str], figs: dict[str, Path]) -> list[Section]:
    """The report's sections in order, each filled by its own function; the ones with nothing to show are
    collapsed into one "Not measured in this run" note at the end, and notes they already say are dropped."""
    s = {sid: Section(sid, title) for sid, title in SECTIONS}
    for sid, fill in _FILL.items():
        fill(s[sid], runs, res, base, notes, figs)
    empty = [sec for sec in s.values() if sec.empty and sec.id != "notes"]
    said = {sec.empty for sec in empty}
    topics = [word for sec in empty for word in _TOPIC.get(sec.id, ())]
    notes_sec = s["notes"]
    notes_sec.bullets = [b for b in notes_sec.bullets if b not in said and not any(w in b for w in topics)]
    if not notes_sec.bullets:
        notes_sec.empty = notes_sec.empty or "nothing else to note"
    kept = [sec for sec in s.values() if not sec.empty]
    if empty:
        kept.append(Section("not_measured", "Not measured in this run", bullets=[f"{sec.title}: {sec.empty}" for sec in empty]))
    return kept


def _no_llm(runs: Sequence[RunLogs]) -> str:
    if all(r.scenario.users.backend == "parametric" and r.scenario.creators.backend != "llm" for r in runs):
        return "no LLM was used: users and creators were parametric, so there are no calls, tokens or cost"
    return "no LLM usage was logged (the llm table is missing or empty), although the scenario has LLM users or creators"


def run_notes(runs: Sequence[RunLogs], res: Results) -> list[str]:
    several = len(runs) > 1
    notes = [f"{name}: {n}" if several else n for name, logs in zip(res.run_names, runs) for n in logs.notes]
    if res.llm.empty:
        notes.append(_no_llm(runs))
    if res.ope is None:
        notes.append(NO_OPE)
    return notes


def draw_plots(res: Results, plot_dir: Path) -> dict[str, Path]:
    colors = plots.arm_colors(res.labels)
    figs: dict[str, Path] = {}
    tradeoff = tradeoff_plot(res.users, colors, plot_dir / "tradeoff.png")
    if tradeoff is not None:
        figs["tradeoff"] = tradeoff
    if not res.km.empty:
        figs["retention"] = plots.retention_curves(res.km, colors, plot_dir / "retention.png")
    if not res.daily.empty:
        figs["engagement"] = plots.engagement_over_days(res.daily, colors, plot_dir / "engagement.png")
    if not res.lorenz_items.empty:
        figs["lorenz"] = plots.lorenz_curves(res.lorenz_items, res.lorenz_creators, colors, plot_dir / "lorenz.png")
    if not res.creator_daily.empty:
        figs["creators"] = plots.creator_population(res.creator_daily, colors, plot_dir / "creators.png")
    if not res.daily.empty and "compliance" in res.daily.columns and res.daily["compliance"].astype(float).notna().any():
        figs["compliance"] = plots.compliance_over_days(res.daily, colors, plot_dir / "compliance.png")
    return figs
