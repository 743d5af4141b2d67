"""`recoworld run` and `recoworld report` never overwrite a run folder without being told to."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoworld.cli import app
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario

SMALL = ["--users", "30", "--days", "3", "--set", "recommenders=[{name: greedy}, {name: popular}]"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_run_into_a_full_folder_is_refused_and_nothing_is_lost(runner: CliRunner, tmp_path) -> None:
    out = tmp_path / "run"
    first = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(out)])
    assert first.exit_code == 0, first.output
    before = hashes(out)
    assert any(name.startswith("report/") for name in before)
    second = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(out), "--seed", "5"])
    assert second.exit_code == 2
    lines = error_lines(second)
    assert len(lines) == 1 and "--resume" in lines[0] and "--overwrite" in lines[0] and "3/3 days, complete" in lines[0]
    assert hashes(out) == before
    replaced = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(out), "--seed", "5", "--overwrite", "--no-report"])
    assert replaced.exit_code == 0, replaced.output
    assert not (out / "report").exists()  # the old run's report went with it
    assert hashes(out)["manifest.json"] != before["manifest.json"]


def test_resume_and_overwrite_together_are_refused(runner: CliRunner, tmp_path) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(tmp_path / "r"), "--resume", "--overwrite"])
    assert result.exit_code == 2 and error_lines(result) == ["error: --resume and --overwrite: choose one"]


def _stopped_run(out: Path) -> None:
    """A run of the CLI's scenario stopped after day 1 (as if killed): the checkpoint says day 2 comes next."""
    scn = load_scenario("quickstart", {"users": {"n_users": 30}, "env": {"horizon_days": 3}, "run": {"output": str(out)},
                                       "recommenders": [{"name": "greedy"}, {"name": "popular"}]})

    def stop(day: int) -> None:
        if day == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PopulationRun(scn, on_day=stop).run()


def test_an_interrupted_run_is_not_restarted_silently_and_resumes_from_its_day(runner: CliRunner, tmp_path) -> None:
    out = tmp_path / "run"
    _stopped_run(out)
    refused = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(out)])
    assert refused.exit_code == 2 and "2/3 days, incomplete" in refused.stderr and "--resume" in refused.stderr
    resumed = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(out), "--resume", "--no-report"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from day 2 of 3" in resumed.stdout


def test_a_refused_resume_names_the_changed_field(runner: CliRunner, tmp_path) -> None:
    out = tmp_path / "run"
    _stopped_run(out)
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(out), "--resume", "--set", "env.slate_size=5"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "env.slate_size: 10 -> 5" in lines[0], lines


def test_resume_flag_takes_no_value_in_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    line = next(line for line in result.stdout.splitlines() if "--resume" in line)
    assert "BOOL" not in line.upper().replace("--RESUME", "")


def test_report_is_written_next_to_the_runs_it_reads(runner: CliRunner, tmp_path, monkeypatch) -> None:
    for name in ("a", "b"):
        result = runner.invoke(app, ["run", "quickstart", *SMALL, "--out", str(tmp_path / "runs" / name), "--no-report"])
        assert result.exit_code == 0, result.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["report", str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "report" / "index.html").exists() or any((tmp_path / "runs" / "report").iterdir())
    assert not (elsewhere / "report").exists()
