"""The local model's server over its life, with the packaged SmolLM2-135M: SIGKILLed in the middle of a run,
it is restarted by the next call, the call is retried within the retry budget and the run completes with
complete records; ``env.close()`` stops the server the env owns once no other model uses it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401
from recoworld.llm.base import LLMError
from recoworld.llm.local_server import LocalLLMConfig
from recoworld.llm.local_model import LocalModel, innermost
from recoworld.llm.wrappers.base import CALL, Flow, Request, Wrapper
from tests.llm.test_local_llm import LLM, SMALL, needs_llama, wait_gone

SETTINGS = LocalLLMConfig(n_threads=1, n_ctx=2048)


class Attempts(Wrapper):
    """Records every attempt that reaches the model: the prompt and how it ended (None: a valid answer)."""

    def __init__(self, inner) -> None:
        self.inner, self.model = inner, inner.model
        self.log: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def flow(self, request: Request) -> Flow:
        key = json.dumps(request.messages, sort_keys=True)
        try:
            generation = yield CALL
        except LLMError as exc:
            with self._lock:
                self.log.append((key, f"{type(exc).__name__}: {exc}"))
            raise
        with self._lock:
            self.log.append((key, None))
        return generation


def kill_mid_call(local: LocalModel, after_valid: int, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the server while a call is in flight, once ``after_valid`` answers have come back."""
    while not stop.is_set():
        s = local.stats
        if local.server is not None and s.valid >= after_valid and s.attempts > s.valid + s.malformed + s.failed:
            killed.append(local.server.pid)
            os.kill(local.server.pid, signal.SIGKILL)
            return
        time.sleep(0.005)


@needs_llama
def test_a_server_sigkilled_mid_run_is_restarted_and_the_call_retried_within_the_budget(tmp_path) -> None:
    from recoworld.logs.folder import RunFolder, read_table
    from recoworld.runs.runner import PopulationRun
    from recoworld.scenario import load_scenario

    max_retries = 2
    scn = load_scenario("llm_users", {
        **SMALL, "users": {"n_users": 2}, "env": {**SMALL["env"], "horizon_days": 2, "max_slates_per_session": 2},
        "llm": {**LLM, "max_retries": max_retries, "cache_path": None, "max_calls": None, "max_usd": None,
                "max_fallback_share": None}, "recommenders": [{"name": "greedy"}],
    })
    local = LocalModel("local/smollm2-135m", SETTINGS)
    attempts = Attempts(local)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_mid_call, args=(local, 2, killed, stop), daemon=True)
    killer.start()
    try:
        PopulationRun(scn, output=tmp_path / "run", language_model=attempts).run()
    finally:
        stop.set()
        killer.join()
    assert killed, "the run ended before the server could be killed"
    assert wait_gone(killed[0]) and local.server is not None and local.server.pid != killed[0] and local.server.alive

    # complete records: every day, every slate of every session, each shown item once
    manifest = RunFolder(tmp_path / "run").read_manifest()
    assert manifest.status == "complete" and manifest.days_completed == 2
    imp = read_table(tmp_path / "run", "impressions")
    sessions = read_table(tmp_path / "run", "sessions")
    slates = imp.groupby(["arm", "day", "session", "step", "user"], observed=True)["user_fallback"].agg(["size", "min", "max"])
    assert len(slates) == int(sessions["slates"].sum()) > 0
    assert (slates["size"] == scn.env.slate_size).all() and (slates["min"] == slates["max"]).all()

    # the killed call: the attempt it broke, then an answer from the new server, within max_retries + 1 attempts
    calls: dict[str, list[str | None]] = {}
    for key, outcome in attempts.log:
        calls.setdefault(key, []).append(outcome)
    broke = [c for c in calls.values() if any(o is not None and "server died" in o for o in c)]
    assert len(broke) == 1 and len(broke[0]) <= max_retries + 1, broke
    assert broke[0][-1] is None or "Malformed" in broke[0][-1]  # answered (a 135M model may answer badly: not the kill)
    assert f"pid {killed[0]}, killed by SIGKILL" in next(o for o in broke[0] if o is not None)
    assert len(calls) == len(slates)  # one call per slate: none lost, none repeated beyond its retries
    failed = [c for c in calls.values() if c[-1] is not None]
    assert int(slates["max"].sum()) == len(failed)  # fallbacks are the calls whose every attempt failed ...
    assert all("Malformed" in c[-1] for c in failed)  # ... and none of them for the kill
    local.close()
    print(f"local model killed mid-run: restarted, the call answered on attempt {len(broke[0])}; {len(slates)} slates, "
          f"{len(failed)} fallbacks (malformed answers), {len(attempts.log)} attempts")


def llm_env(**kwargs):
    env = gym.make("RecoWorld-v0", user_backend="llm", config={**SMALL, "llm": LLM}, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    env.step(env.action_space.sample())
    return env


def server_of(env) -> LocalModel:
    return innermost(env.unwrapped.user_backend().model)


@needs_llama
def test_env_close_stops_the_server_it_owns_once_no_other_env_uses_it() -> None:
    first, second = llm_env(), llm_env()
    shared = server_of(first).server
    assert shared is server_of(second).server and shared.users == 2  # one server for both
    pid = shared.pid
    first.close()
    assert shared.alive and shared.users == 1  # the second env still uses it
    _, _, _, _, info = second.step(second.action_space.sample())
    assert info["llm"]["called"]
    second.close()
    assert wait_gone(pid, 10), "the server outlived the last env that used it"
    first.close()  # closing twice is harmless


@needs_llama
def test_vector_env_close_stops_its_server() -> None:
    envs = gym.make_vec("RecoWorld-v0", num_envs=2, vectorization_mode="vector_entry_point", user_backend="llm",
                        config={**SMALL, "llm": LLM})
    envs.reset(seed=0)
    envs.action_space.seed(0)
    envs.step(envs.action_space.sample())
    pid = innermost(envs.unwrapped._single.user_backend().model).server.pid
    envs.close()
    assert wait_gone(pid, 10), "the server outlived the vector env"


@needs_llama
def test_env_close_leaves_a_model_the_caller_passed_in_running() -> None:
    mine = LocalModel("local/smollm2-135m", LocalLLMConfig(**LLM["local"]))
    env = llm_env(language_model=mine)
    pid = mine.server.pid
    env.close()
    time.sleep(1)
    assert mine.server is not None and mine.server.alive and mine.server.pid == pid  # the caller's to close
    mine.close()
    assert wait_gone(pid, 10)


def test_env_close_without_an_llm_or_before_reset_is_a_no_op() -> None:
    env = gym.make("RecoWorld-v0", config=SMALL)
    env.close()
    env = gym.make("RecoWorld-v0", config=SMALL)
    env.reset(seed=0)
    env.step(np.zeros(3, dtype=np.int64) + np.arange(3))
    env.close()


@needs_llama
@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs /proc")
def test_a_server_without_extra_buffer_types_answers_a_long_prompt() -> None:
    """The launcher that turns llama.cpp's extra buffer types off (a CPU whose AMX is not enabled) serves too."""
    model = LocalModel("local/smollm2-135m", LocalLLMConfig(n_threads=1, n_ctx=1024, extra_buffers=False))
    model._connect()
    try:
        assert model.server._survives_a_prompt() and model.server.alive
    finally:
        pid = model.server.pid
        model.close()
    assert wait_gone(pid, 10)
