"""What the report template renders (tables, plots, bullets, sections), its sections and metric names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TEMPLATES = Path(__file__).parents[1] / "templates"

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
    "llm_echoed_slates": ("answers echoing item text", "int"),
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
LLM = ["llm_calls", "llm_tokens", "llm_cost_usd", "llm_echoed_slates"]
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
