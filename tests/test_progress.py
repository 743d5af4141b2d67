"""Named stages: silent in library use, one plain line per stage when piped, a live bar on a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from recoworld.progress import reporting, stage


def _piped() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_stages_are_silent_unless_reporting_is_on(capsys):
    with stage("fitting", total=3) as s:
        for _ in range(3):
            s.advance()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_piped_output_has_one_line_per_stage_with_its_time_and_nested_stages_indented():
    console, out = _piped()
    with reporting(console):
        with stage("calibrating"):
            with stage("fitting the liking model", total=2) as s:
                s.advance(2)
            with stage("dynamics"):
                pass
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["  fitting the liking model", "  dynamics", "calibrating"]
    assert all(line.rstrip().endswith(" s") for line in lines)


def test_long_piped_stages_print_how_far_they_got_and_the_time_left():
    console, out = _piped()
    with reporting(console, interval=0.0):
        with stage("grid", total=4) as s:
            s.advance()
            s.note("l2=0.1")
    first, noted = out.getvalue().splitlines()[:2]
    assert first.startswith("grid: 1/4,") and "left" in first
    assert noted.startswith("grid: 1/4,") and noted.endswith("(l2=0.1)")


def test_a_failing_stage_leaves_its_error_as_the_only_line():
    console, out = _piped()
    with pytest.raises(RuntimeError), reporting(console):
        with stage("calibrating"):
            with stage("loading"):
                raise RuntimeError("bad file")
    assert out.getvalue() == ""


def test_a_terminal_gets_a_live_bar_with_the_stage_name():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with reporting(console):
        with stage("fitting", total=2) as s:
            s.advance(2)
    assert "fitting" in out.getvalue() and "2/2" in out.getvalue()


def test_piped_lines_keep_colons_as_written():
    """A name such as "1:m" stays as written (no emoji code such as ":m:" is replaced)."""
    console, out = _piped()
    with reporting(console):
        with stage("protocol: preference discrimination 1:m"):
            pass
    assert out.getvalue().startswith("protocol: preference discrimination 1:m: ")
