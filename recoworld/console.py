"""What ``recoworld run`` shows while it works: a first-use note while the kernels compile, and the days
simulated with the time left (a live bar on a terminal, plain lines when piped), with the LLM fallback share.

A day is the unit a run checkpoints, so a piped run prints a line per day (a log shows how far a killed run
got), where :mod:`recoworld.progress` prints a line per stage; the stages after the days (the report) go
through :mod:`recoworld.progress`."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def kernels_cached() -> bool:
    """Whether numba's on-disk cache (``cache=True``) holds most of the compiled simulation kernels, so a run
    starts at once; False on first use (or after the kernels changed), when compiling takes tens of seconds."""
    import os

    from numba.core.registry import CPUDispatcher

    from recoworld.world import kernel as K

    kernels = [v for v in vars(K).values() if isinstance(v, CPUDispatcher) and v.targetoptions.get("inline") != "always"]
    cached = sum(os.path.exists(k._cache._cache_file._index_path) for k in kernels if getattr(k, "_cache", None) is not None
                 and hasattr(k._cache, "_cache_file"))
    return not kernels or cached * 2 >= len(kernels)


class DayProgress:
    """Days simulated: a live bar on a terminal, one plain line per day when output is piped or logged.
    LLM runs show the share of user decisions that fell back to the parametric model."""

    def __init__(self, console: Console, horizon: int, llm: bool) -> None:
        self.console, self.horizon, self.llm = console, horizon, llm
        self.live = console.is_terminal
        columns = [TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                   TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[note]}")]
        self.progress = Progress(*columns, console=console, transient=False) if self.live else None
        self.task = None
        self.started = 0.0
        self.first_day = 0  # days already done when this process started (a resumed run)

    def __enter__(self) -> "DayProgress":
        self.started = time.monotonic()
        if self.progress is not None:
            self.progress.__enter__()
            self.task = self.progress.add_task("simulating", total=self.horizon, note="")
        if not kernels_cached():
            self.console.print("compiling the simulation kernels (first use only; about half a minute)...", highlight=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def resumed(self, day: int) -> None:
        """Say the run resumes at ``day`` and move the bar there; the rate counts from now."""
        self.console.print(f"resuming from day {day} of {self.horizon}", highlight=False)
        self.first_day, self.started = day, time.monotonic()
        if self.progress is not None:
            self.progress.update(self.task, completed=day)

    def day_done(self, days: int, runner) -> None:
        """Advance to ``days`` done, noting the share of LLM decisions that fell back; without a live bar, print a
        line."""
        note = ""
        if self.llm and runner.llm_decisions:
            note = f"LLM fallbacks {runner.llm_fallbacks / runner.llm_decisions:.1%}"
        if self.progress is not None:
            self.progress.update(self.task, completed=days, note=note)
        else:
            elapsed = time.monotonic() - self.started
            left = elapsed * (self.horizon - days) / max(days - self.first_day, 1)
            self.console.print(f"simulating: {days}/{self.horizon} days, {elapsed:.0f} s, about {left:.0f} s left"
                               f"{', ' + note if note else ''}", highlight=False)
