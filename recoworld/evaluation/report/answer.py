"""What the report leads with: the baseline a reader expects, the best arm per headline metric with its
interval, the trade-off between retention and CTR (one point per arm), and one definition per metric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.evaluation import headline as H
from recoworld.evaluation.report.format import fmt, kind_of

INCUMBENTS = ("greedy", "popular")  # what a user would call the system in production, in order of preference

# per-user metric → (what "best" means, higher is better); the summary names the best arm for each
BEST: dict[str, tuple[str, bool]] = {
    "days_active": ("keeps users longest (days active per user)", True),
    "watch_minutes": ("has the most watch minutes per user", True),
    "ctr": ("has the best CTR (mean of users' CTRs)", True),
    "return_rate": ("has the highest return rate (mean of users' shares)", True),
}

# one definition per metric, shown next to the tables (the computations live in recoworld.evaluation.headline
# and recoworld.evaluation.metrics)
GLOSSARY: dict[str, str] = {
    "users": "users served by the arm (with at least one session)",
    "ctr": (H.ctr.__doc__ or "").strip().rstrip(".") + " in the headline table; in comparisons, the mean of users' own CTRs",
    "watch_minutes_per_user": "total watch minutes of the arm's users / users",
    "sessions_per_user": "sessions / users; a user has at most one session a day, so this is days active per user",
    "days_active": "days on which the user had a session (= sessions per user), compared per user",
    "slates_per_session": (H.slates_per_session.__doc__ or "").strip().rstrip("."),
    "return_rate": "share of sessions after which the user came back (pooled over sessions in the headline table; "
                   "in comparisons, the mean over users of each user's own share, so the two differ)",
    "churn_rate": (H.churn_rate.__doc__ or "").strip().rstrip(".") + " (left for good before the end of the run)",
    "retention_d7": "Kaplan–Meier share of users not churned 7 days after their first session",
    "ndcg": "mean per-slate NDCG@K of the clicks, likes and shares (gain 1, 2, 3)",
    "ild": "intra-list diversity: mean pairwise 1 − cosine of item embeddings within a slate",
    "coverage": "distinct items shown / items in the arm's world",
    "watch_minutes": "watch minutes of one user over the run, compared per user",
    "llm_fallback_share": "share of LLM user decisions that fell back to the parametric model (failed calls)",
}


def choose_baseline(given: str | None, configured: str | None, first_run: str, labels: list[str], several: bool) -> str:
    """``--baseline``, else the scenario's ``run.baseline``, else the incumbent (greedy, popular) when present,
    else the first arm. A bare arm name matches the first run's arm when several runs are compared."""
    def resolve(name: str) -> str | None:
        if name in labels:
            return name
        return f"{first_run}/{name}" if several and f"{first_run}/{name}" in labels else None

    for source, name in (("--baseline", given), ("run.baseline", configured)):
        if name is not None:
            found = resolve(name)
            if found is None:
                raise ValueError(f"{source} '{name}': not an arm of {'these runs' if several else 'this run'} "
                                 f"(arms: {', '.join(labels)})")
            return found
    return next((found for name in INCUMBENTS if (found := resolve(name)) is not None), labels[0])


def arm_means(users: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per arm: the mean of a per-user metric and a 95% normal interval (± 1.96 standard errors over users)."""
    rows = []
    for arm, g in users.groupby("arm", sort=False, observed=True):
        values = pd.to_numeric(g[metric], errors="coerce").dropna().to_numpy(np.float64)
        mean, se = (float(values.mean()) if len(values) else float("nan")), H.sem(values)
        rows.append({"arm": str(arm), "mean": mean, "low": mean - 1.96 * se, "high": mean + 1.96 * se})
    return pd.DataFrame(rows).set_index("arm")


def best_arms(users: pd.DataFrame, comparisons: pd.DataFrame, base: str) -> list[str]:
    """One sentence per headline metric naming the best arm, its mean with interval, and its difference from
    the baseline (or that it is the baseline); then the trade-off when retention and CTR have different winners."""
    lines, winners = [], {}
    for metric, (what, higher) in BEST.items():
        if metric not in users.columns:
            continue
        means = arm_means(users, metric).dropna(subset=["mean"])
        if means.empty:
            continue
        arm = str(means["mean"].idxmax() if higher else means["mean"].idxmin())
        winners[metric] = arm
        kind, m = kind_of(metric), means.loc[arm]
        text = f"{arm} {what}: {fmt(m['mean'], kind)} (95% CI {fmt(m['low'], kind)} to {fmt(m['high'], kind)})"
        row = comparisons[(comparisons["metric"] == metric) & (comparisons["arm"] == arm)] if not comparisons.empty else comparisons
        if arm == base:
            text += "; it is the baseline"
        elif len(row):
            r = row.iloc[0]
            clear = "a clear difference" if bool(r["significant"]) else "not a clear difference"
            text += (f", {fmt(r['diff'], kind, signed=True)} against {base} (95% CI {fmt(r['ci_low'], kind, signed=True)} "
                     f"to {fmt(r['ci_high'], kind, signed=True)}: {clear})")
        lines.append(text)
    if winners.get("days_active") and winners.get("ctr") and winners["days_active"] != winners["ctr"]:
        lines.append(f"Trade-off: the arm that keeps users longest ({winners['days_active']}) is not the one with the best "
                     f"CTR ({winners['ctr']}); see the retention-against-CTR plot.")
    return lines


def tradeoff_plot(users: pd.DataFrame, colors: dict[str, str], path: Path) -> Path | None:
    """Days active per user against CTR, one point per arm with 95% intervals on both axes."""
    if not {"days_active", "ctr"} <= set(users.columns):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = arm_means(users, "ctr"), arm_means(users, "days_active")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for arm in x.index:
        ax.errorbar(x.loc[arm, "mean"], y.loc[arm, "mean"], xerr=[[x.loc[arm, "mean"] - x.loc[arm, "low"]], [x.loc[arm, "high"] - x.loc[arm, "mean"]]],
                    yerr=[[y.loc[arm, "mean"] - y.loc[arm, "low"]], [y.loc[arm, "high"] - y.loc[arm, "mean"]]],
                    fmt="o", color=colors.get(arm), capsize=3, label=arm)
        ax.annotate(arm, (x.loc[arm, "mean"], y.loc[arm, "mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("CTR (mean of users' CTRs)")
    ax.set_ylabel("days active per user")
    ax.set_title("Retention against CTR, one point per arm (95% intervals)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def glossary_rows(metrics: Sequence[str]) -> list[list[str]]:
    from recoworld.evaluation.report.format import title_of

    return [[title_of(m), GLOSSARY[m]] for m in metrics if m in GLOSSARY]
