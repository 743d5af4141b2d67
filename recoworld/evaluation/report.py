"""The run report: one self-contained HTML file, a Markdown summary, a metrics JSON and the PNG plots.

``write_report(runs, out_dir)`` computes every metric once (``recoworld.evaluation.metrics``), compares
each arm with a baseline arm by bootstrap (``recoworld.evaluation.compare``), draws the plots
(``recoworld.evaluation.plots``) and renders ``templates/report.html.j2``. The HTML embeds its CSS
and its plots (base64 PNG), links nothing outside itself and needs no JavaScript. Every number the
HTML shows is in ``metrics.json`` (NaN as ``null``). With several run folders the arms are labelled
``<run>/<arm>`` and compared across runs (unpaired).

A section with nothing to show says why (no creators, no instruction voiced, no LLM in use, no
off-policy target logged); what the logs lack (a run still in progress, a missing file) is listed
in the notes section and in the Markdown.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recoworld import __version__
from recoworld.evaluation import plots
from recoworld.evaluation.data import RunLogs
from recoworld.logs import atomic_write_bytes

TEMPLATES = Path(__file__).parent / "templates"

SECTIONS: list[tuple[str, str]] = [
    ("summary", "Summary"),
    ("comparison", "Arm comparison"),
    ("retention", "Retention"),
    ("engagement", "Engagement"),
    ("diversity", "Diversity and exposure"),
    ("creators", "Creator health"),
    ("instructions", "Instructions"),
    ("ope", "Off-policy estimates"),
    ("llm", "LLM usage"),
    ("fidelity", "Simulator fidelity"),
    ("notes", "Notes"),
]

# metric → (title, format kind); kinds: int, f1, f2, f3, pct, usd
METRICS: dict[str, tuple[str, str]] = {
    "users": ("users", "int"),
    "ctr": ("CTR", "f3"),
    "watch_minutes_per_user": ("watch min / user", "f1"),
    "likes_per_user": ("likes / user", "f2"),
    "shares_per_user": ("shares / user", "f2"),
    "comments_per_user": ("comments / user", "f2"),
    "slates_per_session": ("slates / session", "f2"),
    "items_per_session": ("items / session", "f1"),
    "sessions_per_user": ("sessions / user", "f2"),
    "return_rate": ("return rate", "pct"),
    "churn_rate": ("churn rate", "pct"),
    "retention_d1": ("retention day 1", "pct"),
    "retention_d7": ("retention day 7", "pct"),
    "retention_d14": ("retention day 14", "pct"),
    "instruction_rate": ("instructions / session", "f3"),
    "compliance": ("compliance", "f2"),
    "retention_after_instruction": ("return rate after an instruction", "pct"),
    "ild": ("ILD", "f3"),
    "coverage": ("coverage", "pct"),
    "exposure_gini_items": ("exposure Gini (items)", "f3"),
    "novelty": ("novelty (bits)", "f2"),
    "ndcg": ("NDCG@K", "f3"),
    "llm_calls": ("LLM calls", "int"),
    "llm_tokens": ("LLM tokens", "int"),
    "llm_cost_usd": ("LLM cost", "usd"),
    # per-user metrics compared between arms
    "days_active": ("days active", "f2"),
    "watch_minutes": ("watch minutes", "f1"),
    "clicks": ("clicks", "f2"),
    "reward": ("reward", "f2"),
    # creators
    "creators": ("creators", "int"),
    "active_at_end": ("active at end", "int"),
    "quits": ("quits", "int"),
    "exposure_gini_creators": ("exposure Gini (creators)", "f3"),
    "genre_entropy": ("genre entropy (bits)", "f2"),
    # 2×2
    "high_ndcg_high_retention": ("high NDCG, high retention", "pct"),
    "high_ndcg_low_retention": ("high NDCG, low retention", "pct"),
    "low_ndcg_high_retention": ("low NDCG, high retention", "pct"),
    "low_ndcg_low_retention": ("low NDCG, low retention", "pct"),
    "ndcg_retention_corr": ("Spearman ρ", "f2"),
}

HEADLINE = ["users", "ctr", "watch_minutes_per_user", "sessions_per_user", "slates_per_session", "return_rate",
            "churn_rate", "retention_d7", "ndcg", "ild", "coverage"]
ENGAGEMENT = ["ctr", "watch_minutes_per_user", "likes_per_user", "shares_per_user", "comments_per_user",
              "sessions_per_user", "slates_per_session", "items_per_session", "ndcg"]
RETENTION = ["return_rate", "churn_rate", "retention_d1", "retention_d7", "retention_d14"]
DIVERSITY = ["ild", "coverage", "exposure_gini_items", "novelty"]
INSTRUCTIONS = ["instruction_rate", "compliance", "retention_after_instruction"]
LLM = ["llm_calls", "llm_tokens", "llm_cost_usd"]
CREATORS = ["creators", "active_at_end", "quits", "exposure_gini_creators", "genre_entropy"]
QUADRANTS = ["high_ndcg_high_retention", "high_ndcg_low_retention", "low_ndcg_high_retention", "low_ndcg_low_retention",
             "ndcg_retention_corr"]
COMPARE = ["days_active", "watch_minutes", "ctr", "return_rate", "ndcg"]  # per-user columns of metrics.user_table
LEVEL = 0.95
N_BOOT = 2000
NO_OPE = "no off-policy targets were logged in this run (set run.ope_targets)"
DASH = "–"


# ------------------------------------------------------------------ what the template renders
@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # right-aligned columns
    kind: str = "table"


@dataclass
class Plot:
    name: str
    alt: str
    caption: str
    src: str  # data:image/png;base64,...
    kind: str = "plot"


@dataclass
class Bullets:
    items: list[str]
    kind: str = "list"


@dataclass
class Section:
    id: str
    title: str
    empty: str | None = None  # why the section has nothing to show
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    blocks: list[Table | Plot | Bullets] = field(default_factory=list)


@dataclass
class ReportPaths:
    """Where ``write_report`` put the report."""

    out_dir: Path
    html: Path
    markdown: Path
    metrics: Path
    plots: dict[str, Path]
    notes: list[str]


# ------------------------------------------------------------------ formatting
def fmt(value: Any, kind: str, signed: bool = False) -> str:
    """A number for a table cell; NaN / None become a dash."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not math.isfinite(float(value))):
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    return _number(float(value), kind, signed).replace("-", "\u2212")  # a true minus, as in the statements


def _number(v: float, kind: str, signed: bool) -> str:
    sign = "+" if signed else ""
    if kind == "int":
        return f"{v:{sign},.0f}"
    if kind == "pct":
        return f"{v * 100:{sign}.1f} pp" if signed else f"{v:.1%}"
    if kind == "usd":
        return f"{'+' if signed and v >= 0 else ''}{'-' if v < 0 else ''}${abs(v):,.4f}"
    digits = {"f1": 1, "f2": 2, "f3": 3}.get(kind, 3)
    return f"{v:{sign}.{digits}f}"


def title_of(metric: str) -> str:
    return METRICS.get(metric, (metric.replace("_", " "), "f3"))[0]


def kind_of(metric: str) -> str:
    return METRICS.get(metric, (metric, "f3"))[1]


def metric_table(frame: pd.DataFrame, metrics: Sequence[str], caption: str, key: str = "arm") -> Table:
    """Rows = arms (``frame`` indexed or keyed by ``key``), columns = the metrics present in ``frame``."""
    frame = frame.reset_index() if key not in frame.columns else frame
    present = [m for m in metrics if m in frame.columns]
    rows = [[str(r[key]), *(fmt(r[m], kind_of(m)) for m in present)] for r in frame.to_dict("records")]
    return Table(caption, [key, *(title_of(m) for m in present)], rows, [False, *([True] * len(present))])


def jsonable(value: Any) -> Any:
    """Plain JSON types: NaN and infinities → None, numpy scalars → Python, frames → records."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict("records")]
    if isinstance(value, pd.Series):
        return jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Path):
        return str(value)
    return str(value)


# ------------------------------------------------------------------ computing
@dataclass
class _Results:
    """Every frame the report shows, arms labelled (``run/arm`` with several runs)."""

    run_names: list[str]  # folder names, #2... when they repeat
    labels: list[str]
    summary: pd.DataFrame  # index arm
    users: pd.DataFrame
    km: pd.DataFrame
    daily: pd.DataFrame
    lorenz_items: pd.DataFrame
    lorenz_creators: pd.DataFrame
    creator_daily: pd.DataFrame
    creator_summary: pd.DataFrame
    quadrants: pd.DataFrame
    comparisons: pd.DataFrame
    ope: pd.DataFrame | None
    llm: pd.DataFrame  # per arm and source


def _relabel(frame: pd.DataFrame, run: str | None, index: bool = False) -> pd.DataFrame:
    if run is None or frame is None or frame.empty:
        return frame
    frame = frame.copy()
    if index:
        frame.index = [f"{run}/{a}" for a in frame.index]
        frame.index.name = "arm"
    elif "arm" in frame.columns:
        frame["arm"] = [f"{run}/{a}" for a in frame["arm"]]
    return frame


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and not f.empty]
    return pd.concat(frames) if frames else pd.DataFrame()


def _ope_table(logs: RunLogs) -> pd.DataFrame | None:
    """Off-policy estimates of the run's targets, or None when it logged none."""
    from recoworld.evaluation.ope import ope_table

    # copies of one world show every arm the same first slates: there, on-policy values are comparable
    table = ope_table(logs, scope="first" if logs.scenario.run.assignment == "copies" else "all")
    return None if table is None or table.empty else table


def _llm_usage(logs: RunLogs) -> pd.DataFrame:
    if logs.llm is None or logs.llm.empty:
        return pd.DataFrame()
    cols = [c for c in ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd") if c in logs.llm.columns]
    keys = [k for k in ("arm", "source") if k in logs.llm.columns]
    if not cols or not logs.llm[cols].to_numpy(dtype=float).any():  # rows of zeros: nothing was asked of an LLM
        return pd.DataFrame()
    return logs.llm.groupby(keys, sort=False, observed=True)[cols].sum().reset_index()


def _baseline(baseline: str | None, first_run: str, labels: list[str], several: bool) -> str:
    """The baseline's label: as given, or (several runs) a bare arm name taken from the first run."""
    if baseline is None:
        return labels[0]
    if baseline in labels:
        return baseline
    if several and f"{first_run}/{baseline}" in labels:
        return f"{first_run}/{baseline}"
    raise ValueError(f"--baseline '{baseline}': not an arm of {'these runs' if several else 'this run'} (arms: {', '.join(labels)})")


def _compute(runs: Sequence[RunLogs], baseline: str | None, seed: int) -> tuple[_Results, str]:
    from recoworld.evaluation import compare, metrics

    several = len(runs) > 1
    names = compare.run_labels(runs)  # folder names, #2... when they repeat: the labels compare_runs gives
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in (
        "summary", "users", "km", "daily", "lorenz_items", "lorenz_creators", "creator_daily", "creator_summary",
        "quadrants", "ope", "llm")}
    labels: list[str] = []
    for name, logs in zip(names, runs):
        run = name if several else None
        labels += [f"{name}/{a}" for a in logs.arms] if several else list(logs.arms)
        parts["summary"].append(_relabel(metrics.arm_summary(logs), run, index=True))
        parts["users"].append(_relabel(metrics.user_table(logs), run))
        parts["km"].append(_relabel(metrics.kaplan_meier(logs), run))
        parts["daily"].append(_relabel(metrics.daily(logs), run))
        parts["lorenz_items"].append(_relabel(plots.resample_lorenz(metrics.lorenz(logs, by="item")), run))
        creator_daily, creator_summary = metrics.creator_health(logs)
        if not creator_summary.empty:
            parts["lorenz_creators"].append(_relabel(plots.resample_lorenz(metrics.lorenz(logs, by="creator")), run))
        parts["creator_daily"].append(_relabel(creator_daily, run))
        parts["creator_summary"].append(_relabel(creator_summary, run))
        parts["quadrants"].append(_relabel(metrics.ndcg_retention_2x2(logs), run))
        parts["ope"].append(_relabel(_ope_table(logs), run))
        parts["llm"].append(_relabel(_llm_usage(logs), run))
    base = _baseline(baseline, names[0], labels, several)
    users = _concat(parts["users"])
    comparisons = []
    for metric in COMPARE:
        if metric not in users.columns:
            continue
        if several:
            comparisons.append(compare.compare_runs(list(runs), metric, base, n_boot=N_BOOT, seed=seed, level=LEVEL))
        else:
            paired = runs[0].scenario.run.assignment == "copies"
            comparisons.append(compare.bootstrap_compare(users, metric, base, n_boot=N_BOOT, seed=seed, paired=paired, level=LEVEL))
    ope = _concat(parts["ope"])
    results = _Results(
        run_names=names,
        labels=labels,
        summary=_concat(parts["summary"]).reindex(labels),
        users=users,
        km=_concat(parts["km"]),
        daily=_concat(parts["daily"]),
        lorenz_items=_concat(parts["lorenz_items"]),
        lorenz_creators=_concat(parts["lorenz_creators"]),
        creator_daily=_concat(parts["creator_daily"]),
        creator_summary=_concat(parts["creator_summary"]),
        quadrants=_concat(parts["quadrants"]),
        comparisons=_concat(comparisons).reset_index(drop=True),
        ope=None if ope.empty else ope.reset_index(drop=True),
        llm=_concat(parts["llm"]),
    )
    return results, base


# ------------------------------------------------------------------ the sections
def _plot(name: str, path: Path, alt: str, caption: str) -> Plot:
    return Plot(name, alt, caption, "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii"))


def _comparison_blocks(comparisons: pd.DataFrame, base: str) -> list[Table | Bullets]:
    """Per compared metric: a table of each arm against the baseline, then the statements."""
    blocks: list[Table | Bullets] = []
    for metric, g in comparisons.groupby("metric", sort=False):
        kind = kind_of(str(metric))
        rows = [[str(r["arm"]), fmt(r["value"], kind), fmt(r["baseline_value"], kind), fmt(r["diff"], kind, signed=True),
                 f"{fmt(r['ci_low'], kind, signed=True)} to {fmt(r['ci_high'], kind, signed=True)}",
                 "yes" if bool(r["significant"]) else "no"] for r in g.to_dict("records")]
        blocks.append(Table(f"{title_of(str(metric))} per user: each arm against {base}",
                            ["arm", "mean", f"{base}", "difference", f"{LEVEL:.0%} CI", "clear difference"],
                            rows, [False, True, True, True, True, False]))
        blocks.append(Bullets([str(st) for st in g["statement"]]))
    return blocks


def _sections(runs: Sequence[RunLogs], res: _Results, base: str, notes: list[str], figs: dict[str, Path]) -> list[Section]:
    several = len(runs) > 1
    s = {sid: Section(sid, title) for sid, title in SECTIONS}

    # summary
    sec = s["summary"]
    rows = []
    for name, logs in zip(res.run_names, runs):
        scn, m = logs.scenario, logs.manifest
        rows.append([name, scn.name, m.status, f"{m.days_completed} of {m.days_total}", f"{scn.users.n_users:,}",
                     ", ".join(logs.arms), scn.run.assignment, str(scn.env.slate_size), str(scn.creators.count), str(scn.seed)])
    sec.blocks.append(Table("Runs", ["run", "scenario", "status", "days logged", "users", "arms", "assignment", "slate size",
                                     "creators", "seed"], rows, [False, False, False, True, True, False, False, True, True, True]))
    sec.blocks.append(metric_table(res.summary, HEADLINE, "Headline metrics per arm"))
    headline = COMPARE[:2]  # days active and watch minutes: the winner statements of the summary
    winners = [] if res.comparisons.empty else [str(st) for st in res.comparisons.loc[
        res.comparisons["significant"].astype(bool) & res.comparisons["metric"].isin(headline), "statement"]]
    sec.paragraphs.append(f"Baseline arm: {base}. {'Arms of several runs are compared unpaired. ' if several else ''}"
                          f"A dash (–) marks a value that cannot be measured (for instance retention beyond the horizon).")
    sec.bullets = winners or [f"no arm differs clearly from {base} on {' or '.join(title_of(m) for m in headline)}"]

    # comparison
    sec = s["comparison"]
    if res.comparisons.empty:
        sec.empty = "only one arm was run: there is nothing to compare"
    else:
        paired = not several and runs[0].scenario.run.assignment == "copies"
        sec.paragraphs.append(
            f"Per-user metrics of each arm against {base}: difference of means with a {LEVEL:.0%} bootstrap interval "
            f"({N_BOOT} resamples, {'paired: the arms served the same users' if paired else 'unpaired: the arms served different users'}). "
            "A difference is clear when its interval excludes zero.")
        sec.blocks += _comparison_blocks(res.comparisons, base)

    # retention
    sec = s["retention"]
    sec.paragraphs.append("Kaplan–Meier survival: the share of users who have not churned, by days since their first session; "
                          "users who never churned are censored at the end of the run.")
    if "retention" in figs:
        sec.blocks.append(_plot("retention", figs["retention"], "Retention curves per arm", "Retention per arm with 95% bands."))
    sec.blocks.append(metric_table(res.summary, RETENTION, "Return, churn and day-N retention per arm"))
    if not res.quadrants.empty:
        sec.blocks.append(metric_table(res.quadrants, QUADRANTS,
                                       "NDCG against retention: share of each arm's users in each quadrant (split at the pooled medians "
                                       "of per-user NDCG and days active) and the Spearman correlation"))

    # engagement
    sec = s["engagement"]
    sec.blocks.append(metric_table(res.summary, ENGAGEMENT, "Engagement per arm"))
    if "engagement" in figs:
        sec.blocks.append(_plot("engagement", figs["engagement"], "CTR and watch time per session over days per arm",
                                "CTR and watch minutes per session on each day."))

    # diversity
    sec = s["diversity"]
    sec.paragraphs.append("ILD: mean pairwise 1 − cosine of item embeddings within a slate. Coverage: distinct items shown over "
                          "the items of the arm's world. Exposure Gini over reviewed impressions (0 = equal). Novelty: mean "
                          "−log2 of the share of users who clicked the item.")
    sec.blocks.append(metric_table(res.summary, DIVERSITY, "Diversity and exposure per arm"))
    if "lorenz" in figs:
        sec.blocks.append(_plot("lorenz", figs["lorenz"], "Lorenz curves of exposure per arm",
                                "Lorenz curves of reviewed impressions; the dashed diagonal is equal exposure."))

    # creators
    sec = s["creators"]
    if res.creator_summary.empty:
        sec.empty = "no creators in this run (creators.count is 0): the catalogue stayed fixed, so creator health is not measured"
    else:
        if any(logs.scenario.run.assignment == "split" for logs in runs):
            sec.paragraphs.append("Where arms split the users of one world (assignment: split), they share its creators: "
                                  "the population figures are the world's, repeated for each arm; exposure is the arm's own.")
        sec.blocks.append(metric_table(res.creator_summary, CREATORS, "Creator population per arm's world"))
        if "creators" in figs:
            sec.blocks.append(_plot("creators", figs["creators"], "Active creators over days per arm", "Active creators on each day."))

    # instructions
    sec = s["instructions"]
    voiced = float(pd.to_numeric(res.users.get("instructions", pd.Series(dtype=float)), errors="coerce").fillna(0).sum()) \
        if not res.users.empty else 0.0
    if voiced == 0:
        sec.empty = "no user voiced an instruction in this run, so there is no compliance to measure"
    else:
        sec.blocks.append(metric_table(res.summary, INSTRUCTIONS, "Instructions and compliance per arm"))
        if "compliance" in figs:
            sec.blocks.append(_plot("compliance", figs["compliance"], "Instruction compliance over days per arm",
                                    "Mean compliance of slates with the pending instruction on each day."))

    # ope
    sec = s["ope"]
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

    # llm
    sec = s["llm"]
    if res.llm.empty:
        sec.empty = _no_llm(runs)
    else:
        sec.blocks.append(metric_table(res.summary, LLM, "LLM usage per arm"))
        cols = [c for c in ("calls", "cache_hits", "prompt_tokens", "completion_tokens") if c in res.llm.columns]
        rows = [[str(r.get("arm")), str(r.get("source")), *(fmt(r[c], "int") for c in cols), fmt(r.get("cost_usd"), "usd")]
                for r in res.llm.to_dict("records")]
        sec.blocks.append(Table("LLM usage per world and source", ["arm", "source", *(c.replace("_", " ") for c in cols), "cost"],
                                rows, [False, False, *([True] * (len(cols) + 1))]))

    # fidelity of calibrated users
    sec = s["fidelity"]
    fits = _calibrations(runs, res.run_names)
    if not fits:
        sec.empty = "no calibration is attached: these users were not fitted to logged data (users.from_calibration)"
    for name, fit in fits.items():
        f = fit.fidelity
        sec.paragraphs.append(f"{name}: users calibrated on {fit.dataset}, {f.users:,} users; held out: the latest "
                              f"{f.n_test:,} interactions of each user (engagement rate {f.positive_rate_test:.3f} held out, "
                              f"{f.positive_rate_train:.3f} in training).")

        def interval(model: str) -> str:
            low, high = f.auc_interval.get(model, [None, None])
            return f"{fmt(low, 'f3')}–{fmt(high, 'f3')}" if low is not None else "–"

        sec.blocks.append(Table("Held-out engagement prediction", ["model", "AUC", "AUC 95% CI", "log-loss"],
                                [[m, fmt(f.auc[m], "f3"), interval(m), fmt(f.log_loss[m], "f3")] for m in f.auc],
                                [False, True, True, True]))
        if fit.dynamics is not None:
            d = fit.dynamics
            sec.blocks.append(Table(
                "Session dynamics fitted by simulation (training period)", ["behaviour", "JSD", "real mean", "simulated mean"],
                [[k.replace("_", " "), fmt(v, "f3"), fmt(d.real.get(k), "f2"), fmt(d.simulated.get(k), "f2")] for k, v in d.jsd.items()],
                [False, True, True, True]))
        suite = fit.suite or {}
        if suite.get("discrimination"):
            ratios = list(suite["discrimination"])
            models = list(next(iter(suite["discrimination"].values())))
            sec.blocks.append(Table(
                "Preference discrimination 1:m (Agent4Rec / SimUSER): F1 of picks against held-out likes",
                ["model", *ratios, "choice accuracy (1 of 10)"],
                [[m, *(fmt(suite["discrimination"][r][m]["f1"], "f3") for r in ratios),
                  fmt(suite.get("choice", {}).get(m, {}).get("accuracy"), "f3")] for m in models],
                [False, *([True] * (len(ratios) + 1))]))
        if fit.replays:
            sec.blocks.append(Table(
                "Held-out replay: users served the real slates", ["backend", "slates", "action F1", "precision", "recall",
                                                                   "JSD session length", "JSD topic mix", "JSD activity"],
                [[r.backend, fmt(r.slates, "int"), fmt(r.f1, "f3"), fmt(r.precision, "f3"), fmt(r.recall, "f3"),
                  *(fmt(r.jsd.get(k), "f3") for k in ("session_length", "topic_mix", "activity_per_user"))] for r in fit.replays],
                [False, *([True] * 7)]))

    # notes
    sec = s["notes"]
    if notes:
        sec.bullets = list(notes)
    else:
        sec.empty = "nothing is missing: every run is complete and every table was logged"
    return list(s.values())


def _no_llm(runs: Sequence[RunLogs]) -> str:
    if all(r.scenario.users.backend == "parametric" and r.scenario.creators.backend != "llm" for r in runs):
        return "no LLM was used: users and creators were parametric, so there are no calls, tokens or cost"
    return "no LLM usage was logged (the llm table is missing or empty), although the scenario has LLM users or creators"


def _notes(runs: Sequence[RunLogs], res: _Results) -> list[str]:
    several = len(runs) > 1
    notes = [f"{name}: {n}" if several else n for name, logs in zip(res.run_names, runs) for n in logs.notes]
    if res.llm.empty:
        notes.append(_no_llm(runs))
    if res.ope is None:
        notes.append(NO_OPE)
    return notes


def _draw(res: _Results, plot_dir: Path) -> dict[str, Path]:
    colors = plots.arm_colors(res.labels)
    figs: dict[str, Path] = {}
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


# ------------------------------------------------------------------ outputs
def _markdown(title: str, sections: list[Section]) -> str:
    def table(t: Table) -> str:
        esc = [[c.replace("|", "\\|") for c in row] for row in [t.columns, *t.rows]]
        align = ["---:" if n else "---" for n in t.numeric]
        lines = [f"**{t.caption}**", "", "| " + " | ".join(esc[0]) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
        return "\n".join(lines)

    by_id = {sec.id: sec for sec in sections}
    out = [f"# {title}", ""]
    for sid in ("summary", "comparison", "notes"):
        sec = by_id[sid]
        out += [f"## {sec.title}", ""]
        if sec.empty:
            out += [f"_{sec.empty}_", ""]
        out += [*sec.paragraphs, ""] if sec.paragraphs else []
        out += [*(f"- {b}" for b in sec.bullets), ""] if sec.bullets else []
        for block in sec.blocks:
            if isinstance(block, Table):
                out += [table(block), ""]
            elif isinstance(block, Bullets):
                out += [*(f"- {b}" for b in block.items), ""]
    out.append("Plots, retention, diversity, creator and LLM sections: see report.html.")
    return "\n".join(out).rstrip() + "\n"


def _metrics_json(runs: Sequence[RunLogs], res: _Results, base: str, notes: list[str]) -> dict[str, Any]:
    return jsonable({
        "runs": [{
            "name": name, "path": str(logs.path), "scenario": logs.scenario.name, "status": logs.manifest.status,
            "complete": logs.complete, "days_completed": logs.manifest.days_completed, "days_total": logs.manifest.days_total,
            "users": logs.scenario.users.n_users, "arms": logs.arms, "assignment": logs.scenario.run.assignment,
            "slate_size": logs.scenario.env.slate_size, "creators": logs.scenario.creators.count, "seed": logs.scenario.seed,
            "notes": logs.notes,
        } for name, logs in zip(res.run_names, runs)],
        "arms": res.labels,
        "baseline": base,
        "bootstrap": {"n_boot": N_BOOT, "level": LEVEL},
        "notes": notes,
        "summary": {arm: row for arm, row in res.summary.to_dict("index").items()},
        "comparisons": res.comparisons,
        "kaplan_meier": res.km,
        "daily": res.daily,
        "lorenz": {"item": res.lorenz_items, "creator": res.lorenz_creators},
        "creators": {"daily": res.creator_daily, "summary": res.creator_summary},
        "ndcg_retention_2x2": res.quadrants,
        "ope": res.ope,
        "llm": res.llm,
        "fidelity": {name: fit.model_dump() for name, fit in _calibrations(runs, res.run_names).items()},
    })


def _calibrations(runs: list[RunLogs], names: list[str]) -> dict[str, Any]:
    """The calibration (fit and held-out fidelity) of each run whose users came from one."""
    from recoworld.users.calibration import calibration_result

    return {name: calibration_result(logs.scenario.users.from_calibration)
            for name, logs in zip(names, runs) if logs.scenario.users.from_calibration}


def _render_html(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


PLOT_FILES = ("retention.png", "engagement.png", "lorenz.png", "creators.png", "compliance.png")


def write_report(runs: list[RunLogs], out_dir: Path, baseline: str | None = None, seed: int = 0) -> ReportPaths:
    """Write ``report.html``, ``report.md``, ``metrics.json`` and ``plots/*.png`` for ``runs`` into ``out_dir``.

    ``baseline`` is the arm every other arm is compared with (default: the first arm; with several runs
    ``<run>/<arm>``, or a bare arm of the first run). ``seed`` seeds the bootstrap. Raises a one-line
    ``ValueError`` for an unknown baseline.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("write_report: no run given")
    out_dir = Path(out_dir)
    res, base = _compute(runs, baseline, seed)
    notes = _notes(runs, res)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_dir = out_dir / "plots"
    for name in PLOT_FILES:  # a previous report's plots that this one may not redraw
        (plot_dir / name).unlink(missing_ok=True)
    figs = _draw(res, plot_dir)
    sections = _sections(runs, res, base, notes, figs)
    title = f"RecoWorld report: {', '.join(res.run_names)}"
    html = _render_html({"title": title, "sections": sections, "version": __version__,
                         "subtitle": " · ".join(f"{r.scenario.name}: {r.scenario.users.n_users:,} users, "
                                                f"{r.manifest.days_completed}/{r.manifest.days_total} days, {r.manifest.status}"
                                                for r in runs)})
    paths = ReportPaths(out_dir, out_dir / "report.html", out_dir / "report.md", out_dir / "metrics.json", figs, notes)
    atomic_write_bytes(paths.html, html.encode("utf-8"))
    atomic_write_bytes(paths.markdown, _markdown(title, sections).encode("utf-8"))
    data = _metrics_json(runs, res, base, notes)
    atomic_write_bytes(paths.metrics, (json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8"))
    return paths
