"""The language-agent env in process: the same trajectories as RecoWorld-v0, bad actions refused in one line
with the world unchanged, reset options a client may and may not use, and nothing of it on ``import recoworld``."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("openenv.core", reason="needs the agent extra")

import recoworld  # noqa: E402,F401
from recoworld.env.agent import (  # noqa: E402
    INFO_KEYS,
    ReceivedAction,
    RecoWorldAction,
    RecoWorldAgentEnv,
    RecoWorldObservation,
    SessionError,
)
from recoworld.env.agent_client import play_episode  # noqa: E402
from tests.env.language_policy import policy  # noqa: E402

SEEDS = (0, 1, 2)


def reference(seed: int, slates: list[list[int]]) -> list[tuple]:
    """RecoWorld-v0 (gym.make) played with these slates: (reward, terminated, truncated, info) per step."""
    env = gym.make("RecoWorld-v0", scenario="quickstart")
    _, info = env.reset(seed=seed)
    steps = [(None, False, False, info)]
    for slate in slates:
        _, reward, terminated, truncated, info = env.step(np.asarray(slate))
        steps.append((reward, terminated, truncated, info))
    return steps


def assert_same_as_gym(seed: int, first: RecoWorldObservation, played: list[RecoWorldObservation]) -> None:
    ref = reference(seed, [obs.metadata["slate"] for obs in played])
    assert first.user_id == ref[0][3]["user_id"] and first.day == ref[0][3]["day"]
    for obs, (reward, terminated, truncated, info) in zip(played, ref[1:]):
        assert obs.reward == reward and obs.done == terminated and obs.truncated == truncated
        assert obs.metadata.get("rewards") == info["rewards"]
        for key in INFO_KEYS:
            assert obs.metadata[key] == info[key], key
    assert played[-1].done or played[-1].truncated


def play(env: RecoWorldAgentEnv, seed: int, bad_every: int = 0) -> tuple[RecoWorldObservation, list[RecoWorldObservation]]:
    """An episode with the shared policy; with ``bad_every`` a bad action before every n-th step."""
    first = obs = env.reset(seed=seed)
    played: list[RecoWorldObservation] = []
    while not (obs.done or obs.truncated):
        if bad_every and len(played) % bad_every == 0:
            for bad in BAD_ACTIONS.values():
                refused = env.step(bad)
                assert refused.error and refused.reward == 0.0
        obs = env.step(policy(obs))
        assert obs.error is None
        played.append(obs)
    return first, played


@pytest.mark.parametrize("seed", SEEDS)
def test_same_seed_and_slates_give_recoworld_v0s_trajectory(seed):
    first, played = play(RecoWorldAgentEnv(), seed)
    assert any("tools" in obs.metadata for obs in played) and any("tools" not in obs.metadata for obs in played)
    assert_same_as_gym(seed, first, played)


def test_the_env_plays_whole_episodes_through_play_episode():
    episode = play_episode(RecoWorldAgentEnv(), policy, seed=4)
    _, played = play(RecoWorldAgentEnv(), 4)
    assert episode.rewards == [obs.reward for obs in played] and episode.errors == []
    assert episode.done == played[-1].done and episode.truncated == played[-1].truncated


BAD_ACTIONS = {
    "wrong count": {"items": [0, 1]},
    "unknown id": {"items": list(range(9)) + [100]},
    "negative id": {"items": [-1] + list(range(1, 10))},
    "repeated id": {"items": [3] * 10},
    "both": {"items": list(range(10)), "tool_calls": [{"name": "finish"}]},
    "neither": {"message": "hello"},
    "unknown tool": {"tool_calls": [{"name": "search"}]},
    "unknown topic": {"tool_calls": [{"name": "retrieve", "attribute": "topic", "value": "knitting"}, {"name": "finish"}]},
    "unknown attribute": {"tool_calls": [{"name": "retrieve", "attribute": "recency"}, {"name": "rerank", "attribute": "mood"}]},
    "empty pool": {"tool_calls": [{"name": "rerank", "attribute": "quality"}]},
    "finish first": {"tool_calls": [{"name": "finish"}, {"name": "retrieve", "attribute": "recency"}]},
    "no calls": {"tool_calls": []},
    "not a list": {"items": "0 1 2"},
    "not ids": {"items": ["a"] * 10},
    "unknown field": {"items": list(range(10)), "slate": [1]},
    "message too long": {"items": list(range(10)), "message": "x" * 501},
    "not an object": [1, 2, 3],
}
NAMED = {
    "wrong count": "expected 10 candidate ids, got 2", "unknown id": "unknown candidate id 100",
    "negative id": "unknown candidate id -1", "repeated id": "candidate id 3 appears more than once",
    "both": "not both", "neither": "not both and not neither", "unknown tool": "tool_calls.0.name",
    "unknown topic": "unknown topic 'knitting'", "unknown attribute": "tool_calls[1]: unknown rank attribute 'mood'",
    "empty pool": "the pool is empty",
    "finish first": "finish must be the last call", "no calls": "tool_calls: empty", "not a list": "items",
    "not ids": "items.0", "unknown field": "unknown key 'slate'", "message too long": "message",
}


@pytest.mark.parametrize("name", sorted(BAD_ACTIONS))
def test_a_bad_action_gets_one_line_naming_it_and_changes_nothing(name):
    env = RecoWorldAgentEnv()
    before = env.reset(seed=5)
    state = env.state.model_copy()
    refused = env.step(BAD_ACTIONS[name])
    assert refused.error and "\n" not in refused.error and refused.error.startswith("action")
    assert NAMED.get(name, "action") in refused.error
    assert refused.reward == 0.0 and not refused.done  # no scenario defines an invalid-action penalty
    assert refused.candidates == before.candidates and refused.messages == before.messages
    assert env.state == state


def test_bad_actions_between_steps_leave_the_trajectory_unchanged():
    """Every bad action before every third step: the episode is still RecoWorld-v0's for those slates."""
    first, played = play(RecoWorldAgentEnv(), 1, bad_every=3)
    assert_same_as_gym(1, first, played)


def test_a_received_action_keeps_its_problem_but_a_clients_action_still_fails_fast():
    assert ReceivedAction.model_validate({"items": "x"})._problem.startswith("action: items")
    assert ReceivedAction.model_validate({"items": [1]})._problem is None
    with pytest.raises(ValueError):
        RecoWorldAction(items="x")


def test_after_the_end_a_step_is_refused_until_reset():
    env = RecoWorldAgentEnv()
    _, played = play(env, 2)
    assert env.state.ended
    refused = env.step(policy(played[-1]))
    assert refused.error == "the episode is over: call reset for a new user" and refused.reward == 0.0
    assert env.reset(seed=2).error is None and env.state.step_count == 0 and not env.state.ended


def test_no_episode_or_a_closed_session_raises_a_session_error():
    env = RecoWorldAgentEnv()
    with pytest.raises(SessionError, match="call reset first"):
        env.step({"items": list(range(10))})
    env.reset(seed=0)
    env.close()
    assert env.gym is None and not env.is_open  # the world is freed
    for call in (lambda: env.step({"items": list(range(10))}), lambda: env.reset(seed=0)):
        with pytest.raises(SessionError, match="session is closed"):
            call()


def test_state_follows_the_episode():
    env = RecoWorldAgentEnv()
    obs = env.reset(seed=3, episode_id="ep-7")
    for _ in range(4):
        obs = env.step(policy(obs))
    state = env.state
    assert (state.episode_id, state.step_count, state.scenario) == ("ep-7", 4, "quickstart")
    assert (state.day, state.session, state.user_id) == (obs.metadata["day"], obs.metadata["session"], obs.user_id)


def test_the_observation_shows_what_the_platform_sees_never_the_mindset():
    env = RecoWorldAgentEnv(scenario="instruction_following")
    obs = env.reset(seed=0)
    for _ in range(30):
        obs = env.step(policy(obs))
        if obs.done or obs.truncated:
            break
    text = obs.model_dump_json()
    assert "mindset" not in text and "satisfaction" not in text
    assert set(obs.metadata) <= {*INFO_KEYS, "slate", "tools"}
    assert len(obs.candidates) == 100 and obs.slate_size == 10 and obs.messages[0]["role"] == "system"


def test_the_wire_form_keeps_the_steps_metadata():
    from openenv.core.env_server.serialization import serialize_observation

    env = RecoWorldAgentEnv()
    obs = env.step(policy(env.reset(seed=0)))
    wire = serialize_observation(obs)
    assert wire["reward"] == obs.reward and wire["observation"]["metadata"] == obs.metadata
    assert RecoWorldObservation.model_validate({**wire["observation"], "reward": wire["reward"]}) == obs


def test_reset_options_choose_a_bundled_scenario_and_client_overrides():
    env = RecoWorldAgentEnv()
    obs = env.reset(seed=0, scenario="cold_start", config={"env": {"slate_size": 5}, "rewards": {"click": 3.0}})
    assert obs.slate_size == 5 and env.state.scenario == "cold_start"
    obs = env.step({"items": [0, 1, 2, 3, 4]})
    assert obs.error is None and len(obs.metadata["items"]) == 5
    assert env.reset(seed=0).slate_size == 10  # back to the server's scenario


@pytest.mark.parametrize("options, named", [
    ({"scenario": "/etc/passwd"}, "scenario must be a bundled name"),
    ({"scenario": "llm_users"}, "has llm users"),
    ({"config": {"catalog": {"source": "csv"}}}, "config.catalog cannot be set by a client"),
    ({"config": {"users": {"backend": "llm"}}}, "config.users.backend cannot be set by a client"),
    ({"config": {"seed": 5}}, "config.seed cannot be set by a client"),
    ({"config": [1]}, "config must be a mapping"),
    ({"config": {"env": {"slate_size": 0}}}, "slate_size"),
    ({"config": {"env": {"num_candidates": 100_000}}}, "num_candidates: 100000 is over the scenario's 100"),
    ({"config": {"env": {"num_candidates": 200, "slate_size": 20}}}, "num_candidates: 200 is over"),
    ({"config": {"env": {"history_length": 100_000}}}, "history_length: 100000 is over the scenario's 30"),
    ({"scenario": "cold_start", "config": {"env": {"num_candidates": 10_000}}}, "num_candidates: 10000 is over"),
    ({"config": {"users": {"segments": [{"weight": 1}] * 4000}}}, "4000 segments, a client may give at most 100"),
    ({"difficulty": "hard"}, "unknown option 'difficulty'"),
])
def test_reset_refuses_what_a_client_may_not_choose_in_one_line(options, named):
    with pytest.raises(ValueError, match=named) as err:
        RecoWorldAgentEnv().reset(seed=0, **options)
    assert "\n" not in str(err.value)


def _loaded(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_nothing_of_the_server_loads_on_import_recoworld():
    for statement in ("import recoworld", "import recoworld.cli", "import recoworld.env.single"):
        assert not {"openenv", "fastapi", "uvicorn", "gradio", "fastmcp"} & _loaded(statement), statement


def test_without_the_agent_extra_serve_says_what_to_install_in_one_line():
    code = "import sys; sys.modules['openenv'] = None; from recoworld.cli import app; app(['serve'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "pip install 'recoworld[agent]'" in out.stderr
