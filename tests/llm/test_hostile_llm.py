"""The LLM layer under attack: retries bounded in every run mode, usage of invalid answers counted,
budgets never overshot by retries, Retry-After honoured, refused connections, wrong item counts,
and a budget stop that leaves the run `stopped` and resumes with a larger budget."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest

from recoworld.llm.base import LLMBudgetExceeded, LLMConfigError, LLMMalformedOutput, LLMServerError
from recoworld.llm.config import LLMConfig, build_language_model, wrapper_chain
from recoworld.llm.scripted import ScriptedModel
from recoworld.llm.wrappers import RetryingModel
from recoworld.logs.folder import RunFolder, read_table
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import deep_merge, load_scenario
from tests.users.test_llm_users import decision, make_env

MODEL = "openai/test-model"
RUN = {
    "name": "hostile", "seed": 3,
    "catalog": {"synthetic": {"n_items": 300, "n_topics": 6, "n_creators": 10}},
    "env": {"num_candidates": 20, "slate_size": 3, "horizon_days": 3, "max_slates_per_session": 3},
    "users": {"n_users": 6, "backend": "llm"},
    "creators": {"count": 0},
    "recommenders": [{"name": "greedy"}],
}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retries wait 0 s (the jitter is drawn from [0, 0]); Retry-After still shows in the sleeps."""
    monkeypatch.setattr(RetryingModel, "backoff_cap", lambda self, retry: 0.0)


def prompt_key(messages) -> str:
    return json.dumps(messages, sort_keys=True)


def attempts_per_prompt(prompts: list[str]) -> Counter:
    return Counter(prompts)


# -- one retry stack ---------------------------------------------------------------------------


def test_population_run_builds_one_stack_and_attempts_stay_within_max_retries_plus_one(tmp_path):
    seen: list[str] = []

    def down(messages, schema):
        seen.append(prompt_key(messages))
        return LLMServerError("503")

    scn = load_scenario(deep_merge(RUN, {"llm": {"max_retries": 2}, "env": {"horizon_days": 1}}))
    run = PopulationRun(scn, output=tmp_path / "run", language_model=ScriptedModel(down))
    assert run._backend().model is run._model  # the user backend reuses the runner's stack
    assert sum(isinstance(m, RetryingModel) for m in wrapper_chain(run._model)) == 1
    run.run()
    counts = attempts_per_prompt(seen)
    assert len(counts) > 5 and max(counts.values()) == 3 == min(counts.values())
    imp = read_table(tmp_path / "run", "impressions")
    assert imp["user_fallback"].all()  # every failed call fell back; no slate was lost


def test_population_run_against_a_failing_server_never_exceeds_max_retries_plus_one(tmp_path, llm_server):
    llm_server.fault = lambda n, body: ("status", 500)
    scn = load_scenario(deep_merge(RUN, {"env": {"horizon_days": 1}, "llm": {
        "model": MODEL, "api_base": llm_server.base_url, "max_retries": 1}}))
    PopulationRun(scn, output=tmp_path / "run").run()
    counts = attempts_per_prompt([prompt_key(body["messages"]) for body in llm_server.requests])
    assert len(counts) > 3 and max(counts.values()) == 2


def test_gym_env_attempts_stay_within_max_retries_plus_one():
    seen: list[str] = []

    def down(messages, schema):
        seen.append(prompt_key(messages))
        return LLMServerError("503")

    env = make_env(ScriptedModel(down), llm={"max_retries": 3})
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["llm"]["fallback"] and max(attempts_per_prompt(seen).values()) == 4


def test_a_stack_is_never_wrapped_twice():
    stack = build_language_model(LLMConfig(max_retries=2), inner=ScriptedModel(lambda m, s: {"text": "x"}))
    assert build_language_model(LLMConfig(max_retries=5), inner=stack) is stack
    with pytest.raises(ValueError, match="already retries"):
        build_language_model(LLMConfig(), inner=RetryingModel(ScriptedModel(lambda m, s: {})))


# -- usage before parsing, budgets per request --------------------------------------------------


class Answer(__import__("pydantic").BaseModel):
    text: str


def test_usage_and_cost_of_invalid_answers_are_counted():
    inner = ScriptedModel(lambda m, s: '{"nope": 1}', tokens_per_call=(50, 10), usd_per_call=0.01)
    model = build_language_model(LLMConfig(max_retries=2), inner=inner)
    with pytest.raises(LLMMalformedOutput):
        model.generate([{"role": "user", "content": "hi"}], Answer)
    assert inner.calls == 3
    assert model.total.calls == 3 and model.total.prompt_tokens == 150
    assert model.total.cost_usd == pytest.approx(0.03)
    assert model.errors == {"LLMMalformedOutput": 1}


def test_valid_answer_after_invalid_ones_carries_their_cost():
    answers = iter(['{"nope": 1}', '{"text": "ok"}'])
    inner = ScriptedModel(lambda m, s: next(answers), usd_per_call=0.01)
    model = build_language_model(LLMConfig(max_retries=2), inner=inner)
    generation = model.generate([{"role": "user", "content": "hi"}], Answer)
    assert generation.value.text == "ok" and generation.usage.calls == 2
    assert model.total.cost_usd == pytest.approx(0.02)


def test_max_calls_bounds_http_requests_including_retries(llm_server):
    llm_server.fault = lambda n, body: ("status", 500)
    model = build_language_model(LLMConfig(model=MODEL, api_base=llm_server.base_url, max_retries=3, max_calls=5))
    errors = []
    for i in range(6):
        try:
            model.generate([{"role": "user", "content": f"q{i}"}], Answer)
        except (LLMServerError, LLMBudgetExceeded) as exc:
            errors.append(type(exc).__name__)
    assert llm_server.count == 5  # not (3 + 1) * 6 = 24
    assert errors.count("LLMBudgetExceeded") >= 4


def test_max_usd_is_never_passed_by_more_than_the_request_that_crosses_it():
    inner = ScriptedModel(lambda m, s: "not json", usd_per_call=0.01)
    model = build_language_model(LLMConfig(max_retries=5, max_usd=0.025), inner=inner)
    for i in range(4):
        with pytest.raises((LLMMalformedOutput, LLMBudgetExceeded)):
            model.generate([{"role": "user", "content": f"q{i}"}], Answer)
    assert inner.calls == 3 and model.total.cost_usd == pytest.approx(0.03)


# -- what the server says -----------------------------------------------------------------------


def test_retry_after_is_honoured_on_429(llm_server):
    llm_server.responder = lambda body: '{"text": "ok"}'
    llm_server.fault = lambda n, body: ("status", 429, None, {"Retry-After": "3"}) if n == 0 else None
    model = build_language_model(LLMConfig(model=MODEL, api_base=llm_server.base_url, max_retries=2))
    slept: list[float] = []
    model.inner.sleep = slept.append
    assert model.generate([{"role": "user", "content": "hi"}], Answer).value.text == "ok"
    assert slept == [3.0] and llm_server.count == 2


def test_a_refused_connection_is_a_configuration_error_and_not_retried(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = build_language_model(LLMConfig(model=MODEL, api_base=f"http://127.0.0.1:{port}/v1", max_retries=3))
    with pytest.raises(LLMConfigError, match="refused"):
        model.generate([{"role": "user", "content": "hi"}], Answer)
    assert model.inner.attempts == 1


def test_a_wrong_item_count_is_retried():
    answers = []

    def respond(messages, schema):
        answers.append(1)
        full = decision(messages, click=(0,))
        if len(answers) == 1:
            full["items"] = full["items"][:1]  # one decision for the whole slate, no leave
        return full

    model = ScriptedModel(respond)
    env = make_env(model, llm={"max_retries": 1})
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert not info["llm"]["fallback"] and model.calls == 2


# -- a budget stop --------------------------------------------------------------------------------


def test_budget_stop_leaves_the_run_stopped_and_resumes_with_a_larger_budget(tmp_path):
    respond = lambda m, s: decision(m, click=(0,))  # noqa: E731
    out = tmp_path / "run"
    small = load_scenario(deep_merge(RUN, {"llm": {"max_calls": 8, "max_retries": 0}}))
    result = PopulationRun(small, output=out, language_model=ScriptedModel(respond)).run()
    manifest = RunFolder(out).read_manifest()
    assert manifest.status == "stopped" and "budget" in manifest.stopped
    assert manifest.days_completed < 3 and result.manifest.status == "stopped"
    larger = load_scenario(deep_merge(RUN, {"llm": {"max_calls": 10_000, "max_retries": 0}}))
    PopulationRun(larger, output=out, language_model=ScriptedModel(respond)).run(resume=True)
    manifest = RunFolder(out).read_manifest()
    assert manifest.status == "complete" and manifest.days_completed == 3 and manifest.stopped == ""
    assert sorted(read_table(out, "sessions")["day"].unique()) == [0, 1, 2]


def test_budget_stop_says_so_on_the_console_and_exits_non_zero(tmp_path, llm_server, monkeypatch):
    from typer.testing import CliRunner

    from recoworld.cli import app

    monkeypatch.chdir(tmp_path)
    llm_server.responder = lambda body: json.dumps(decision(body["messages"], click=(0,)))
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(deep_merge(RUN, {"llm": {"model": MODEL, "api_base": llm_server.base_url,
                                                        "max_retries": 0, "max_calls": 6}})))
    args = ["run", str(path), "--out", "r", "--no-report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "stopped: the LLM budget ran out" in result.output
    resumed = CliRunner().invoke(app, [*args, "--resume", "--set", "llm.max_calls=10000"])
    assert resumed.exit_code == 0, resumed.output
    assert RunFolder(tmp_path / "r").read_manifest().status == "complete"
