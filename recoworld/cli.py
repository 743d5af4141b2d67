"""The ``recoworld`` command: run scenarios, list the bundled ones, print the scenario schema."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recoworld.cli_data import align, calibrate, fidelity
from recoworld.cli_evaluate import evaluate as evaluate_command
from recoworld.cli_output import err_console, fail, make_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="RecoWorld: a simulated world for recommender systems.",
)
app.command()(__import__("recoworld.cli_serve", fromlist=["serve"]).serve)  # `recoworld serve` (openenv loads when it runs)
app.command("serve-policy")(__import__("recoworld.cli_serve_policy", fromlist=["serve_policy"]).serve_policy)  # a policy over HTTP


# (summary key, column title, format)
COLUMNS: list[tuple[str, str, str]] = [
    ("ctr", "CTR", "{:.3f}"),
    ("first_session_ctr", "1st-session\nCTR", "{:.3f}"),
    ("clicks_per_user", "clicks\n/user", "{:.1f}"),
    ("watch_minutes_per_user", "watch min\n/user", "{:.1f}"),
    ("slates_per_session", "slates\n/session", "{:.2f}"),
    ("days_active", "days\nactive", "{:.2f}"),
    ("churn_rate", "churn\nrate", "{:.1%}"),
    ("instructions_per_user", "instructions\n/user", "{:.2f}"),
    ("compliance", "compliance", "{:.2f}"),
]


def _fmt(value: float, spec: str) -> str:
    return "–" if isinstance(value, float) and math.isnan(value) else spec.format(value)


@app.command()
def run(
    ctx: typer.Context,
    scenario: str = typer.Argument(..., help="Bundled scenario name (see `recoworld scenarios`) or a YAML path."),
    users: Optional[int] = typer.Option(None, "--users", "-n", min=1, help="Users (default: users.n_users)."),
    days: Optional[int] = typer.Option(None, "--days", "-d", min=1, help="Days to simulate (overrides env.horizon_days)."),
    seed: Optional[int] = typer.Option(None, "--seed", "-s", help="Seed (default: the scenario's)."),
    set_: list[str] = typer.Option([], "--set", help="Override a scenario field: key.path=value (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder for logs (default: run.output, else runs/<name>)."),
    resume: bool = typer.Option(False, "--resume", metavar="", help="Continue the run in the output folder from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Replace the run (and its report) already in the output folder."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local or ray (overrides run.engine)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the summaries to this JSON file."),
    no_report: bool = typer.Option(False, "--no-report", metavar="", help="Do not write the report into RUN_FOLDER/report at the end."),
) -> None:
    """Simulate SCENARIO day by day; every arm's logs go to the run folder as Parquet per day, then the report."""
    from recoworld.console import DayProgress
    from recoworld.runs.guards import FallbackStop
    from recoworld.logs.disk import DiskFull
    from recoworld.logs.lock import describe_stale, run_lock
    from recoworld.runs.runner import PopulationRun
    from recoworld.scenario import load_scenario, parse_overrides

    try:
        overrides = parse_overrides(set_)
        for key, value in (("users", {"n_users": users}), ("env", {"horizon_days": days}), ("run", {"engine": engine})):
            if next(iter(value.values())) is not None:
                overrides[key] = {**overrides.get(key, {}), **value}
        if seed is not None:
            overrides["seed"] = seed
        scn = load_scenario(scenario, overrides)
        folder = out or Path(scn.run.output or Path("runs") / scn.name)
        scn = load_scenario(scn, {"run": {"output": str(folder)}})
        horizon, console = scn.env.horizon_days, make_console()
        lock = ctx.with_resource(run_lock(folder))  # held until the report is written: one live run per folder
        if lock.stale is not None:
            console.print(f"note: {describe_stale(lock)}", markup=False, highlight=False)
        check_run_folder(folder, resume, overwrite)
        arms = ", ".join(r.label for r in scn.recommenders)
        console.print(
            f"[bold]{escape(scn.name)}[/]: {scn.users.n_users} users × {horizon} days, arms {escape(arms)} "
            f"({scn.run.assignment}), {scn.creators.count} creators, engine {scn.run.engine}, seed {scn.seed}"
        )
        runner = PopulationRun(scn)  # checks an LLM's model, key and endpoint before anything is simulated
        with DayProgress(console, horizon, llm=scn.users.backend != "parametric") as progress:
            runner.on_day = lambda d: progress.day_done(d + 1, runner)
            runner.on_resume = progress.resumed
            result = runner.run(resume=resume)
    except FallbackStop as exc:
        raise fail(f"{exc}; the run stopped with its last checkpoint kept: fix the LLM, then rerun with --resume "
                   f"(logs: {folder})", code=3)
    except DiskFull as exc:  # the run stopped with what it wrote kept: resumable once there is room
        raise fail(str(exc), code=3)
    except (ValueError, OSError) as exc:  # ScenarioError is a ValueError
        raise fail(str(exc))
    summaries = result.summaries()
    n_users = len(next(iter(result.arms.values())).totals["click"])
    table = Table(title=f"{escape(scn.name)}: population means over {n_users} users per arm, {horizon} days", box=box.SIMPLE_HEAD)
    table.add_column("arm", style="bold", no_wrap=True, min_width=max(len(k) for k in summaries))
    for _key, title, _spec in COLUMNS:
        table.add_column(title, justify="right", overflow="fold")
    for label, summary in summaries.items():
        table.add_row(escape(label), *(_fmt(summary[key], spec) for key, _title, spec in COLUMNS))
    console.print(table)
    rows = {}
    for f in result.manifest.files:
        rows[f.table] = rows.get(f.table, 0) + f.rows
    console.print(f"logs: {result.output} ({', '.join(f'{n:,} {t}' for t, n in rows.items())})", highlight=False)

    if json_path is not None:
        clean = {k: {m: (None if isinstance(v, float) and math.isnan(v) else v) for m, v in s.items()} for k, s in summaries.items()}
        try:
            json_path.write_text(json.dumps(clean, indent=2) + "\n")
        except OSError as exc:
            raise fail(f"--json: {exc}")
        console.print(f"summaries written to {json_path}")

    if not no_report and result.output is not None:
        console.print("writing the report (bootstrap intervals and plots)...", highlight=False)
        try:
            paths = _write_report([Path(result.output)], Path(result.output) / "report", None)
        except (ValueError, OSError, KeyError) as exc:
            raise fail(f"report: {_first_line(exc)} (the logs are complete; retry with `recoworld report {result.output}`)")
        console.print(f"report: {paths.html}", highlight=False)
    if result.manifest.status == "stopped":  # the LLM budget ended the run early: say so, exit non-zero
        console.print(
            f"stopped: {result.manifest.stopped}; {result.manifest.days_completed} of {horizon} days written. "
            "Carry on with a larger budget: the same command with --resume and --set llm.max_calls=... / llm.max_usd=...",
            highlight=False, markup=False,
        )
        raise typer.Exit(code=3)


def check_run_folder(folder: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a folder that already holds something unless ``--resume`` or ``--overwrite`` says how;
    ``--overwrite`` drops the old run's report too (the run itself is cleared by the runner)."""
    from recoworld.logs.lock import LOCK_NAME
    from recoworld.logs.folder import RunFolder

    if resume and overwrite:
        raise ValueError("--resume and --overwrite: choose one")
    run_folder = RunFolder(folder)
    holds_run = run_folder.exists()
    if resume:
        if not holds_run:
            raise ValueError(f"--resume: '{folder}' holds no RecoWorld run to resume")
        return
    if folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir()) and not overwrite:
        if not holds_run:
            raise ValueError(f"run folder '{folder}' is not empty and holds no RecoWorld run; choose another with --out")
        manifest = run_folder.read_manifest()
        state = "complete" if manifest.status == "complete" else "incomplete"
        raise ValueError(f"run folder '{folder}' already holds a run ({manifest.days_completed}/{manifest.days_total} days, "
                         f"{state}); pass --resume to continue it, --overwrite to replace it, or --out for another folder")
    if overwrite and holds_run:
        shutil.rmtree(folder / "report", ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_report(run_dirs: list[Path], out: Path, baseline: Optional[str], seed: int = 0):
    """Load the run folders and write their report; bad logs raise a one-line ``ValueError``."""
    from recoworld.evaluation.data import RunLogs
    from recoworld.evaluation.report import write_report
    from recoworld.progress import reporting

    with reporting():  # the logs are read in named stages (minutes for 100k users)
        return write_report([RunLogs.load(d) for d in run_dirs], out, baseline=baseline, seed=seed)


def default_report_folder(run_dirs: list[Path]) -> Path:
    """Next to the runs read: RUN_DIR/report for one run, report/ in the common parent folder of several."""
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    return Path(os.path.commonpath([str(d.resolve().parent) for d in run_dirs])) / "report"


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Run folder(s) written by `recoworld run`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: RUN_DIR/report for one run, "
                                       "report/ in the runs' common parent folder for several)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b", help="Arm the others are compared with (default: the first; <run>/<arm> with several runs)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed of the bootstrap resamples."),
) -> None:
    """Write the HTML report, Markdown summary, metrics JSON and plots of one or several runs."""
    folder = out or default_report_folder(run_dirs)
    make_console().print(f"writing the report of {', '.join(map(str, run_dirs))} (bootstrap intervals and plots)...",
                         highlight=False, markup=False)
    try:
        paths = _write_report(run_dirs, folder, baseline, seed)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise fail(_first_line(exc))
    except KeyError as exc:  # a column beyond the required ones that a metric needs
        raise fail(f"the logs lack a column the report needs: {_first_line(exc)}")
    console = make_console()
    for note in paths.notes:
        console.print(f"note: {note}", style="yellow", markup=False, highlight=False)
    console.print(f"report: {paths.html}\nsummary: {paths.markdown}\nmetrics: {paths.metrics}", highlight=False, markup=False)


@app.command()
def scenarios() -> None:
    """List the bundled scenarios."""
    from recoworld.scenario import bundled_scenarios, load_scenario

    table = Table("name", "description")
    for name in bundled_scenarios():
        table.add_row(name, " ".join(load_scenario(name).description.split()))
    Console().print(table)


@app.command()
def schema() -> None:
    """Print the JSON schema of a scenario file."""
    from recoworld.scenario import Scenario

    typer.echo(json.dumps(Scenario.model_json_schema(), indent=2))


@app.command()
def train(
    timesteps: int = typer.Option(200_000, "--timesteps", "-t", min=1, help="Training steps."),
    algo: str = typer.Option("ppo", "--algo", help="ppo or a2c (SB3)."),
    users: int = typer.Option(200, "--users", "-n", min=1, help="Held-out users per policy."),
    out: Optional[Path] = typer.Option(None, "--out", help="Save the trained model here (SB3 zip)."),
    scenario: str = typer.Option("quickstart", "--scenario", help="Bundled scenario name or a YAML path."),
    seed: int = typer.Option(0, "--seed", "-s", help="Training seed."),
    baselines: str = typer.Option("random,popular,greedy,mmr,linucb", "--baselines", help="Comma-separated recommenders."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field: key.path=value (repeatable)."),
    precision: str = typer.Option("float32", "--precision", help="The slate policy's precision: float32, or bfloat16 "
                                  "(CPU autocast: about 1.5x faster training on CPUs with AVX-512 BF16 or AMX)."),
) -> None:
    """Train an RL recommender for retention (needs the rl extra) and compare it with baselines on held-out users."""
    from recoworld.progress import reporting

    try:
        from recoworld.agents.rl_vs_baselines import compare, format_table
        from recoworld.scenario import parse_overrides

        with reporting():
            report = compare(timesteps, algo, users, out, scenario, parse_overrides(set_), seed,
                             [b for b in baselines.split(",") if b], progress=False,
                             train_kwargs={"policy_kwargs": {"precision": precision}} if precision != "float32" else None)
    except ImportError as exc:
        raise fail(f"train: needs the rl extra (pip install 'recoworld[rl]'): {exc}")
    except (ValueError, OSError) as exc:
        raise fail(str(exc))
    console = make_console()
    if report["train"].get("saved_to"):
        console.print(f"model saved to {report['train']['saved_to']}", markup=False, highlight=False)
    console.print(format_table(report["results"]), markup=False, highlight=False)


app.command()(calibrate)
app.command()(align)
app.command()(fidelity)
app.command("evaluate")(evaluate_command)


def _register_extras() -> None:
    from recoworld.cli_agents import register

    register(app, fail)


_register_extras()

if __name__ == "__main__":  # pragma: no cover
    app()
