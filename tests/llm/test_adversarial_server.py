"""An adversarial OpenAI-compatible server: slow answers past the client timeout, truncated JSON, a
2 MB answer, non-UTF-8 bytes, a connection reset mid-answer, an empty body, wrong-typed and
wrong-length answers, 429 with Retry-After, and 5xx. Each fault maps to one LLMError and is retried
at most ``max_retries`` times; a population run against a server mixing them completes, serves every
slate (LLM decision or fallback), falls back exactly once per failed call, and does not hang."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter

import pytest
from pydantic import BaseModel

from recoworld.llm.base import LLMEmptyResponse, LLMError, LLMMalformedOutput, LLMRateLimited, LLMServerError, LLMTimeout
from recoworld.llm.config import LLMConfig, build_language_model
from recoworld.llm.wrappers import RetryingModel
from recoworld.logs.folder import RunFolder, read_table
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import deep_merge, load_scenario
from recoworld.testing.responders import plausible_answer
from tests.llm.test_hostile_llm import RUN as HOSTILE_RUN

MODEL = "openai/test-model"
TIMEOUT = 0.5  # the client's; a slow answer takes twice that
NON_UTF8 = (b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"\xff\xfe\x80"},"finish_reason":"stop"}]}')


class Answer(BaseModel):
    text: str


def wrong_length(body) -> str:
    answer = json.loads(plausible_answer(body))
    if "items" in answer:
        answer["items"] = answer["items"][:-1]
    return json.dumps(answer)


def two_megabytes(body) -> str:
    answer = json.loads(plausible_answer(body))
    for key in ("items", "text"):
        if key == "items" and answer.get("items"):
            answer["items"][0]["reason"] = "z" * 2_000_000
        elif key == "text" and "text" in answer:
            answer["text"] = "z" * 2_000_000
    return json.dumps(answer)


# name -> (the server's fault for a request body, the error a call sees when every attempt gets it)
FAULTS = {
    "slow": (lambda body: ("hang", 2 * TIMEOUT), LLMTimeout),
    "truncated-json": (lambda body: ("content", plausible_answer(body)[:12]), LLMMalformedOutput),
    "truncated-body": (lambda body: ("raw", b'{"id": "x", "object": "chat.compl'), LLMServerError),
    "2mb": (lambda body: ("content", two_megabytes(body)), None),  # valid for Answer: schemas set no cap
    "non-utf8": (lambda body: ("raw", NON_UTF8), LLMServerError),
    "reset": (lambda body: ("reset", 0.5), LLMServerError),
    "empty-body": (lambda body: ("raw", b""), LLMServerError),
    "empty-content": (lambda body: ("content", ""), LLMEmptyResponse),
    "wrong-type": (lambda body: ("content", '{"text": 5, "items": "all", "leave": "maybe"}'), LLMMalformedOutput),
    "wrong-length": (lambda body: ("content", wrong_length(body)), None),  # Answer has no items: valid
    "429": (lambda body: ("status", 429, None, {"Retry-After": "0"}), LLMRateLimited),
    "500": (lambda body: ("status", 500), LLMServerError),
    "503": (lambda body: ("status", 503), LLMServerError),
}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retries wait 0 s (Retry-After: 0 too), so the tests take the faults' time only."""
    monkeypatch.setattr(RetryingModel, "backoff_cap", lambda self, retry: 0.0)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_is_one_llm_error_after_at_most_max_retries_plus_one_requests(name, llm_server):
    make, error = FAULTS[name]
    llm_server.responder = lambda body: '{"text": "ok"}'
    llm_server.fault = lambda n, body: make(body)
    model = build_language_model(LLMConfig(model=MODEL, api_base=llm_server.base_url, max_retries=2, timeout=TIMEOUT))
    if error is None:
        assert model.generate([{"role": "user", "content": "hi"}], Answer).value.text
        assert llm_server.count == 1
        return
    with pytest.raises(error):
        model.generate([{"role": "user", "content": "hi"}], Answer)
    assert llm_server.count == 3
    assert sum(model.errors.values()) == 1 and model.errors == {error.__name__: 1}


def test_a_fault_then_a_good_answer_succeeds_on_the_retry(llm_server):
    llm_server.responder = lambda body: '{"text": "ok"}'
    kinds = sorted(FAULTS)
    for i, name in enumerate(kinds):
        llm_server.fault = lambda n, body, start=llm_server.count, make=FAULTS[name][0]: make(body) if n == start else None
        model = build_language_model(LLMConfig(model=MODEL, api_base=llm_server.base_url, max_retries=1, timeout=TIMEOUT))
        assert model.generate([{"role": "user", "content": f"q{i}"}], Answer).value.text, name
        assert not model.errors, name


RUN = deep_merge(HOSTILE_RUN, {"name": "adversarial", "env": {"horizon_days": 2}, "users": {"n_users": 8}})


class MixedFaults:
    """Every second request gets the next fault of FAULTS in turn; counts what it injected."""

    def __init__(self) -> None:
        self.injected: Counter = Counter()
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def __call__(self, n: int, body) -> tuple | None:
        if n % 2:
            return None
        with self._lock:
            name = sorted(FAULTS)[next(self._turn) % len(FAULTS)]
            self.injected[name] += 1
        return FAULTS[name][0](body)


@pytest.mark.timeout(180)  # the run must not hang: slow answers end at the client timeout
def test_population_run_against_a_mixed_fault_server_loses_no_slate(tmp_path, llm_server):
    faults = MixedFaults()
    llm_server.responder = plausible_answer
    llm_server.fault = faults
    max_retries = 1
    scn = load_scenario(deep_merge(RUN, {"llm": {
        "model": MODEL, "api_base": llm_server.base_url, "max_retries": max_retries, "timeout": TIMEOUT,
        "max_fallback_share": None}}))
    run = PopulationRun(scn, output=tmp_path / "run")
    run.run()
    assert RunFolder(tmp_path / "run").read_manifest().status == "complete"
    assert set(faults.injected) == set(FAULTS)  # every kind of fault was served at least once

    imp = read_table(tmp_path / "run", "impressions")
    slates = imp.groupby(["arm", "day", "session", "step", "user"])["user_fallback"].agg(["min", "max"])
    assert imp["user_fallback"].notna().all() and (slates["min"] == slates["max"]).all()  # one decision a slate
    prompts = Counter(json.dumps(body["messages"], sort_keys=True) for body in llm_server.requests)
    assert len(prompts) == len(slates)  # every served slate asked the LLM once: none skipped, none lost
    assert max(prompts.values()) <= max_retries + 1
    failed = sum(run._model.errors.values())
    assert failed > 0 and int(slates["max"].sum()) == failed  # a fallback for each failed call, no other
    assert failed < len(slates)  # and LLM decisions for the others
    print(f"faults: {sum(faults.injected.values())} injected of {llm_server.count} requests, {len(slates)} slates, "
          f"{failed} failed calls = {failed} fallbacks, most attempts per call {max(prompts.values())}")
