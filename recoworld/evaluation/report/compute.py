"""Every figure of a report, computed once from the run logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recoworld.evaluation import plots
from recoworld.evaluation.data import RunLogs
from recoworld.evaluation.report.answer import choose_baseline
from recoworld.evaluation.report.model import COMPARE, LEVEL, N_BOOT


# ------------------------------------------------------------------ computing
@dataclass
class Results:
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


def compute_results(runs: Sequence[RunLogs], baseline: str | None, seed: int) -> tuple[Results, str]:
    from recoworld.evaluation import compare, metrics

    several = len(runs) > 1
    names = compare.run_labels(runs)  # folder names, #2... when they repeat: the labels compare_runs gives
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in (
        "summary", "users", "km", "daily", "lorenz_items", "lorenz_creators", "creator_daily", "creator_summary",
        "quadrants", "ope", "llm")}
    labels = [f"{name}/{a}" if several else a for name, logs in zip(names, runs) for a in logs.arms]
    configured = getattr(runs[0].scenario.run, "baseline", None)
    base = choose_baseline(baseline, configured, names[0], labels, several)  # refused before the logs are read
    for name, logs in zip(names, runs):
        run = name if several else None
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
    users = _concat(parts["users"])
    comparisons = []
    compared = [m for m in COMPARE if m in users.columns]
    if several:
        comparisons.append(compare.compare_runs(list(runs), compared, base, n_boot=N_BOOT, seed=seed, level=LEVEL))
    else:
        paired = runs[0].scenario.run.assignment == "copies"
        comparisons.append(compare.bootstrap_compare(users, compared, base, n_boot=N_BOOT, seed=seed, paired=paired, level=LEVEL))
    ope = _concat(parts["ope"])
    results = Results(
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


def calibrations(runs: list[RunLogs], names: list[str]) -> dict[str, Any]:
    """The calibration (fit and held-out fidelity) of each run whose users came from one."""
    from recoworld.users.calibration import calibration_result

    return {name: calibration_result(logs.scenario.users.from_calibration)
            for name, logs in zip(names, runs) if logs.scenario.users.from_calibration}
