"""What `recoworld` says: file errors that name the file, plain progress lines when output is piped,
a visible step while the report is written."""

from __future__ import annotations

from typer.testing import CliRunner

from recoworld.cli import app

runner = CliRunner()


def test_calibrate_names_the_missing_file(tmp_path) -> None:
    inter = tmp_path / "inter.csv"
    inter.write_text("user,item,rating,timestamp\n1,2,5,100\n")
    missing = tmp_path / "items.csv"
    result = runner.invoke(app, ["calibrate", str(inter), "--items", str(missing)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == [f"error: --items: {missing}: no such file or directory"]
    result = runner.invoke(app, ["calibrate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and str(tmp_path / "nope.csv") in result.stderr


def test_piped_progress_prints_a_plain_line_per_day_and_the_report_step(tmp_path) -> None:
    result = runner.invoke(app, ["run", "quickstart", "--users", "20", "--days", "3", "--set", "recommenders=[{name: greedy}]",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith("simulating:")] == [
        "simulating: 1/3 days", "simulating: 2/3 days", "simulating: 3/3 days"]
    assert any(line.startswith("writing the report") for line in lines)
    assert "\x1b[" not in result.stdout  # no terminal control codes in a pipe
