"""``recoworld evaluate POLICY --task NAME``: score a policy on a task's held-out users (registered in
``recoworld.cli``)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Optional

import typer

from recoworld.cli_output import fail, make_console

POLICY_HELP = ("A registered recommender (greedy, mmr, ...), package.module:Class, a Stable-Baselines3 .zip, "
               "a tuned LLM agent folder (agent.json) or an agent server URL.")


def _seeds(text: str) -> range:
    match = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", text)
    if match is None:
        raise fail(f"--seeds: expected START:STOP (or one seed), got '{text}'")
    start = int(match.group(1))
    stop = int(match.group(2)) if match.group(2) else start + 1
    if stop <= start:
        raise fail(f"--seeds: STOP must be above START, got '{text}'")
    return range(start, stop)


def _params(text: str | None) -> dict:
    if text is None:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"--params: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(params, dict):
        raise fail(f"--params: expected a JSON object such as '{{\"lambda_\": 0.5}}', got {type(params).__name__}")
    return params


def _fmt(x: float | None, spec: str = "{:.3f}") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else spec.format(x)


def default_out(task_id: str, policy_name: str) -> Path:
    """``results/<task>/<policy>.json``, the policy's name made safe for a file name."""
    return Path("results") / task_id / (re.sub(r"[^A-Za-z0-9_.-]+", "_", policy_name).strip("_") + ".json")


def evaluate(
    policy: str = typer.Argument(..., help=POLICY_HELP),
    task: str = typer.Option(..., "--task", "-t", help="A task id (retention-v1), name (its latest version) or Gym id."),
    params: Optional[str] = typer.Option(None, "--params", help="The recommender's parameters as a JSON object."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Held-out seeds START:STOP instead of the task's own "
                                        "(the result is then not official; training seeds are refused)."),
    data: Optional[Path] = typer.Option(None, "--data", help="ml100k: your MovieLens-100K folder "
                                        "(default $RECOWORLD_DATA/ml-100k)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Result JSON (default results/<task>/<policy>.json)."),
    note: str = typer.Option("", "--note", help="How the policy was made (training budget, ...), kept in the result."),
) -> None:
    """Score a policy on a task's held-out users: the task metric with a bootstrap interval, a normalised
    score (random 0, the task's reference 100) and secondary metrics; writes a result JSON."""
    from rich import box
    from rich.table import Table

    from recoworld.progress import reporting
    from recoworld.tasks.definitions import get_task
    from recoworld.tasks.evaluate import evaluate_task

    try:
        definition = get_task(task)
    except ValueError as exc:
        raise fail(str(exc)) from None
    chosen = _seeds(seeds) if seeds is not None else None
    try:
        with reporting():
            result = evaluate_task(policy, definition, _params(params), chosen, data)
    except (ValueError, FileNotFoundError, NotImplementedError) as exc:
        raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    result.note = note
    path = result.write(out or default_out(result.task, result.policy_name))
    console = make_console()
    s, z = result.score, result.normalised
    table = Table(title=f"{result.policy} on {result.task} ({result.users:,} held-out users, seeds "
                  f"{result.seeds[0]}..{result.seeds[1] - 1})", box=box.SIMPLE_HEAD)
    for column in ("", "value", "95% interval"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(result.metric_text, _fmt(s.value), f"{_fmt(s.low)} – {_fmt(s.high)}")
    table.add_row(f"normalised (random {_fmt(result.random_score)} = 0, {result.reference} {_fmt(result.reference_score)} = 100)",
                  _fmt(z.value, "{:.1f}"), f"{_fmt(z.low, '{:.1f}')} – {_fmt(z.high, '{:.1f}')}")
    for key, value in result.secondary.items():
        if key != result.metric:
            table.add_row(key.replace("_", " "), _fmt(value), "")
    console.print(table)
    if s.value > result.reference_score and result.policy_name != definition.reference.name:
        console.print(f"{result.policy} beats the reference ({result.reference}) on {result.task}.", highlight=False)
    unofficial = "" if result.official else " (not the task's own held-out set: not official)"
    console.print(f"evaluated in {result.wall_seconds:.1f} s; result: {path}{unofficial}", highlight=False)
