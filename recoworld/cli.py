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

from recoworld.cli_evaluate import evaluate as evaluate_command
from recoworld.cli_output import err_console, fail, make_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="RecoWorld: a simulated world for recommender systems.",
)
app.command()(__import__("recoworld.cli_serve", fromlist=["serve"]).serve)  # `recoworld serve` (openenv loads when it runs)


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
) -> None:
    """Train an RL recommender for retention (needs the rl extra) and compare it with baselines on held-out users."""
    from recoworld.progress import reporting

    try:
        from recoworld.agents.train import compare, format_table
        from recoworld.scenario import parse_overrides

        with reporting():
            report = compare(timesteps, algo, users, out, scenario, parse_overrides(set_), seed,
                             [b for b in baselines.split(",") if b], progress=False)
    except ImportError as exc:
        raise fail(f"train: needs the rl extra (pip install 'recoworld[rl]'): {exc}")
    except (ValueError, OSError) as exc:
        raise fail(str(exc))
    console = make_console()
    if report["train"].get("saved_to"):
        console.print(f"model saved to {report['train']['saved_to']}", markup=False, highlight=False)
    console.print(format_table(report["results"]), markup=False, highlight=False)


def check_paths(**paths: Optional[Path]) -> None:
    """One line naming the option and the file when a given input path does not exist."""
    for option, path in paths.items():
        if path is not None and not path.exists():
            raise fail(f"{option.replace('_', '-')}: {path}: no such file or directory")


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(f"{name}: expected comma-separated numbers, got '{text}'") from None


def _calibration_config(label: str, holdout: float, factors: str, l2: str, recency: str, dynamics: bool):
    from pydantic import ValidationError

    from recoworld.scenario import format_validation_error
    from recoworld.users.calibration import CalibrationConfig

    try:
        return CalibrationConfig(label=label, holdout=holdout, factors=[int(v) for v in _floats(factors, "--factors")],
                                 l2=_floats(l2, "--l2"), recency=_floats(recency, "--recency"), fit_dynamics=dynamics)
    except ValidationError as err:
        raise fail(format_validation_error(err, "calibration"))


DATA_HELP = ("A data set: MovieLens folder, ML-100K folder (u.data), RecBole atomic folder or .inter file, KuaiRec/KuaiRand "
             "folder, Amazon-reviews .jsonl, or an interactions CSV/Parquet file (then give --items).")


@app.command()
def calibrate(
    dataset: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(Path("calibration.parquet"), "--out", "-o", help="Calibration file to write."),
    items: Optional[Path] = typer.Option(None, "--items", help="Items file the interactions refer to."),
    label: str = typer.Option("auto", "--label", help="auto, click, rating or watch_ratio."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of each user's latest interactions held out."),
    factors: str = typer.Option("16,32", "--factors", help="Factor counts tried on the validation split."),
    l2: str = typer.Option("0.03,0.1,0.3", "--l2", help="L2 penalties tried on the validation split."),
    recency: str = typer.Option("0,2", "--recency", help="Recency weights tried on the validation split."),
    dynamics: bool = typer.Option(True, "--dynamics/--no-dynamics", metavar="", help="Fit leaving and return by simulation."),
    seed: int = typer.Option(0, "--seed", "-s", help="Catalog seed (use the same seed in scenarios that load the users)."),
) -> None:
    """Fit parametric users to logged interactions and report their held-out fidelity."""
    from recoworld.users.calibration import calibrate_dataset

    check_paths(DATASET=dataset, __items=items)
    config = _calibration_config(label, holdout, factors, l2, recency, dynamics)
    try:
        result = calibrate_dataset(dataset, items, config, seed=seed)
        path = result.save(out)
    except (ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0])
    fit = result.result
    console = make_console()
    f = fit.fidelity
    table = Table(title=f"held-out fidelity on {fit.dataset} ({f.n_test:,} interactions, {f.users:,} users; engagement rate "
                  f"{f.positive_rate_test:.3f} held out, {f.positive_rate_train:.3f} in training)", box=box.SIMPLE_HEAD)
    for column in ("model", "AUC", "95% CI", "log-loss"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, value in f.auc.items():
        low, high = f.auc_interval.get(model, [float("nan")] * 2)
        table.add_row(model, f"{value:.3f}", f"{low:.3f}-{high:.3f}", f"{f.log_loss[model]:.3f}")
    console.print(table)
    if fit.dynamics is not None:
        jsd = ", ".join(f"{k} {v:.3f}" for k, v in fit.dynamics.jsd.items())
        console.print(f"session dynamics fitted by simulation: JSD {jsd}", highlight=False)
    for rep in fit.replays:
        jsd = ", ".join(f"{k} {v:.3f}" for k, v in rep.jsd.items())
        console.print(f"held-out replay ({rep.backend} users, {rep.slates:,} slates): action F1 {rep.f1:.3f}; JSD {jsd}", highlight=False)
    console.print(f"calibrated users: {path} (use in a scenario: users: {{from_calibration: {path}}})", highlight=False)


@app.command()
def align(
    source: Path = typer.Argument(..., help="A run folder, a RecBole atomic folder, a MovieLens folder, or an interactions file (with --items)."),
    out: Path = typer.Option(Path("align-out"), "--out", "-o", help="Folder for samples, JSONL, the distillation table and the adapter."),
    items: Optional[Path] = typer.Option(None, "--items", help="Items file the interactions refer to."),
    candidates: int = typer.Option(10, "--candidates", "-n", help="Items per exposure list (the chosen one included)."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Training samples kept (seeded draw)."),
    max_test: Optional[int] = typer.Option(None, "--max-test", help="Held-out samples kept (seeded draw)."),
    keep: float = typer.Option(0.5, "--keep", help="Share of the training samples the filter keeps."),
    student: str = typer.Option("smollm2", "--student", help="smollm2 (packaged small LLM) or parametric (no torch)."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="litellm model string of an LLM teacher (default: parametric traces)."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Endpoint of the teacher's server."),
    train: bool = typer.Option(False, "--train", metavar="", help="Tune the small model on the kept samples (LoRA, or a choice head with --objective head)."),
    sft_steps: int = typer.Option(100, "--sft-steps", help="SFT steps with --train."),
    dpo_steps: int = typer.Option(0, "--dpo-steps", help="DPO steps after SFT with --train."),
    objective: str = typer.Option("trace", "--objective", help="trace (the letter, then the trace), choice "
                                  "(the letter only, over shuffled copies of each list, --accum lists a step), or head "
                                  "(a linear choice head on the candidates' hidden states; no LoRA)."),
    accum: int = typer.Option(1, "--accum", help="Choice objective: lists per optimiser step."),
    lr: float = typer.Option(5e-4, "--lr", help="SFT learning rate."),
    noise_floor: float = typer.Option(0.5, "--noise-floor", help="Drop lists where the teacher's p(real choice) < this / N."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed of the sample draws and the training."),
) -> None:
    """Aligned LLM users from logged feedback: samples, decision traces, uncertainty distillation, TRL JSONL (and a LoRA fine-tune)."""
    from recoworld.llm.config import LLMConfig, build_language_model
    from recoworld.progress import reporting
    from recoworld.users.align.api import AlignConfig, align as run_align

    check_paths(SOURCE=source, __items=items)
    try:
        teacher_model = build_language_model(LLMConfig(model=teacher, api_base=api_base)) if teacher else None
        config = AlignConfig.model_validate({
            "samples": {"n_candidates": candidates, "max_train": max_train, "max_test": max_test, "seed": seed},
            "distill": {"keep_share": keep, "noise_floor": noise_floor}, "student": student, "train": train,
            "finetune": {"sft_steps": sft_steps, "dpo_steps": dpo_steps, "seed": seed, "objective": objective,
                         "grad_accum": accum, "sft_lr": lr}})
        with reporting():
            report = run_align(source, out, config, items=items, teacher=teacher_model)
    except ImportError as exc:
        raise fail(f"align: needs the align extra (pip install 'recoworld[align]'): {exc}")
    except (ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0])
    console = make_console()
    console.print(f"traces: {', '.join(f'{k} {v}' for k, v in report.teachers.items())}", highlight=False)
    console.print(f"{report.train_samples:,} training / {report.test_samples:,} held-out samples from {report.source}; "
                  f"kept {report.kept:,} ({report.noisy:,} marked as noise); strata: "
                  + ", ".join(f"{k} {v}" for k, v in report.strata.items()), highlight=False)
    for log in report.training:
        steps = "" if log.stage == "choice-head" else f"{log.steps} steps on "
        console.print(f"{log.stage}: {steps}{log.examples} examples in {log.seconds:.0f} s, "
                      f"loss {log.first_loss:.3f} -> {log.last_loss:.3f}", highlight=False)
    if report.held_out is not None:
        h = report.held_out
        console.print(f"held-out choice accuracy on {h.lists:,} lists (chance {h.chance:.3f}): tuned {h.aligned.value:.3f} "
                      f"[{h.aligned.low:.3f}, {h.aligned.high:.3f}], base {h.base.value:.3f}, parametric {h.parametric.value:.3f}; "
                      f"tuned - base {h.aligned_minus_base.value:+.3f} [{h.aligned_minus_base.low:+.3f}, "
                      f"{h.aligned_minus_base.high:+.3f}]", highlight=False)
    for name, path in report.files.items():
        console.print(f"{name}: {path}", highlight=False)


@app.command()
def fidelity(
    dataset: Path = typer.Argument(..., help=DATA_HELP),
    items: Optional[Path] = typer.Option(None, "--items", help="Items file the interactions refer to."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the calibration file here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report as JSON here."),
    backends: str = typer.Option("parametric", "--backends", help="User backends to score: parametric, hybrid, llm "
                                 "(hybrid and llm use the scenario's llm config: a local model or the scripted double)."),
    ratios: str = typer.Option("1,3,9", "--ratios", help="1:m ratios of the preference-discrimination protocol."),
    label: str = typer.Option("auto", "--label", help="auto, click, rating or watch_ratio."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of each user's latest interactions held out."),
    factors: str = typer.Option("16,32", "--factors", help="Factor counts tried on the validation split."),
    l2: str = typer.Option("0.03,0.1,0.3", "--l2", help="L2 penalties tried on the validation split."),
    recency: str = typer.Option("0,2", "--recency", help="Recency weights tried on the validation split."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed of the catalog, the fits and the protocols."),
    sasrec: bool = typer.Option(True, "--sasrec/--no-sasrec", help="Also score SASRec (needs torch; skipped with a note without it)."),
) -> None:
    """Score calibrated user backends and baselines against real held-out behaviour (every protocol, one split)."""
    from recoworld.evaluation.fidelity import fidelity_suite, format_tables
    from recoworld.users.calibration.fit import BASELINES

    check_paths(DATASET=dataset, __items=items)
    config = _calibration_config(label, holdout, factors, l2, recency, True)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in ("parametric", "hybrid", "llm")]
    if unknown or not names:
        raise fail(f"--backends: unknown backend '{(unknown or [''])[0]}' (expected parametric, hybrid or llm)")
    added = False
    if sasrec and "sasrec" not in BASELINES:
        try:
            from recoworld.agents.sasrec_fidelity import register_sasrec
        except ImportError:
            typer.echo("SASRec baseline skipped: torch is not installed (pip install 'recoworld[rl]')", err=True)
        else:
            register_sasrec()
            added = True
    try:
        report, calibration = fidelity_suite(dataset, items, config, {b: None for b in names},
                                             [int(v) for v in _floats(ratios, "--ratios")], seed)
    except (ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0])
    finally:
        if added:
            BASELINES.pop("sasrec", None)
    typer.echo(format_tables(report))
    if out is not None:
        calibration.save(out)
    if json_out is not None:
        json_out.write_text(report.model_dump_json(indent=2))


app.command("evaluate")(evaluate_command)


def _register_extras() -> None:
    from recoworld.cli_agents import register

    register(app, fail)


_register_extras()

if __name__ == "__main__":  # pragma: no cover
    app()
