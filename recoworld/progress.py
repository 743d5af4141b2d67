"""Named stages of long work, shown the same way by every command and benchmark.

Library code marks its stages and says nothing about display::

    from recoworld.progress import stage

    with stage("fitting the liking model", total=len(grid)) as s:
        for setting in grid:
            ...
            s.advance()

Nothing is shown unless the caller turned reporting on (``recoworld`` commands and the benchmark
scripts do)::

    from recoworld.progress import reporting

    with reporting():            # a rich bar with the stage's name and the time left on a terminal;
        calibrate(...)           # one plain line per stage, with its time, when piped

When output is piped, a stage prints one line when it ends (``name: 12.3 s``) and, if it has a
total and runs long, a line at most every ``interval`` seconds with how far it got and the time
left, so a log never goes quiet for minutes. Stages nest: an inner stage's line is indented.
The reporter in force is a context variable, so threads and async tasks started inside
``reporting()`` see it and library code never passes it around.
"""

from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Stage:
    """One named stage: ``advance`` it as work is done; ``note`` sets a short status shown beside it."""

    def __init__(self, reporter: "Reporter | None", name: str, total: float | None, depth: int) -> None:
        self.reporter, self.name, self.total, self.depth = reporter, name, total, depth
        self.done = 0.0
        self.started = time.monotonic()
        self.text = ""

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.monotonic() - self.started

    def remaining(self) -> float | None:
        """Seconds left at the pace so far (None without a total or before any progress)."""
        if not self.total or self.done <= 0:
            return None
        return self.elapsed * max(self.total - self.done, 0.0) / self.done

    def advance(self, n: float = 1.0) -> None:
        """Counts ``n`` more units of work done and tells the reporter."""
        self.done += n
        if self.reporter is not None:
            self.reporter.update(self)

    def note(self, text: str) -> None:
        """Sets the stage's one-line note and tells the reporter."""
        self.text = text
        if self.reporter is not None:
            self.reporter.update(self)


class Reporter:
    """Shows stages on ``console``: a live bar on a terminal, plain lines otherwise."""

    def __init__(self, console: Console | None = None, interval: float = 60.0, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.interval = interval
        self._progress: Progress | None = None
        self._tasks: dict[int, int] = {}
        self._last_line: dict[int, float] = {}

    # the live bar exists only while a stage is open, so plain prints in between stay readable
    def _bar(self) -> Progress:
        if self._progress is None:
            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[note]}")]
            self._progress = Progress(*columns, console=self.console, transient=False)
            self._progress.__enter__()
        return self._progress

    def start(self, s: Stage) -> None:
        """Show stage ``s``: a bar indented by its depth when live; otherwise its plain lines are timed from its start."""
        if self.live:
            label = "  " * s.depth + s.name
            self._tasks[id(s)] = self._bar().add_task(label, total=s.total, note="")
        self._last_line[id(s)] = s.started

    def update(self, s: Stage) -> None:
        """Shows the stage's progress: a live bar, or else a line at most every ``interval`` seconds."""
        if self.live:
            task = self._tasks.get(id(s))
            if task is not None:
                self._bar().update(task, completed=s.done, note=s.text)
            return
        now = time.monotonic()
        if s.total and now - self._last_line.get(id(s), s.started) >= self.interval:
            self._last_line[id(s)] = now
            left = s.remaining()
            tail = f", about {_duration(left)} left" if left is not None else ""
            note = f" ({s.text})" if s.text else ""
            self._print(s, f"{_count(s.done)}/{_count(s.total)}, {_duration(s.elapsed)}{tail}{note}")

    def finish(self, s: Stage, failed: bool) -> None:
        """A stage's end: its line (piped) or its bar completed (terminal). A stage that failed says nothing,
        so the error that stopped it stays the only line a user reads."""
        self._last_line.pop(id(s), None)
        if self.live:
            task = self._tasks.pop(id(s), None)
            if task is not None and self._progress is not None:
                if not failed and s.total:
                    self._progress.update(task, completed=s.total)
                if not self._tasks:
                    self._progress.__exit__(None, None, None)
                    self._progress = None
            return
        if not failed:
            note = f" ({s.text})" if s.text else ""
            self._print(s, f"{_duration(s.elapsed)}{note}")

    def _print(self, s: Stage, text: str) -> None:
        self.console.print(f"{'  ' * s.depth}{s.name}: {text}", highlight=False, markup=False, emoji=False, soft_wrap=True)


_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("recoworld_progress", default=None)
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("recoworld_progress_depth", default=0)


@contextmanager
def reporting(console: Console | None = None, interval: float = 60.0, live: bool | None = None) -> Iterator[Reporter]:
    """Show every stage opened inside this block (see the module docstring)."""
    reporter = Reporter(console, interval, live)
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)
        if reporter._progress is not None:
            reporter._progress.__exit__(None, None, None)


@contextmanager
def stage(name: str, total: float | None = None) -> Iterator[Stage]:
    """A named stage of work (silent unless a caller turned :func:`reporting` on)."""
    reporter = _REPORTER.get()
    depth = _DEPTH.get()
    s = Stage(reporter, name, total, depth)
    token = _DEPTH.set(depth + 1)
    if reporter is not None:
        reporter.start(s)
    failed = True
    try:
        yield s
        failed = False
    finally:
        _DEPTH.reset(token)
        if reporter is not None:
            reporter.finish(s, failed)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _count(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"
