"""``recoworld calibrate``, ``recoworld align`` and ``recoworld fidelity``: the commands over real data
(users fitted to logged interactions, Mirroring Users, the simulator against held-out people).
``recoworld.cli`` registers them on its app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from recoworld.cli_output import fail, make_console


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


def _calibration_config(label: str, holdout: float, factors: str, l2: str, recency: str, dynamics: bool, users: Optional[int] = None):
    from pydantic import ValidationError

    from recoworld.scenario import format_validation_error
    from recoworld.users.calibration import CalibrationConfig

    try:
        return CalibrationConfig(label=label, holdout=holdout, factors=[int(v) for v in _floats(factors, "--factors")],
                                 l2=_floats(l2, "--l2"), recency=_floats(recency, "--recency"), fit_dynamics=dynamics, users=users)
    except ValidationError as err:
        raise fail(format_validation_error(err, "calibration"))


USERS_HELP = "Calibrate on this many users, drawn within activity strata (for logs too large to fit whole; default: all)."
TORCH_HINT = "calibration needs torch for its solver (pip install 'recoworld[rl]')"


def _calibrating(work):
    """``work()`` with every stage shown (bar on a terminal, a line per stage when piped); bad input, a missing
    file or a missing torch end in one line."""
    from recoworld.progress import reporting

    try:
        with reporting():
            return work()
    except ImportError as exc:
        raise fail(f"{TORCH_HINT}: {str(exc).splitlines()[0]}")
    except (ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0])


DATA_HELP = ("A data set: MovieLens folder, ML-100K folder (u.data), RecBole atomic folder or .inter file, KuaiRec/KuaiRand "
             "folder, Amazon-reviews .jsonl, or an interactions CSV/Parquet file (then give --items).")


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
    users: Optional[int] = typer.Option(None, "--users", help=USERS_HELP),
) -> None:
    """Fit parametric users to logged interactions and report their held-out fidelity."""
    from recoworld.users.calibration import calibrate_dataset

    check_paths(DATASET=dataset, __items=items)
    config = _calibration_config(label, holdout, factors, l2, recency, dynamics, users)
    result = _calibrating(lambda: calibrate_dataset(dataset, items, config, seed=seed))
    try:
        path = result.save(out)
    except OSError as exc:
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
    users: Optional[int] = typer.Option(None, "--users", help=USERS_HELP),
) -> None:
    """Score calibrated user backends and baselines against real held-out behaviour (every protocol, one split)."""
    from recoworld.fidelity.baselines import BASELINES, use_baseline
    from recoworld.fidelity.suite import fidelity_suite, format_tables

    check_paths(DATASET=dataset, __items=items)
    config = _calibration_config(label, holdout, factors, l2, recency, True, users)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in ("parametric", "hybrid", "llm")]
    if unknown or not names:
        raise fail(f"--backends: unknown backend '{(unknown or [''])[0]}' (expected parametric, hybrid or llm)")
    added = False
    if sasrec and "sasrec" not in BASELINES:
        try:
            use_baseline("sasrec")
        except ImportError:
            typer.echo("SASRec baseline skipped: torch is not installed (pip install 'recoworld[rl]')", err=True)
        else:
            added = True
    ratio_list = [int(v) for v in _floats(ratios, "--ratios")]
    try:
        report, calibration = _calibrating(lambda: fidelity_suite(dataset, items, config, {b: None for b in names}, ratio_list, seed))
    finally:
        if added:
            BASELINES.pop("sasrec", None)
    typer.echo(format_tables(report))
    if out is not None:
        calibration.save(out)
    if json_out is not None:
        json_out.write_text(report.model_dump_json(indent=2))
