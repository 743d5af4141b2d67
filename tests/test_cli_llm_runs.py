"""LLM runs fail loudly: a bad configuration before simulating, a run whose calls fail stops resumably,
and the command-line test server answers a real LLM-user run with no fallbacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from recoworld.cli import app
from recoworld.runs.guards import FallbackStop, FallbackWindow
from recoworld.logs.folder import read_table
from recoworld.testing.responders import plausible_answer

ONE_ARM = ["--set", "recommenders=[{name: greedy}]"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def llm_args(url: str, *extra: str) -> list[str]:
    return ["--set", "users.backend=llm", "--set", "llm.model=openai/test-model", "--set", f"llm.api_base={url}",
            "--set", "llm.max_retries=0", *ONE_ARM, *extra]


def test_an_llm_run_without_a_key_fails_before_simulating_in_one_line(runner: CliRunner, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "quickstart", "--users", "5", "--days", "1", "--set", "users.backend=llm",
                                 "--out", str(out)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "OPENAI_API_KEY" in lines[0], result.output
    assert not out.exists()  # nothing simulated, nothing written


def test_an_endpoint_that_does_not_answer_fails_before_simulating(runner: CliRunner, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "anything")
    result = runner.invoke(app, ["run", "quickstart", "--users", "5", "--days", "1", *llm_args("http://127.0.0.1:9/v1"),
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "llm.api_base: nothing answers at http://127.0.0.1:9/v1" in result.stderr
    unknown = runner.invoke(app, ["run", "quickstart", "--users", "5", "--days", "1", "--set", "users.backend=llm",
                                  "--set", "llm.model=gpt-nonsense-9", "--out", str(tmp_path / "run")])
    assert unknown.exit_code == 2 and "llm.model: 'gpt-nonsense-9' is not a litellm model string" in unknown.stderr


def test_a_run_whose_llm_calls_all_fail_stops_non_zero_and_resumes(runner: CliRunner, tmp_path, llm_server) -> None:
    llm_server.responder = plausible_answer
    broken = {"on": True}
    llm_server.fault = lambda n, body: ("status", 500) if broken["on"] else None
    out = tmp_path / "run"
    args = ["run", "quickstart", "--users", "8", "--days", "2", *llm_args(llm_server.base_url, "--set", "llm.fallback_window=20"),
            "--out", str(out), "--no-report"]
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 3, stopped.output
    assert "fell back to the parametric model on day 0" in stopped.stderr and "--resume" in stopped.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["days_completed"] == 0
    assert (out / "checkpoint.pkl").exists()

    broken["on"] = False  # the server is fixed: the run carries on from its checkpoint
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from day 0 of 2" in resumed.stdout and "LLM fallbacks 0.0%" in resumed.stdout
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert not read_table(out, "impressions", ["user_fallback"])["user_fallback"].any()


def test_the_command_line_test_server_answers_an_llm_user_run_with_no_fallbacks(tmp_path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "recoworld.testing.fake_server"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert "openai/<any name>" in server.stderr.readline()
        env = {"OPENAI_API_KEY": "any-value", "PATH": "", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        run = subprocess.run([sys.executable, "-m", "recoworld.cli", "run", "quickstart", "--users", "6", "--days", "2",
                              *llm_args(url), "--out", str(tmp_path / "run"), "--no-report"],
                             capture_output=True, text=True, env=env, timeout=600)
    finally:
        server.terminate()
        server.wait()
    assert run.returncode == 0, run.stderr
    impressions = read_table(tmp_path / "run", "impressions", ["user_fallback"])
    calls = read_table(tmp_path / "run", "llm")["calls"].sum()
    assert len(impressions) > 0 and calls > 0 and not impressions["user_fallback"].any()


def test_fake_server_help_says_how_to_point_a_run_at_it() -> None:
    text = subprocess.run([sys.executable, "-m", "recoworld.testing.fake_server", "--help"], capture_output=True,
                          text=True, timeout=60).stdout
    assert "prints its URL" in text and "openai/<any name>" in text and "llm.api_base=" in text and "any value works" in text


def test_the_fallback_window_stops_only_past_the_share_over_a_full_window() -> None:
    window = FallbackWindow(0.5, 10)
    for _ in range(4):
        window.add(2, 2)  # 8 decisions, all fell back: the window is not full yet
    with pytest.raises(FallbackStop, match="80% of the last 10"):
        window.add(2, 0)  # 10 decisions, 8 fell back
    calm = FallbackWindow(0.5, 10)
    for _ in range(20):
        calm.add(2, 1)  # exactly half: not past the threshold
    FallbackWindow(None, 1).add(5, 5)  # no threshold: never stops
