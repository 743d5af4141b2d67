"""The `recoworld` command line, driven through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from recoworld.cli import app
from recoworld.scenario import parse_overrides
from recoworld.scenario import load_scenario

SMALL = ["--users", "30", "--days", "3"]


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # `recoworld run` writes its logs under ./runs by default




def test_run_quickstart_prints_a_row_per_recommender(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL])
    assert result.exit_code == 0, result.output
    for spec in load_scenario("quickstart").recommenders:
        assert spec.name in result.stdout
    for title in ("CTR", "churn", "compliance"):
        assert title in result.stdout


def test_run_with_set_override(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--set", "env.slate_size=5", "--set", "seed=3"])
    assert result.exit_code == 0, result.output
    assert "greedy" in result.stdout


def test_misspelt_set_key_is_one_line_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--set", "env.slat_size=5"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "env.slat_size" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("bad", ["noequals", "=5", "env..x=1"])
def test_malformed_set_is_one_line_error(runner: CliRunner, bad: str) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--set", bad])
    assert result.exit_code == 2
    assert len(error_lines(result)) == 1 and "--set" in result.stderr


def test_unknown_scenario_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "no_such_scenario"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "no_such_scenario" in lines[0]


def test_unknown_recommender_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--set", "recommenders=[{name: nope}]"])
    assert result.exit_code == 2
    assert "nope" in result.stderr and len(error_lines(result)) == 1


def test_scenario_from_yaml_path(runner: CliRunner, tmp_path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "catalog": {"synthetic": {"n_items": 300}}, "recommenders": [{"name": "popular"}]}))
    result = runner.invoke(app, ["run", str(path), "--users", "10", "--days", "2"])
    assert result.exit_code == 0, result.output
    assert "popular" in result.stdout and "tiny" in result.stdout


def test_schema_is_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "properties" in schema and "env" in schema["properties"]


def test_scenarios_lists_quickstart(runner: CliRunner) -> None:
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0
    assert "quickstart" in result.stdout


def test_json_output(runner: CliRunner, tmp_path) -> None:
    out = tmp_path / "summary.json"
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert list(data) == [spec.name for spec in load_scenario("quickstart").recommenders]
    assert 0.0 <= data["greedy"]["ctr"] <= 1.0


def test_parse_overrides_types() -> None:
    assert parse_overrides(["env.slate_size=5", "env.observe_text=true", "name=x", "users.taste_noise=0.2"]) == {
        "env": {"slate_size": 5, "observe_text": True},
        "name": "x",
        "users": {"taste_noise": 0.2},
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["--set", "env.slat_size=5"], "env.slat_size"),
        (["--set", "env.max_slates_per_session=many"], "env.max_slates_per_session"),
        (["--set", "users.segments=[{name: a, size: -5}]"], "users.segments.0.size"),
        (["--set", "recommenders=[{name: greedy}, {name: nope}]"], "recommenders.1.name"),
        (["--set", "catalog.source=items", "--set", "catalog.path=missing/items.csv"], "catalog.path"),
        (["--set", "users.source=logs", "--set", "users.logs.interactions=missing.csv"], "users.logs.interactions"),
        (["--set", "run.engine=spark"], "run.engine"),
    ],
)
def test_bad_scenarios_fail_before_simulating_with_one_line(runner: CliRunner, tmp_path, overrides, field) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, *overrides])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and field in lines[0], lines
    assert not (tmp_path / "runs").exists()  # nothing was simulated or written


def test_schema_validates_every_bundled_scenario(runner: CliRunner) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    from recoworld.scenario import bundled_scenarios

    schema = json.loads(runner.invoke(app, ["schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for name in bundled_scenarios():
        data = yaml.safe_load(resources.files("recoworld.scenarios").joinpath(f"{name}.yaml").read_text())
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, (name, errors)
    assert list(validator.iter_errors({"env": {"slate_size": "ten"}}))  # and it does reject bad ones
    assert list(validator.iter_errors({"unknown": 1}))


def test_run_writes_logs_to_the_run_folder(runner: CliRunner, tmp_path) -> None:
    result = runner.invoke(app, ["run", "quickstart", *SMALL, "--set", "recommenders=[{name: greedy}]"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "runs" / "quickstart" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["arms"] == ["greedy"]
    assert "impressions" in result.stdout
