"""recoworld serve-policy and POLICY as a URL: the same scores as in process, one-line refusals, isolated sessions."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi import Request  # noqa: E402  (module level: the fake server's annotations are strings)

from recoworld.tasks import evaluate as E  # noqa: E402
from recoworld.tasks.definitions import get_task  # noqa: E402
from recoworld.tasks.policies import PolicyError, resolve_policy  # noqa: E402
from recoworld.tasks.policy_server import PolicyServeSettings, make_app  # noqa: E402

TASK = get_task("instruction-following-v1")
SEEDS = range(100000, 100020)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app: Any, life: float = 300.0) -> Iterator[str]:
    """``app`` on uvicorn at 127.0.0.1 in a thread; stopped on exit, or by itself after ``life`` seconds."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    timer = threading.Timer(life, lambda: setattr(server, "should_exit", True))
    timer.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        timer.cancel()
        thread.join(10)


def _served_totals(url: str, seeds: range = SEEDS):
    policy = resolve_policy(url, TASK)
    try:
        return E.serve(policy, TASK, seeds)[0]
    finally:
        policy.close()


@pytest.mark.parametrize("name", ["greedy", "instruction_following"])
def test_a_served_policy_scores_exactly_as_in_process(name: str) -> None:
    here = E.serve(resolve_policy(name, TASK), TASK, SEEDS)[0]
    with running(make_app(PolicyServeSettings(policy=name))) as url:
        policy = resolve_policy(url, TASK)
        assert (policy.kind, policy.name) == ("agent_server", name)
        policy.close()
        there = _served_totals(url)
    assert here.equals(there)  # every per-user total, to the last digit
    assert E.score(TASK, here, None, 30)[0] == E.score(TASK, there, None, 30)[0]


def test_two_evaluations_at_once_keep_their_own_state() -> None:
    """instruction_following holds each user's constraints for a few slates: two sessions serving the same
    users at the same time would consume each other's (and score differently) if they shared state."""
    seeds = range(100000, 100006)
    here = E.serve(resolve_policy("instruction_following", TASK), TASK, seeds)[0]
    out: dict[int, Any] = {}
    with running(make_app(PolicyServeSettings(policy="instruction_following"))) as url:
        threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, _served_totals(url, seeds))) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert len(out) == 2 and here.equals(out[0]) and here.equals(out[1])


def _one_line(policy: str, match: str) -> None:
    with pytest.raises(PolicyError, match=match) as err:
        _served_totals(policy, range(100000, 100001))
    assert "\n" not in str(err.value)


def test_a_bad_url_or_a_server_that_is_down_is_one_line() -> None:
    _one_line("http://", r"^policy 'http://': not a URL")
    _one_line(f"http://127.0.0.1:{_free_port()}", r"^policy 'http://127\.0\.0\.1:\d+': /info: cannot reach the server")


def _fake(act: Any, info: Any = None) -> Any:
    """A server that answers /info and /act as told (a policy gone wrong)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI()
    app.get("/info")(lambda: info if info is not None else {"name": "fake", "kind": "recommender", "spec": "fake",
                                                            "needs_view": False, "observes": False, "learns_from_logs": False})

    @app.post("/act")
    async def _act(request: Request) -> Any:
        body = await request.json()
        answer = act(body)
        return PlainTextResponse(answer) if isinstance(answer, str) else JSONResponse(answer)

    return app


@pytest.mark.parametrize("act, match", [
    (lambda body: "<html>oops</html>", r"/act answered garbage, not a ActReply"),
    (lambda body: {"actions": "nope"}, r"/act answered garbage, not a ActReply \(actions: "),
    (lambda body: {"actions": []}, r"/act answered 0 action\(s\) for 1 user\(s\)$"),
    (lambda body: {"actions": [{"items": list(range(9)) + [100]}]},
     r"/act answered ids \[0, 1, 2, 3, 4, 5, 6, 7, 8, 100\] for user h100000; expected 10 ids among the candidates 0\.\.99$"),
    (lambda body: {"actions": [{"items": [0]}]}, r"/act answered ids \[0\] for user h100000; expected 10 ids"),
])
def test_a_server_answering_garbage_or_wrong_ids_is_one_line(act, match) -> None:
    with running(_fake(act)) as url:
        _one_line(url, rf"^policy '{url}': {match}")


def test_a_server_that_is_not_a_policy_server_is_one_line() -> None:
    with running(_fake(lambda body: {}, info={"hello": "world"})) as url:
        _one_line(url, rf"^policy '{url}': /info answered garbage, not a PolicyInfo")


def test_a_server_that_answers_the_observation_alone_is_served() -> None:
    """Any agent speaking the observation protocol is a policy: here, the first slate_size candidates."""
    def act(body: dict) -> dict:
        assert body["view"] is None and body["observations"][0]["candidates"]
        return {"actions": [{"items": [c["id"] for c in o["candidates"][: o["slate_size"]]]} for o in body["observations"]]}

    with running(_fake(act)) as url:
        totals = _served_totals(url, range(100000, 100002))
    assert len(totals) == 2 and totals["steps"].min() > 0


# ------------------------------------------------------------------ the server's refusals
@pytest.fixture
def client():
    from fastapi.testclient import TestClient

    with TestClient(make_app(PolicyServeSettings(policy="greedy", max_sessions=1, max_body_bytes=4096))) as c:
        yield c


def _refused(answer: Any, status: int, match: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert "\n" not in error and __import__("re").search(match, error), error


def test_the_server_refuses_in_one_line(client) -> None:
    assert client.get("/info").json()["name"] == "greedy"
    _refused(client.post("/act", content=b"{not json", headers={"content-type": "application/json"}), 422, "invalid JSON")
    obs = {"candidates": [], "slate_size": 1}
    _refused(client.post("/act", json={"session": "a b", "observations": [obs]}), 422, r"^body\.session: ")
    _refused(client.post("/act", json={"session": "s", "observations": [obs]}), 422, "send the numeric view")
    view = {"catalog": "0" * 64, "slate_size": 1, "user_ids": ["u"], "arrays": {}}
    _refused(client.post("/act", json={"session": "s", "observations": [obs], "view": view}), 409, "unknown; PUT it")
    _refused(client.post("/act", content=b"x" * 5000, headers={"content-type": "application/json"}), 413, "over the limit")
    _refused(client.put("/catalog/" + "0" * 64, json={"item_id": ["a"], "title": ["t"], "description": ["d"], "tags": [[]],
                                                       "topic_names": ["x"], "creator_names": ["c"], "numeric": {}}),
             400, "its sha256 is")
    _refused(client.get("/nowhere"), 404, "Not Found")
    assert client.post("/close", json={"session": "never-opened"}).json() == {"closed": False}


def test_sessions_are_capped_and_freed_by_close() -> None:
    from recoworld.tasks.policy_server import PolicyService, Refusal
    from recoworld.tasks.policies import load_policy

    service = PolicyService(lambda: load_policy("greedy"), "greedy", max_sessions=1)
    first = service._session("a")
    assert service._session("a") is first
    with pytest.raises(Refusal, match="1 sessions open"):
        service._session("b")
    from recoworld.tasks.policy_wire import SessionRequest

    assert service.close(SessionRequest(session="a"))
    assert service._session("b").rec is not first.rec  # a fresh policy: nothing carried over
    service.idle_timeout = 0.0  # a session unused for longer than this makes way for a new one
    time.sleep(0.01)
    assert service._session("c") is not None and set(service.sessions) == {"c"}


def test_a_malformed_view_is_one_line_not_a_crash(client) -> None:
    from recoworld.tasks.policy_wire import Array

    payload = {"item_id": ["a", "b"], "title": ["t", "u"], "description": ["d", "e"], "tags": [[], ["x"]],
               "topic_names": ["x"], "creator_names": ["c"], "numeric": {}}
    from recoworld.tasks.policy_wire import CatalogPayload

    cat = CatalogPayload.model_validate(payload)
    _refused(client.put(f"/catalog/{cat.digest()}", json=payload), 422, r"missing column")
    arr = lambda a: Array.of(np.asarray(a)).model_dump()  # noqa: E731
    emb = np.eye(2, 4, dtype=np.float32)
    payload["numeric"] = {"topic": arr([0, 0]), "creator": arr([0, 0]), "duration": arr([1.0, 2.0]),
                          "quality": arr([0.5, 0.5]), "created_day": arr([0, 0]), "popularity": arr([0.1, 0.2]),
                          "embeddings": arr(emb)}
    digest = CatalogPayload.model_validate(payload).digest()
    assert client.put(f"/catalog/{digest}", json=payload).status_code == 200
    view = {"catalog": digest, "slate_size": 1, "user_ids": ["u"], "arrays": {"candidates": arr([0, 1])}}
    obs = {"candidates": [], "slate_size": 1}
    _refused(client.post("/act", json={"session": "s", "observations": [obs], "view": view}), 422, r"^view: missing array")


def test_the_server_binds_loopback_by_default(monkeypatch) -> None:
    import inspect

    from recoworld.cli_serve_policy import serve_policy
    from recoworld.tasks import policy_server

    assert PolicyServeSettings(policy="greedy").host == "127.0.0.1"
    assert inspect.signature(serve_policy).parameters["host"].default.default == "127.0.0.1"
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    policy_server.serve(PolicyServeSettings(policy="greedy"))
    assert seen["host"] == "127.0.0.1"


def test_serve_policy_refuses_a_url_and_an_unknown_policy_in_one_line(runner) -> None:
    from recoworld.cli import app

    for policy, match in [("gredy", "unknown recommender 'gredy'"), ("http://127.0.0.1:1", "not another URL")]:
        result = runner.invoke(app, ["serve-policy", policy])
        assert result.exit_code == 2 and match in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_feedback_reaches_a_policy_that_observes() -> None:
    """linucb learns from clicks: served, it scores as in process only if every observe() arrives in order."""
    seeds = range(100000, 100004)
    here = E.serve(resolve_policy("linucb", TASK), TASK, seeds)[0]
    with running(make_app(PolicyServeSettings(policy="linucb"))) as url:
        there = _served_totals(url, seeds)
    assert here.equals(there)
    assert np.isfinite(there["reward"]).all()


def test_a_population_task_scores_the_same_through_the_url() -> None:
    """creator-economy-v1 serves a batch of users a decision and a catalog that grows as creators publish."""
    task = get_task("creator-economy-v1").model_copy(update={"held_out_users": 30})
    here, kept_here = E.serve(resolve_policy("greedy", task), task, task.held_out_seeds)
    with running(make_app(PolicyServeSettings(policy="greedy"))) as url:
        policy = resolve_policy(url, task)
        try:
            there, kept_there = E.serve(policy, task, task.held_out_seeds)
        finally:
            policy.close()
    assert here.equals(there) and np.array_equal(kept_here, kept_there)


def test_a_tuned_agent_folder_is_served(tmp_path) -> None:
    pytest.importorskip("transformers")
    from fastapi.testclient import TestClient

    (tmp_path / "agent.json").write_text('{"share": 0.5, "hold": 3}')  # its model loads at its first instruction
    with TestClient(make_app(PolicyServeSettings(policy=str(tmp_path)))) as c:
        info = c.get("/info").json()
    assert (info["kind"], info["name"], info["needs_view"]) == ("agent_folder", f"language_agent[{tmp_path.name}]", True)


def test_a_view_of_the_wrong_shapes_is_refused_before_any_kernel_reads_it() -> None:
    from recoworld.agents.language.observe import observe_view
    from recoworld.agents.rl.evaluation import gym_env
    from recoworld.tasks.policies import load_policy
    from recoworld.tasks.policy_server import PolicyService, Refusal
    from recoworld.tasks.policy_wire import ActRequest, Array, CatalogPayload, Feedback, ViewPayload
    from recoworld.tasks.worlds import task_world

    scenario, config = task_world(TASK, None)
    env = gym_env(scenario, {**config, "env": {"action_mode": "slate"}})
    env.reset(seed=100000)
    view = env.unwrapped.sim.view(slice(None), with_text=True)
    env.close()
    payload = CatalogPayload.of(view.catalog)
    service = PolicyService(lambda: load_policy("linucb"), "linucb")
    service.put_catalog(payload.digest(), payload)
    obs = [observe_view(view, 0)]
    for name, bad, match in [("candidates", view.candidates[0], r"candidates has shape \[100\], expected 1 user"),
                             ("est_taste", view.est_taste[:, :3], r"est_taste has shape \[1, 3\], expected \[1, 64\]"),
                             ("consumed", view.consumed[:, :3], r"consumed has shape \[1, 3\], expected \[1, 100\]"),
                             ("candidates", -view.candidates - 1, "item rows outside the catalog's 5000 items")]:
        sent = ViewPayload.of(view, payload.digest())
        sent.arrays[name] = Array.of(bad)
        with pytest.raises(Refusal, match=f"^view: {match}") as err:
            service.act(ActRequest(session="s", observations=obs, view=sent))
        assert err.value.status == 422
    service.act(ActRequest(session="s", observations=obs, view=ViewPayload.of(view, payload.digest())))
    wrong = Feedback(positions=Array.of(np.full((1, 10), 999)), clicks=Array.of(np.zeros((1, 10), bool)),
                     reviewed=Array.of(np.zeros((1, 10), bool)))
    with pytest.raises(Refusal, match="^feedback: positions outside the last slates' candidates$"):
        service.act(ActRequest(session="s", observations=obs, view=ViewPayload.of(view, payload.digest()), feedback=wrong))
