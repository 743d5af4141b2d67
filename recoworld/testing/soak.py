"""A soak of a population run: resident memory and open files sampled at the end of every day, and how flat
they stay after the first month (used by ``benchmarks/soak.py`` and the soak test; Linux's /proc)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from recoworld.logs.folder import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import Scenario


def resident_mb() -> float:
    """This process's resident memory now (not its peak), in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def open_files() -> int:
    """File descriptors this process holds now."""
    return len(os.listdir("/proc/self/fd"))


@dataclass
class SoakCurve:
    """Per day: resident MB and open files at the day's end, and the sessions the day logged."""

    rss_mb: list[float] = field(default_factory=list)
    files: list[int] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)

    def growth_mb(self, after: int = 30, window: int = 10) -> float:
        """Median RSS of the last ``window`` days less the median of the ``window`` days from day ``after``."""
        rss = np.asarray(self.rss_mb)
        return float(np.median(rss[-window:]) - np.median(rss[after : after + window]))

    def slope_mb_per_100_days(self, after: int = 30) -> float:
        """Least-squares slope of RSS over the days from ``after``, in MB per 100 days."""
        days = np.arange(after, len(self.rss_mb))
        return float(np.polyfit(days, np.asarray(self.rss_mb[after:]), 1)[0] * 100)

    def files_range(self, after: int = 30) -> tuple[int, int]:
        """(lowest, highest) count of open files after the first ``after`` samples (the warm-up)."""
        return min(self.files[after:]), max(self.files[after:])


def soak(scenario: Scenario, output: str | Path, on_day: Callable[[int, SoakCurve], None] | None = None) -> SoakCurve:
    """Run ``scenario`` into ``output``, sampling memory and open files after each day (the writer thread of
    that day may still hold its file: a sample is the state of a run in progress)."""
    curve = SoakCurve()

    def sample(day: int) -> None:
        curve.rss_mb.append(resident_mb())
        curve.files.append(open_files())
        if on_day is not None:
            on_day(day, curve)

    PopulationRun(scenario, output=output, on_day=sample).run()
    rows = {f.day: f.rows for f in RunFolder(output).read_manifest().files if f.table == "sessions"}
    curve.sessions = [rows.get(day, 0) for day in range(len(curve.rss_mb))]
    return curve
