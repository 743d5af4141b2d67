"""The report's figures: one function per plot, each writing one PNG and returning its path.

Figures are built as ``matplotlib.figure.Figure`` objects and saved through the Agg canvas, so no
pyplot state, GUI backend or global figure registry is involved (safe in threads and on headless
machines), and nothing stays open once the file is written. Every function takes the tidy frame the
metrics module returns and a ``colors`` map from arm label to colour, so an arm keeps its colour
across plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 110


def arm_colors(labels: Sequence[str]) -> dict[str, str]:
    """A stable colour per arm label (tab10, then tab20 for more than ten arms)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: _hex(cmap(i % cmap.N)) for i, label in enumerate(labels)}


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3])


def _figure(n_axes: int = 1, width: float = 7.5, height: float = 4.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * (1 if n_axes == 1 else 0.75 * n_axes), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_axes, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3, linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, list(axes)


def _days_axis(ax, label: str = "day") -> None:
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})  # no matplotlib URL in the file
    fig.clear()
    return path


def _legend(ax, n: int) -> None:
    if n:
        ax.legend(fontsize=8, frameon=False, ncol=1 if n <= 6 else 2)


def retention_curves(km: pd.DataFrame, colors: dict[str, str], path: Path) -> Path:
    """Kaplan–Meier survival (share of users not yet churned) against days since their first session, per arm,
    with the confidence band."""
    fig, (ax,) = _figure()
    for arm, g in km.groupby("arm", sort=False):
        g = g.sort_values("day")
        color = colors.get(arm)
        ax.step(g["day"], g["survival"], where="post", color=color, label=arm, linewidth=1.6)
        if {"ci_low", "ci_high"} <= set(g.columns):
            ax.fill_between(g["day"], g["ci_low"], g["ci_high"], step="post", color=color, alpha=0.15, linewidth=0)
    _days_axis(ax, "days since first session")
    ax.set_ylabel("share of users not churned")
    ax.set_ylim(0, 1.02)
    ax.set_title("Retention (Kaplan–Meier, 95% band)")
    _legend(ax, km["arm"].nunique())
    return _save(fig, path)


def engagement_over_days(daily: pd.DataFrame, colors: dict[str, str], path: Path) -> Path:
    """CTR (clicks per reviewed item) and watch minutes per session on each day, per arm."""
    fig, (ax1, ax2) = _figure(2)
    for arm, g in daily.groupby("arm", sort=False):
        g = g.sort_values("day")
        ax1.plot(g["day"], g["ctr"], color=colors.get(arm), label=arm, linewidth=1.5)
        ax2.plot(g["day"], g["watch_minutes_per_session"], color=colors.get(arm), label=arm, linewidth=1.5)
    ax1.set_title("CTR per day")
    _days_axis(ax1)
    ax1.set_ylabel("clicks / reviewed item")
    ax2.set_title("Watch time per session")
    _days_axis(ax2)
    ax2.set_ylabel("minutes")
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    _legend(ax2, daily["arm"].nunique())
    return _save(fig, path)


def lorenz_curves(items: pd.DataFrame, creators: pd.DataFrame | None, colors: dict[str, str], path: Path) -> Path:
    """Lorenz curves of reviewed-impression counts over items (and over creators when there are any), per arm;
    the diagonal is perfectly equal exposure."""
    panels = [("items", items)] + ([("creators", creators)] if creators is not None and not creators.empty else [])
    fig, axes = _figure(len(panels), height=4.2)
    for ax, (what, frame) in zip(axes, panels):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8, label="equal exposure")
        for arm, g in frame.groupby("arm", sort=False):
            g = g.sort_values("share_of_population")
            ax.plot(g["share_of_population"], g["share_of_exposure"], color=colors.get(arm), label=arm, linewidth=1.5)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"Exposure over {what}")
        ax.set_xlabel(f"share of {what} (least exposed first)")
        ax.set_ylabel("share of reviewed impressions")
    _legend(axes[-1], frame["arm"].nunique() + 1)
    return _save(fig, path)


def creator_population(creator_daily: pd.DataFrame, colors: dict[str, str], path: Path) -> Path:
    """Active creators on each day, per arm (the world the arm served in)."""
    fig, (ax,) = _figure()
    for arm, g in creator_daily.groupby("arm", sort=False):
        g = g.sort_values("day")
        ax.plot(g["day"], g["active_creators"], color=colors.get(arm), label=arm, linewidth=1.5)
    _days_axis(ax)
    ax.set_ylabel("active creators")
    ax.set_ylim(bottom=0)
    ax.set_title("Creator population")
    _legend(ax, creator_daily["arm"].nunique())
    return _save(fig, path)


def compliance_over_days(daily: pd.DataFrame, colors: dict[str, str], path: Path) -> Path:
    """Mean compliance of slates with the user's pending instruction on each day, per arm (days without any
    pending instruction are gaps)."""
    fig, (ax,) = _figure()
    for arm, g in daily.groupby("arm", sort=False):
        g = g.sort_values("day")
        ax.plot(g["day"], g["compliance"].astype(float), color=colors.get(arm), label=arm, linewidth=1.5, marker="o",
                markersize=2.5)
    _days_axis(ax)
    ax.set_ylabel("compliance")
    ax.set_ylim(0, 1.02)
    ax.set_title("Instruction compliance per day")
    _legend(ax, daily["arm"].nunique())
    return _save(fig, path)


def resample_lorenz(frame: pd.DataFrame, points: int = 101) -> pd.DataFrame:
    """A Lorenz frame (arm, share_of_population, share_of_exposure) interpolated on ``points`` evenly spaced
    population shares per arm, so plots and the JSON stay small whatever the catalogue size."""
    grid = np.linspace(0.0, 1.0, points)
    out = []
    for arm, g in frame.groupby("arm", sort=False):
        x = np.concatenate([[0.0], g["share_of_population"].to_numpy(float)])
        y = np.concatenate([[0.0], g["share_of_exposure"].to_numpy(float)])
        order = np.argsort(x, kind="stable")
        out.append(pd.DataFrame({"arm": arm, "share_of_population": grid, "share_of_exposure": np.interp(grid, x[order], y[order])}))
    return pd.concat(out, ignore_index=True) if out else frame.iloc[0:0]
