"""The LLM layer: litellm adapter against a local server, wrappers, test double.

No network and no API key: the adapter talks to recoworld.testing.fake_server on 127.0.0.1 or uses
litellm's ``mock_response``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pydantic import BaseModel, Field, ValidationError

from recoworld.llm import (
    FAULT_KINDS,
    BudgetedModel,
    CachedModel,
    FaultInjectingModel,
    Generation,
    LanguageModel,
    LiteLLMModel,
    LLMBudgetExceeded,
    LLMConfig,
    LLMConfigError,
    LLMEmptyResponse,
    LLMError,
    LLMMalformedOutput,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    MeteredModel,
    RetryingModel,
    ScriptedModel,
    Usage,
    build_language_model,
    generate_many,
)

MODEL = "openai/test-model"


class Answer(BaseModel):
    text: str = Field(description="A short reply.")
    score: int = Field(description="An integer score.")


class Other(BaseModel):
    label: str


def msgs(text: str = "hello", system: str | None = None) -> list[dict[str, str]]:
    out = [{"role": "system", "content": system}] if system else []
    return out + [{"role": "user", "content": text}]


def last_user(request: dict) -> str:
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


def echo_responder(request: dict) -> str:
    text = last_user(request)
    return json.dumps({"text": text.upper(), "score": len(text)})


def server_model(server, **kwargs) -> LiteLLMModel:
    return LiteLLMModel(MODEL, api_base=server.base_url, **kwargs)


def scripted(**kwargs) -> ScriptedModel:
    """Answers {"text": <last user message>, "score": <call number>} (changes every call)."""
    state = {"n": 0}
    lock = threading.Lock()

    def respond(messages, schema):
        with lock:
            state["n"] += 1
            n = state["n"]
        if schema is Other:
            return {"label": f"other-{n}"}
        return Answer(text=messages[-1]["content"], score=n)

    return ScriptedModel(respond, **kwargs)


class FailingThenOk:
    """A scripted responder raising ``errors`` in order, then answering."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    def __call__(self, messages, schema):
        if self.errors:
            return self.errors.pop(0)
        return {"text": "ok", "score": 1}


# -- LiteLLMModel against the local OpenAI-compatible server -----------------------------------


def test_litellm_model_sync_end_to_end(llm_server):
    llm_server.responder = echo_responder
    model = server_model(llm_server)
    gen = model.generate(msgs("hi there", system="You are a user."), Answer, seed=7)

    assert isinstance(gen.value, Answer)
    assert gen.value == Answer(text="HI THERE", score=8)
    assert gen.raw == echo_responder(llm_server.requests[-1])
    server_usage = llm_server.responses[-1]["usage"]
    assert gen.usage == Usage(
        calls=1,
        prompt_tokens=server_usage["prompt_tokens"],
        completion_tokens=server_usage["completion_tokens"],
        cost_usd=0.0,  # a local model has no price
    )
    request = llm_server.requests[-1]
    assert request["model"] == "test-model"
    assert request["response_format"] == {"type": "json_object"}
    assert request["seed"] == 7 and request["temperature"] == 0.0
    system = request["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are a user.")
    assert "Answer with one JSON object matching this JSON schema" in system["content"]
    assert '"score"' in system["content"]
    assert not gen.cached and gen.model == MODEL


def test_litellm_model_async_end_to_end(llm_server):
    llm_server.responder = echo_responder
    model = server_model(llm_server, temperature=0.3, max_tokens=64)

    async def main():
        return await asyncio.gather(
            *(model.agenerate(msgs(f"q{i}"), Answer, seed=i, temperature=0.9) for i in range(4))
        )

    gens = asyncio.run(main())
    assert [g.value.text for g in gens] == ["Q0", "Q1", "Q2", "Q3"]
    assert sum(g.usage.prompt_tokens for g in gens) == sum(
        r["usage"]["prompt_tokens"] for r in llm_server.responses
    )
    assert {r["temperature"] for r in llm_server.requests} == {0.9}
    assert {r["max_tokens"] for r in llm_server.requests} == {64}
    assert sorted(r["seed"] for r in llm_server.requests) == [0, 1, 2, 3]


def test_raw_openai_client_is_compatible(llm_server):
    import openai

    llm_server.responder = echo_responder
    client = openai.OpenAI(base_url=llm_server.base_url, api_key="sk-test", max_retries=0)
    response = client.chat.completions.create(
        model="test-model",
        messages=msgs("abc"),
        response_format={"type": "json_object"},
        seed=1,
    )
    assert response.object == "chat.completion"
    assert response.choices[0].finish_reason == "stop"
    assert Answer.model_validate_json(response.choices[0].message.content) == Answer(
        text="ABC", score=3
    )
    assert response.usage.total_tokens == llm_server.responses[-1]["usage"]["total_tokens"]


def test_api_key_comes_from_named_env_var(llm_server, monkeypatch):
    monkeypatch.delenv("RW_TEST_LLM_KEY", raising=False)
    model = server_model(llm_server, api_key_env="RW_TEST_LLM_KEY")
    with pytest.raises(LLMConfigError, match="RW_TEST_LLM_KEY"):
        model.generate(msgs(), Answer)
    assert llm_server.count == 0  # no request without a key

    monkeypatch.setenv("RW_TEST_LLM_KEY", "sk-secret-123456")
    assert model.generate(msgs(), Answer).value == Answer(text="ok", score=1)
    assert "sk-secret" not in repr(model)

    # a provider that echoes the key in its error message: the key is masked
    leak = "Incorrect API key provided: sk-secret-123456"
    llm_server.fault = lambda n, req: ("status", 401, leak)
    with pytest.raises(LLMConfigError) as info:
        model.generate(msgs(), Answer)
    assert "sk-secret-123456" not in str(info.value)


def test_missing_provider_key_is_a_config_error(llm_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LLMConfigError) as info:
        server_model(llm_server).generate(msgs(), Answer)
    assert not info.value.transient and llm_server.count == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (("status", 429), LLMRateLimited),
        (("status", 500), LLMServerError),
        (("status", 503), LLMServerError),
        (("status", 400), LLMConfigError),
        (("status", 401), LLMConfigError),
        (("status", 404), LLMConfigError),
        (("content", '{"text": "SECRET_CONTENT", '), LLMMalformedOutput),
        (("content", '{"text": "SECRET_CONTENT"}'), LLMMalformedOutput),  # schema violation
        (("content", "SECRET_CONTENT is not JSON"), LLMMalformedOutput),
        (("content", ""), LLMEmptyResponse),
        (("content", "   "), LLMEmptyResponse),
    ],
)
def test_error_mapping_against_server(llm_server, fault, error):
    llm_server.fault = lambda n, req: fault
    model = server_model(llm_server)
    with pytest.raises(error) as info:
        model.generate(msgs(), Answer)
    assert llm_server.count == 1  # litellm's own retries are off
    assert "SECRET_CONTENT" not in str(info.value)  # errors never carry the whole content
    assert info.value.transient == (error is not LLMConfigError)
    if error is LLMMalformedOutput:
        assert "ValidationError" in str(info.value) and "Answer" in str(info.value)


def test_timeout_maps_to_llm_timeout(llm_server):
    llm_server.fault = lambda n, req: ("hang", 5.0) if n < 2 else None
    model = server_model(llm_server, timeout=0.5)
    with pytest.raises(LLMTimeout):
        model.generate(msgs(), Answer)
    with pytest.raises(LLMTimeout):
        asyncio.run(model.agenerate(msgs(), Answer))
    assert model.generate(msgs(), Answer).value.text == "ok"  # the third request answers


def test_async_error_mapping(llm_server):
    llm_server.fault = lambda n, req: [("status", 429), ("status", 500), ("content", "")][n]
    model = server_model(llm_server)
    for error in (LLMRateLimited, LLMServerError, LLMEmptyResponse):
        with pytest.raises(error):
            asyncio.run(model.agenerate(msgs(), Answer))


def test_falls_back_when_provider_rejects_json_mode(llm_server):
    def fault(n, req):
        if "response_format" in req:
            return ("status", 400, "response_format json_object is not supported by this model")
        return None

    llm_server.fault = fault
    model = server_model(llm_server)
    assert model.generate(msgs(), Answer).value == Answer(text="ok", score=1)
    assert model.generate(msgs(), Answer).value == Answer(text="ok", score=1)
    # one rejected request, then the schema in the system prompt alone, remembered afterwards
    assert ["response_format" in r for r in llm_server.requests] == [True, False, False]
    assert "JSON schema" in llm_server.requests[-1]["messages"][0]["content"]


# -- ScriptedModel -----------------------------------------------------------------------------


def test_scripted_model_validates_every_answer_form():
    answers = [
        Answer(text="a", score=1),
        {"text": "b", "score": 2},
        '{"text": "c", "score": 3}',
        {"text": "d"},
        "not json",
        "",
        LLMRateLimited("scripted 429"),
    ]
    model = ScriptedModel(lambda m, s: answers.pop(0), tokens_per_call=(7, 3), usd_per_call=0.5)
    assert isinstance(model, LanguageModel)
    got = [model.generate(msgs(), Answer) for _ in range(3)]
    assert [g.value.text for g in got] == ["a", "b", "c"]
    assert got[0].usage == Usage(calls=1, prompt_tokens=7, completion_tokens=3, cost_usd=0.5)
    with pytest.raises(LLMMalformedOutput, match="score"):
        model.generate(msgs(), Answer)
    with pytest.raises(LLMMalformedOutput):
        model.generate(msgs(), Answer)
    with pytest.raises(LLMEmptyResponse):
        model.generate(msgs(), Answer)
    with pytest.raises(LLMRateLimited):
        asyncio.run(model.agenerate(msgs(), Answer))
    assert model.calls == 7


# -- RetryingModel -----------------------------------------------------------------------------


def test_retry_recovers_after_transient_failures():
    inner = ScriptedModel(FailingThenOk(LLMTimeout("t"), LLMRateLimited("r"), LLMServerError("s")))
    delays: list[float] = []
    model = RetryingModel(inner, max_retries=3, base_delay=0.5, max_delay=8.0, sleep=delays.append)
    gen = model.generate(msgs(), Answer)
    assert gen.value == Answer(text="ok", score=1)
    assert model.attempts == inner.calls == 4 and model.retries == 3
    assert len(delays) == 3
    assert all(0.0 <= d <= model.backoff_cap(k) for k, d in enumerate(delays))


def test_retry_backoff_is_exponential_capped_and_seeded():
    def always_fail(m, s):
        return LLMServerError("down")

    def delays_for(seed: int, calls: int = 300) -> list[list[float]]:
        per_call: list[list[float]] = []
        for _ in range(calls):
            delays: list[float] = []
            model = RetryingModel(
                ScriptedModel(always_fail), max_retries=5, base_delay=0.5, max_delay=2.0,
                seed=seed, sleep=delays.append,
            )
            with pytest.raises(LLMServerError):
                model.generate(msgs(), Answer)
            per_call.append(delays)
            seed += 1_000
        return per_call

    model = RetryingModel(ScriptedModel(always_fail), base_delay=0.5, max_delay=2.0)
    assert [model.backoff_cap(k) for k in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]

    runs = np.array(delays_for(0))  # (calls, retries)
    assert runs.shape == (300, 5)
    caps = np.array([0.5, 1.0, 2.0, 2.0, 2.0])
    assert (runs >= 0).all() and (runs <= caps).all()
    means = runs.mean(axis=0)  # full jitter: the mean delay is half the cap
    np.testing.assert_allclose(means, caps / 2, rtol=0.15)
    assert means[0] < means[1] < means[2]

    assert delays_for(0, calls=3) == delays_for(0, calls=3)  # deterministic for a seed
    assert delays_for(0, calls=3) != delays_for(1, calls=3)


def test_retry_gives_up_after_max_retries_and_reraises_last_error():
    errors = [LLMTimeout(f"attempt {i}") for i in range(10)]
    inner = ScriptedModel(FailingThenOk(*errors))
    model = RetryingModel(inner, max_retries=2, sleep=lambda d: None)
    with pytest.raises(LLMTimeout) as info:
        model.generate(msgs(), Answer)
    assert info.value is errors[2]
    assert model.attempts == inner.calls == 3


@pytest.mark.parametrize("error", [LLMConfigError("bad model"), LLMBudgetExceeded("cap")])
def test_retry_does_not_retry_permanent_errors(error):
    inner = ScriptedModel(FailingThenOk(error))
    slept: list[float] = []
    model = RetryingModel(inner, max_retries=5, sleep=slept.append)
    with pytest.raises(type(error)):
        model.generate(msgs(), Answer)
    assert model.attempts == inner.calls == 1 and slept == []


def test_retry_async_uses_injected_async_sleep():
    inner = ScriptedModel(FailingThenOk(LLMMalformedOutput("m"), LLMEmptyResponse("e")))
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    model = RetryingModel(inner, max_retries=3, async_sleep=fake_sleep, sleep=None)
    gen = asyncio.run(model.agenerate(msgs(), Answer))
    assert gen.value.text == "ok" and len(slept) == 2 and model.attempts == 3


def test_retry_against_server_recovers_from_429_and_500(llm_server):
    llm_server.fault = lambda n, req: [("status", 429), ("status", 500)][n] if n < 2 else None
    model = RetryingModel(server_model(llm_server), max_retries=3, sleep=lambda d: None)
    assert model.generate(msgs(), Answer).value == Answer(text="ok", score=1)
    assert llm_server.count == 3 and model.attempts == 3


# -- CachedModel -------------------------------------------------------------------------------


def test_cache_replays_identical_answers_with_zero_calls(tmp_path):
    path = tmp_path / "cache.sqlite"
    requests = [(msgs(f"q{i}"), Answer, i) for i in range(10)]

    first_inner = scripted(tokens_per_call=(10, 5), usd_per_call=0.01)
    with CachedModel(first_inner, path) as cache:
        first = [cache.generate(m, s, seed=seed) for m, s, seed in requests]
        assert first_inner.calls == 10 and cache.misses == 10 and len(cache) == 10
        assert not any(g.cached for g in first)

    second_inner = scripted()  # would answer differently (its counter restarts)
    with CachedModel(second_inner, path) as cache:
        second = [cache.generate(m, s, seed=seed) for m, s, seed in requests]
        assert second_inner.calls == 0 and cache.hits == 10
    assert [g.value for g in second] == [g.value for g in first]
    assert all(g.cached and g.usage == Usage(cache_hits=1) for g in second)
    total = sum((g.usage for g in second), Usage())
    assert total.calls == 0 and total.total_tokens == 0 and total.cost_usd == 0.0


def test_cache_misses_on_different_seed_messages_schema_temperature(tmp_path):
    inner = scripted()
    cache = CachedModel(inner, tmp_path / "c.sqlite")
    cache.generate(msgs("a"), Answer, seed=1)
    cache.generate(msgs("a"), Answer, seed=1)
    assert inner.calls == 1
    cache.generate(msgs("a"), Answer, seed=2)
    cache.generate(msgs("b"), Answer, seed=1)
    cache.generate(msgs("a", system="sys"), Answer, seed=1)
    cache.generate(msgs("a"), Other, seed=1)
    cache.generate(msgs("a"), Answer, seed=1, temperature=0.7)
    assert inner.calls == 6 and cache.hits == 1 and cache.misses == 6
    assert cache.generate(msgs("a"), Other, seed=1).cached and inner.calls == 6
    cache.close()


def test_cache_does_not_store_failures(tmp_path):
    inner = ScriptedModel(FailingThenOk(LLMServerError("down")))
    cache = CachedModel(inner, tmp_path / "c.sqlite")
    with pytest.raises(LLMServerError):
        cache.generate(msgs(), Answer)
    assert len(cache) == 0
    assert cache.generate(msgs(), Answer).value.text == "ok"
    assert cache.generate(msgs(), Answer).cached and inner.calls == 2


def test_cache_with_local_server_replays_without_requests(llm_server, tmp_path):
    llm_server.responder = echo_responder
    path = tmp_path / "server-cache.sqlite"
    with CachedModel(server_model(llm_server), path) as cache:
        first = [cache.generate(msgs(f"item {i}"), Answer, seed=3).value for i in range(5)]
    assert llm_server.count == 5
    with CachedModel(server_model(llm_server), path) as cache:
        second = asyncio.run(
            generate_many(cache, [(msgs(f"item {i}"), Answer, 3) for i in range(5)])
        )
    assert llm_server.count == 5  # the replay made no request
    assert [g.value for g in second] == first


def test_cache_is_thread_safe(tmp_path):
    inner = scripted()
    cache = CachedModel(inner, tmp_path / "c.sqlite")

    def work(i: int) -> Answer:
        return cache.generate(msgs(f"q{i % 20}"), Answer, seed=0).value

    with ThreadPoolExecutor(max_workers=8) as pool:
        values = list(pool.map(work, range(400)))
    assert len(cache) == 20
    assert cache.hits + cache.misses == 400 and inner.calls == cache.misses
    # after the run, every key replays one stored answer
    replay = [cache.generate(msgs(f"q{i}"), Answer, seed=0).value for i in range(20)]
    assert [v.text for v in replay] == [f"q{i}" for i in range(20)]
    assert len(values) == 400
    cache.close()


# -- BudgetedModel -----------------------------------------------------------------------------


def test_budget_stops_at_max_calls_and_keeps_earlier_results():
    inner = scripted()
    model = BudgetedModel(inner, max_calls=5)
    results: list[Generation] = []
    with pytest.raises(LLMBudgetExceeded, match="5 calls"):
        for i in range(10):
            results.append(model.generate(msgs(f"q{i}"), Answer))
    assert len(results) == 5 and inner.calls == 5
    assert [r.value.text for r in results] == [f"q{i}" for i in range(5)]
    assert model.spent.calls == 5
    assert not LLMBudgetExceeded("x").transient


def test_budget_stops_at_max_usd():
    inner = scripted(usd_per_call=0.02)
    model = BudgetedModel(inner, max_usd=0.05)
    results = []
    try:
        for i in range(10):
            results.append(model.generate(msgs(f"q{i}"), Answer))
    except LLMBudgetExceeded as exc:
        assert "USD" in str(exc)
    assert len(results) == 3 and inner.calls == 3  # 0.02, 0.04, 0.06 >= 0.05: stop
    assert model.spent.cost_usd == pytest.approx(0.06)


def test_budget_counts_failed_calls_and_never_overshoots_concurrently():
    inner = ScriptedModel(FailingThenOk(LLMServerError("down")))
    model = BudgetedModel(inner, max_calls=2)
    with pytest.raises(LLMServerError):
        model.generate(msgs(), Answer)
    model.generate(msgs(), Answer)
    with pytest.raises(LLMBudgetExceeded):
        model.generate(msgs(), Answer)
    assert model.failed == 1 and model.spent.calls == 1

    class Slow:
        model = "slow"

        def generate(self, messages, schema, *, seed=None, temperature=None):
            raise NotImplementedError

        async def agenerate(self, messages, schema, *, seed=None, temperature=None):
            await asyncio.sleep(0.01)
            return Generation[Answer](value=Answer(text="x", score=0), usage=Usage(calls=1))

    budgeted = BudgetedModel(Slow(), max_calls=10)
    results = asyncio.run(
        generate_many(budgeted, [(msgs(), Answer, i) for i in range(30)], max_in_flight=16)
    )
    assert sum(isinstance(r, Generation) for r in results) == 10
    assert sum(isinstance(r, LLMBudgetExceeded) for r in results) == 20
    assert budgeted.spent.calls == 10


def test_cache_hits_do_not_count_against_the_budget(tmp_path):
    inner = scripted()
    cfg = LLMConfig(max_calls=3, cache_path=str(tmp_path / "c.sqlite"), max_retries=0)
    model = build_language_model(cfg, inner=inner)
    for _ in range(4):  # the same three requests again and again: one call each
        for i in range(3):
            model.generate(msgs(f"q{i}"), Answer)
    assert inner.calls == 3
    assert model.total.calls == 3 and model.total.cache_hits == 9
    with pytest.raises(LLMBudgetExceeded):
        model.generate(msgs("new"), Answer)
    assert model.errors == {"LLMBudgetExceeded": 1}


# -- MeteredModel ------------------------------------------------------------------------------


def test_meter_sums_per_scope_and_total():
    inner = scripted(tokens_per_call=(100, 20), usd_per_call=0.001)
    meter = MeteredModel(inner)
    with meter.scope("run"):
        for episode in range(3):
            with meter.scope(f"episode-{episode}"):
                for step in range(5):
                    meter.generate(msgs(f"e{episode}s{step}"), Answer)
    meter.generate(msgs("outside"), Answer)

    per_episode = Usage(calls=5, prompt_tokens=500, completion_tokens=100, cost_usd=0.005)
    for episode in range(3):
        got = meter.by_key[f"episode-{episode}"]
        assert got.model_copy(update={"cost_usd": 0.0}) == per_episode.model_copy(
            update={"cost_usd": 0.0}
        )
        assert got.cost_usd == pytest.approx(0.005)
    assert meter.by_key["run"].calls == 15 and meter.by_key["run"].total_tokens == 1800
    assert meter.total.calls == 16 and meter.total.prompt_tokens == 1600
    assert meter.total.cost_usd == pytest.approx(0.016)
    episodes = sum((meter.by_key[f"episode-{e}"] for e in range(3)), Usage())
    assert episodes.calls == meter.by_key["run"].calls
    assert meter.active_scopes == ()


def test_meter_scopes_follow_asyncio_tasks_and_count_errors():
    inner = ScriptedModel(
        lambda m, s: LLMTimeout("t") if "fail" in m[-1]["content"] else {"text": "x", "score": 1}
    )
    meter = MeteredModel(inner)

    async def episode(e: int) -> None:
        with meter.scope(f"ep{e}"):
            for step in range(4):
                try:
                    await meter.agenerate(msgs("fail" if step == 3 else "ok"), Answer)
                except LLMTimeout:
                    pass
                await asyncio.sleep(0)  # interleave the episodes

    async def main() -> None:
        with meter.scope("run"):
            await asyncio.gather(*(episode(e) for e in range(3)))

    asyncio.run(main())
    assert all(meter.by_key[f"ep{e}"].calls == 3 for e in range(3))
    assert meter.by_key["run"].calls == meter.total.calls == 9
    assert meter.errors == {"LLMTimeout": 3} and meter.errors_by_key["ep1"] == {"LLMTimeout": 1}


def test_meter_costs_with_litellm_mock_responses(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # mock responses need no key
    model = LiteLLMModel("gpt-4o-mini", mock_response='{"text": "mocked", "score": 5}')
    meter = MeteredModel(model)
    usages: dict[str, list[Usage]] = {}
    with meter.scope("run"):
        for episode in range(3):
            key = f"episode-{episode}"
            with meter.scope(key):
                for step in range(5):
                    gen = meter.generate(msgs(f"episode {episode} step {step}"), Answer)
                    assert gen.value == Answer(text="mocked", score=5)
                    usages.setdefault(key, []).append(gen.usage)

    every = [u for us in usages.values() for u in us]
    assert all(u.cost_usd > 0 and u.prompt_tokens > 0 and u.completion_tokens > 0 for u in every)
    for key, us in usages.items():
        got = meter.by_key[key]
        assert got.calls == 5
        assert got.prompt_tokens == sum(u.prompt_tokens for u in us)
        assert got.completion_tokens == sum(u.completion_tokens for u in us)
        assert got.cost_usd == pytest.approx(sum(u.cost_usd for u in us))
    for total in (meter.total, meter.by_key["run"]):
        assert total.calls == 15
        assert total.total_tokens == sum(u.total_tokens for u in every) > 0
        assert total.cost_usd == pytest.approx(sum(u.cost_usd for u in every))
        assert total.cost_usd > 0


# -- generate_many -----------------------------------------------------------------------------


def test_generate_many_keeps_order_and_returns_errors():
    def respond(messages, schema):
        i = int(messages[-1]["content"])
        if i % 7 == 3:
            return LLMServerError(f"fail {i}")
        return {"text": str(i), "score": i}

    requests = [(msgs(str(i)), Answer, i) for i in range(50)]
    results = asyncio.run(generate_many(ScriptedModel(respond), requests, max_in_flight=4))
    assert len(results) == 50
    for i, result in enumerate(results):
        if i % 7 == 3:
            assert isinstance(result, LLMServerError) and str(result) == f"fail {i}"
        else:
            assert isinstance(result, Generation) and result.value.score == i


def test_generate_many_bounds_concurrency_against_server(llm_server):
    llm_server.responder = echo_responder
    llm_server.latency = 0.2
    model = server_model(llm_server)
    requests = [(msgs(f"r{i}"), Answer, i) for i in range(48)]
    results = asyncio.run(generate_many(model, requests, max_in_flight=16))
    assert [r.value.text for r in results] == [f"R{i}" for i in range(48)]
    assert llm_server.count == 48
    assert llm_server.max_in_flight == 16  # reached, never exceeded (≈ 48/16 × 0.2 s wall)

    llm_server.reset()
    results = asyncio.run(generate_many(model, requests[:12], max_in_flight=4))
    assert all(isinstance(r, Generation) for r in results)
    assert llm_server.max_in_flight == 4


# -- fault injection ---------------------------------------------------------------------------


def _fault_stack(seed: int, rate: float = 0.5):
    inner = ScriptedModel(lambda m, s: {"text": m[-1]["content"], "score": 1})
    faulty = FaultInjectingModel(inner, rate=rate, seed=seed)
    retrying = RetryingModel(faulty, max_retries=3, seed=seed, sleep=lambda d: None)
    return inner, faulty, retrying, MeteredModel(retrying)


def test_fault_injection_with_retries_never_escapes():
    n = 2000
    inner, faulty, retrying, meter = _fault_stack(seed=11)
    ok: list[Generation] = []
    failed: list[LLMError] = []
    for i in range(n):
        try:
            ok.append(meter.generate(msgs(f"call {i}"), Answer))
        except LLMError as exc:  # the only thing allowed out: a recorded LLMError
            failed.append(exc)

    assert faulty.total_injected >= 1_000
    assert set(faulty.injected) == set(FAULT_KINDS) and all(faulty.injected.values())
    assert len(ok) + len(failed) == n
    texts = [g.value.text for g in ok]
    assert texts == sorted(texts, key=lambda t: int(t.split()[1])) and len(set(texts)) == len(ok)
    assert inner.calls == faulty.passed == len(ok) == meter.total.calls
    assert retrying.attempts == faulty.passed + faulty.total_injected
    # a failed call used every attempt; a successful one failed k <= max_retries times first
    assert faulty.total_injected >= 4 * len(failed)
    assert sum(meter.errors.values()) == len(failed)
    assert all(exc.transient for exc in failed)

    # same seed, same faults
    _, again, _, meter2 = _fault_stack(seed=11)
    for i in range(n):
        try:
            meter2.generate(msgs(f"call {i}"), Answer)
        except LLMError:
            pass
    assert again.injected == faulty.injected


def test_fault_injection_async_batch_never_escapes():
    inner, faulty, retrying, meter = _fault_stack(seed=3, rate=0.6)

    async def no_sleep(delay: float) -> None:
        return None

    retrying.async_sleep = no_sleep
    requests = [(msgs(f"a{i}"), Answer, i) for i in range(600)]
    results = asyncio.run(generate_many(meter, requests, max_in_flight=16))
    ok = [r for r in results if isinstance(r, Generation)]
    errors = [r for r in results if isinstance(r, LLMError)]
    assert len(ok) + len(errors) == 600 and errors
    assert [r.value.text for r in ok] == [
        f"a{i}" for i, r in enumerate(results) if isinstance(r, Generation)
    ]
    assert retrying.attempts == faulty.passed + faulty.total_injected
    assert meter.total.calls == len(ok) == inner.calls


def test_fault_injection_rejects_bad_arguments():
    with pytest.raises(ValueError):
        FaultInjectingModel(scripted(), rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        FaultInjectingModel(scripted(), rate=0.1, kinds=("gremlins",))
    model = FaultInjectingModel(scripted(), rate=1.0, kinds=("schema",))
    with pytest.raises(LLMMalformedOutput, match="schema"):
        model.generate(msgs(), Answer)
    assert model.injected == {"schema": 1}


# -- configuration -----------------------------------------------------------------------------


def test_config_rejects_unknown_and_invalid_fields():
    with pytest.raises(ValidationError, match="max_retry"):
        LLMConfig(max_retry=3)
    with pytest.raises(ValidationError, match="timeout"):
        LLMConfig(timeout=0)
    cfg = LLMConfig()
    assert cfg.model == "openai/gpt-4o-mini" and cfg.max_in_flight == 16 and cfg.seed == 0


def test_build_language_model_composes_the_stack(tmp_path):
    cfg = LLMConfig(model="ollama/qwen2.5", api_base="http://127.0.0.1:1", max_calls=3,
                    max_usd=1.0, cache_path=str(tmp_path / "c.sqlite"), max_retries=2, seed=5)
    model = build_language_model(cfg)
    chain = []
    layer = model
    while layer is not None:
        chain.append(type(layer))
        layer = getattr(layer, "inner", None)
    assert chain == [MeteredModel, CachedModel, RetryingModel, BudgetedModel, LiteLLMModel]
    assert all(isinstance(x, LanguageModel) for x in (model, model.inner, model.inner.inner))
    assert model.model == "ollama/qwen2.5"
    assert model.inner.inner.inner.max_calls == 3 and model.inner.inner.max_retries == 2

    no_cache = build_language_model(LLMConfig(), inner=scripted())
    assert [type(no_cache.inner), type(no_cache.inner.inner)] == [RetryingModel, BudgetedModel]


def test_built_stack_end_to_end_against_server(llm_server, tmp_path):
    llm_server.responder = echo_responder
    calls = {"n": 0}

    def fault(n, req):  # every third request fails once with a 429
        return ("status", 429) if n % 3 == 0 else None

    llm_server.fault = fault
    cfg = LLMConfig(model=MODEL, api_base=llm_server.base_url, cache_path=str(tmp_path / "c.db"))
    model = build_language_model(cfg)
    model.inner.inner.sleep = lambda d: calls.__setitem__("n", calls["n"] + 1)
    with model.scope("episode-0"):
        values = [model.generate(msgs(f"x{i}"), Answer, seed=1).value for i in range(4)]
    assert [v.text for v in values] == ["X0", "X1", "X2", "X3"]
    assert calls["n"] >= 1 and model.by_key["episode-0"].calls == 4

    requests_before = llm_server.count
    replay = build_language_model(cfg)
    assert [replay.generate(msgs(f"x{i}"), Answer, seed=1).value for i in range(4)] == values
    assert llm_server.count == requests_before and replay.total.cache_hits == 4
