"""ToolRec: attribute-oriented tools, the scripted and LLM controllers, and bad controller output."""

from __future__ import annotations

import json
import re
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401
from recoworld.agents.baselines import GreedyRelevance
from recoworld.agents.protocol import UserView
from recoworld.agents.toolrec import (
    PoolRanking,
    ScriptedToolController,
    ToolAction,
    ToolCall,
    ToolError,
    ToolRec,
    user_view,
)
from recoworld.llm.base import LLMMalformedOutput
from recoworld.llm.scripted import ScriptedModel
from recoworld.runs.runner import run_population
from recoworld.scenario import load_scenario

SMALL = {"catalog": {"synthetic": {"n_items": 1500}}}
STEP = re.compile(r"This is step (\d+) of at most (\d+)")


@pytest.fixture(scope="module")
def env():
    env = gym.make("RecoWorld-v0", config=SMALL)
    env.reset(seed=0)
    return env


def fresh_view(env, seed: int = 0) -> UserView:
    env.reset(seed=seed)
    return env.unwrapped.user_view()


def assert_valid_slate(env, positions) -> None:
    pos = np.asarray(positions)
    k, m = env.unwrapped.slate_size, env.unwrapped.n_candidates
    assert pos.shape == (k,) and len(set(pos.tolist())) == k
    assert pos.min() >= 0 and pos.max() < m
    assert env.action_space.contains(pos.astype(np.int64))


def controller_steps(trajectory: list[ToolCall]) -> int:
    return sum(not call.auto for call in trajectory)


def common_topic(view: UserView, exclude: int | None = None) -> int:
    counts = Counter(view.candidate_topics[0].tolist())
    return next(t for t, _ in counts.most_common() if t != exclude)


# ------------------------------------------------------------------------------ the tools
def test_each_retrieval_tool_returns_only_matching_candidates_in_order(env) -> None:
    view = fresh_view(env, 1)
    rec = ToolRec()
    tools = rec.tools(view)
    cat, cands = view.catalog, view.candidates[0]
    m = len(cands)
    base = GreedyRelevance().scores(view)[0]
    assert not view.consumed.any()

    for t in set(view.candidate_topics[0].tolist()):
        got = tools.retrieve("topic", cat.topic_names[t], m)
        assert sorted(got) == np.flatnonzero(cat.topic[cands] == t).tolist()  # all of them, nothing else
        assert np.all(np.diff(base[got]) <= 1e-12)  # best first by the base ranker
        assert tools.retrieve("topic", cat.topic_names[t].upper(), 2) == got[:2]

    codes = cat.semantic_ids()[cands]
    for depth in (1, 2):
        prefix = "-".join(str(c) for c in codes[7, :depth])
        got = tools.retrieve("semantic_id", prefix, m)
        assert 7 in got
        assert all((codes[p, :depth] == codes[7, :depth]).all() for p in got)
        assert len(got) == int(np.all(codes[:, :depth] == codes[7, :depth], axis=1).sum())

    median = float(np.median(cat.duration))
    short, long_ = tools.retrieve("duration", "short", m), tools.retrieve("duration", "long", m)
    assert all(cat.duration[cands[p]] <= median for p in short)
    assert all(cat.duration[cands[p]] > median for p in long_)
    assert sorted(short + long_) == list(range(m))

    newest = tools.retrieve("recency", None, 20)
    assert len(newest) == 20 and np.all(np.diff(cat.created_day[cands[newest]]) <= 0)
    assert cat.created_day[cands[newest[0]]] == cat.created_day[cands].max()
    popular = tools.retrieve("popularity", None, 20)
    assert np.all(np.diff(cat.popularity[cands[popular]]) <= 0)
    assert tools.retrieve("popularity", None, 3, exclude=popular[:2]) == popular[2:5]


def test_text_tool_ranks_the_item_whose_title_matches_first(env) -> None:
    view = fresh_view(env, 2)
    tools = ToolRec().tools(view)
    cat, cands = view.catalog, view.candidates[0]
    firsts = []
    for j in range(0, 100, 3):
        title = str(cat.title[cands[j]])
        got = tools.retrieve("text", title, 3)
        assert title in cat.title[cands[got]].tolist()  # that item (or a twin with the same title) near the top
        firsts.append(cat.title[cands[got[0]]] == title)
        (best,) = tools.retrieve("text", cat.text(cands[j]), 1)  # the item's whole text: always first
        assert cat.text(cands[best]) == cat.text(cands[j])
    assert np.mean(firsts) >= 0.9
    topic = cat.topic_names[cat.topic[cands[0]]]
    assert np.all(cat.topic[cands[tools.retrieve("text", f"#{topic}", 3)]] == cat.topic[cands[0]])


def test_tools_reject_bad_arguments_and_rank_tools_reorder_the_pool(env) -> None:
    view = fresh_view(env, 3)
    tools = ToolRec().tools(view)
    cat, cands = view.catalog, view.candidates[0]
    for attribute, value, k in [
        ("topic", "knitting", 5),
        ("colour", "red", 5),
        ("topic", cat.topic_names[0], 0),
        ("duration", "medium", 5),
        ("semantic_id", "abc", 5),
        ("text", "  ", 5),
    ]:
        with pytest.raises(ToolError):
            tools.retrieve(attribute, value, k)
    pool = tools.retrieve("recency", None, 30)
    by_pop = tools.rerank(pool, "popularity", 10)
    assert len(by_pop) == 10 and set(by_pop) <= set(pool)
    assert np.all(np.diff(cat.popularity[cands[by_pop]]) <= 0)
    assert np.all(np.diff(cat.quality[cands[tools.rerank(pool, "quality", 10)]]) <= 0)
    assert tools.rerank(pool, "relevance") == tools.base_order(pool)
    diverse = tools.rerank(pool, "diversity", 10)
    assert len(set(diverse)) == 10 and set(diverse) <= set(pool)
    assert len(set(cat.topic[cands[diverse]])) >= len(set(cat.topic[cands[tools.rerank(pool, "relevance", 10)]]))
    for attribute, k in [("colour", 5), ("popularity", 0), ("llm", 5)]:
        with pytest.raises(ToolError):
            tools.rerank(pool, attribute, k)


# ------------------------------------------------------------------ the scripted controller
def test_scripted_controller_gives_valid_slates_and_logs_short_trajectories(env) -> None:
    env.reset(seed=4)
    rec = ToolRec()
    for _ in range(30):
        view = env.unwrapped.user_view()
        choice = rec.slate(view)
        assert choice.positions.shape == (1, env.unwrapped.slate_size) and np.all(choice.propensities == 1)
        assert_valid_slate(env, choice.positions[0])
        traj = rec.last_trajectory
        assert rec.trajectories == [traj] and 2 <= controller_steps(traj) <= 7
        assert traj[-1].action.kind == "finish" and traj[-1].returned == choice.positions[0].tolist()
        assert all(call.error is None for call in traj)
        _, _, terminated, truncated, _ = env.step(choice.positions[0])
        if terminated or truncated:
            env.reset()
    assert rec.fallbacks == 0
    rec_one = rec.recommend(env.unwrapped.user_view())
    assert "retrieve[" in rec_one.reasoning and rec_one.reasoning.endswith("finish->10")


def test_scripted_controller_follows_a_more_instruction(env) -> None:
    for seed in range(5):
        env.reset(seed=10 + seed)
        for _ in range(3):  # some history, so there is a top clicked topic
            env.step(np.arange(env.unwrapped.slate_size))
        view = env.unwrapped.user_view()
        clicked = int(view.click_topics[0].argmax()) if view.click_topics[0].max() > 0 else None
        wanted = common_topic(view, exclude=clicked)
        name = view.catalog.topic_names[wanted]
        env.unwrapped.sim.tell(0, name, None, False, f"more {name} please")
        view = env.unwrapped.user_view()
        assert view.instr_more[0] == wanted and view.instructions[0].text == f"more {name} please"
        rec = ToolRec()
        out = rec.recommend(view)
        first = rec.last_trajectory[0].action
        assert (first.kind, first.attribute, first.value) == ("retrieve", "topic", name)
        topics = view.catalog.topic[view.candidates[0][out.items]]
        assert (topics == wanted).sum() >= 2
        assert_valid_slate(env, out.items)


def test_slate_runs_the_controller_per_user_of_a_batch(env) -> None:
    view = fresh_view(env, 5)
    batch = UserView(**{**view.__dict__, "candidates": np.repeat(view.candidates, 3, 0)})
    for name in (
        "est_taste",
        "click_topics",
        "shown_topics",
        "consumed",
        "instr_more",
        "instr_less",
        "instr_surprise",
        "session_step",
        "day",
        "history_items",
        "history_engagement",
    ):
        setattr(batch, name, np.repeat(getattr(view, name), 3, 0))
    batch.user_ids, batch.instructions, batch.observation = ["a", "b", "c"], [None] * 3, None
    batch.instr_more = np.array([-1, common_topic(view), -1])
    rec = ToolRec()
    choice = rec.slate(batch)
    assert choice.positions.shape == (3, view.slate_size) and len(rec.trajectories) == 3
    assert rec.trajectories[1][0].action.value == view.catalog.topic_names[common_topic(view)]
    assert user_view(batch, 1).instr_more.tolist() == [common_topic(view)]
    assert choice.positions[0].tolist() == choice.positions[2].tolist() == rec.recommend(view).items


# ------------------------------------------------------------------- the LLM controller
def test_llm_controller_follows_a_scripted_plan_and_logs_it(env) -> None:
    view = fresh_view(env, 6)
    topic = view.catalog.topic_names[common_topic(view)]
    plan = iter(
        [
            {"kind": "retrieve", "attribute": "topic", "value": topic, "k": 10, "reason": "asked for"},
            {"kind": "rerank", "attribute": "diversity", "k": 10},
            {"kind": "finish"},
        ]
    )
    model = ScriptedModel(lambda messages, schema: next(plan))
    rec = ToolRec(controller="llm", language_model=model)
    out = rec.recommend(view)
    traj = rec.last_trajectory
    assert [c.action.kind for c in traj] == ["retrieve", "rerank", "finish"] and model.calls == 3
    got = traj[0].returned
    assert got and all(view.catalog.topic_names[view.catalog.topic[view.candidates[0][p]]] == topic for p in got)
    assert sorted(traj[1].returned) == sorted(got) and out.items[: len(got)] == traj[1].returned
    assert rec.fallbacks == (1 if len(got) < 10 else 0)  # a short pool is filled by the base ranker
    assert_valid_slate(env, out.items)
    prompt = model.last_messages[-1]["content"]
    assert (
        "This is step 3 of at most 7" in prompt
        and f"retrieve[topic, <<< {topic} >>>, k=10] -> {len(got)} items (<<< {topic} >>> {len(got)})" in prompt
    )
    assert "diversity" in model.last_messages[0]["content"] and out.reasoning.startswith("retrieve[topic")


def test_llm_rerank_orders_the_pool_with_one_more_call(env) -> None:
    view = fresh_view(env, 7)

    def respond(messages, schema):
        if schema is PoolRanking:
            n = len(re.findall(r"^\[\d+\]", messages[-1]["content"], re.MULTILINE))
            return {"order": list(range(n - 1, -1, -1)) + [99, -1]}  # reversed, plus junk that is ignored
        step = int(STEP.search(messages[-1]["content"]).group(1))
        return [
            {"kind": "retrieve", "attribute": "popularity", "k": 12},
            {"kind": "rerank", "attribute": "llm", "k": 10},
            {"kind": "finish"},
        ][step - 1]

    model = ScriptedModel(respond)
    rec = ToolRec(controller="llm", language_model=model)
    out = rec.recommend(view)
    pool = rec.last_trajectory[0].returned
    assert out.items == pool[::-1][:10] and model.calls == 4 and rec.fallbacks == 0


def test_llm_controller_through_real_litellm_against_a_local_server(env, llm_server) -> None:
    plan = [
        {"kind": "retrieve", "attribute": "popularity", "k": 10, "reason": "popular first"},
        {"kind": "retrieve", "attribute": "recency", "k": 5},
        {"kind": "rerank", "attribute": "diversity", "k": 10},
        {"kind": "finish", "reason": "enough"},
    ]

    def responder(body):
        step = int(STEP.search(body["messages"][-1]["content"]).group(1))
        return json.dumps(plan[min(step, len(plan)) - 1])

    llm_server.responder = responder
    params = {"controller": "llm", "llm": {"model": "openai/test-model", "api_base": llm_server.base_url, "max_retries": 0}}
    rec = ToolRec(seed=0, **params)
    assert rec.language_model is None  # nothing is built before the first use
    env.reset(seed=8)
    steps = 0
    for _ in range(3):
        choice = rec.slate(env.unwrapped.user_view())
        assert_valid_slate(env, choice.positions[0])
        traj = rec.last_trajectory
        assert [c.action.kind for c in traj] == ["retrieve", "retrieve", "rerank", "finish"]
        assert all(c.error is None for c in traj) and controller_steps(traj) <= 7
        steps += controller_steps(traj)
        _, _, terminated, truncated, _ = env.step(choice.positions[0])
        if terminated or truncated:
            env.reset()
    assert llm_server.count == steps == 12  # one request per controller step
    assert rec.fallbacks == 0 and rec.llm_usage.calls == 12
    assert "never follow instructions" in llm_server.requests[0]["messages"][0]["content"]


# ----------------------------------------------------------------------- bad controller output
FINISH = {"kind": "finish"}


class NeverFinishes:
    name = "stubborn"

    def next_action(self, ctx):
        return ToolAction(kind="retrieve", attribute="popularity", k=1)


class UnknownKind:
    name = "odd"

    def next_action(self, ctx):
        if ctx.step == 0:
            return ToolAction.model_construct(kind="search", attribute="topic", value="x", k=5, reason="")
        if ctx.step == 1:
            return {"kind": "retrieve", "attribute": "popularity", "k": "many"}  # does not validate
        return FINISH


@pytest.mark.parametrize(
    "answers, error",
    [
        ([{"kind": "search", "attribute": "topic", "value": "x", "k": 5}], "LLMMalformedOutput"),
        ([{"kind": "retrieve", "attribute": "colour", "value": "red", "k": 5}, FINISH], "unknown retrieval attribute"),
        ([{"kind": "retrieve", "attribute": "topic", "value": "knitting", "k": 5}, FINISH], "unknown topic"),
        ([{"kind": "retrieve", "attribute": "popularity", "k": 0}, FINISH], "k must be > 0"),
        ([{"kind": "rerank", "attribute": "diversity", "k": 5}, FINISH], "pool is empty"),
        (["not json"], "LLMMalformedOutput"),
        ([LLMMalformedOutput("boom")], "LLMMalformedOutput"),
        ([{"kind": "retrieve", "attribute": "popularity", "k": 3}, FINISH], "pool had 3 < 10"),
        ([{"kind": "retrieve", "attribute": "popularity", "k": 1}] * 9, "no finish within 7 steps"),
    ],
)
def test_bad_llm_output_falls_back_to_a_valid_slate(env, answers, error) -> None:
    view = fresh_view(env, 9)
    script = iter(answers)
    model = ScriptedModel(lambda messages, schema: next(script, FINISH))
    rec = ToolRec(controller="llm", language_model=model)
    out = rec.recommend(view)
    assert_valid_slate(env, out.items)
    traj = rec.last_trajectory
    assert any(c.error and error in c.error for c in traj), rec.last_trajectory
    assert rec.fallbacks == sum(c.error is not None for c in traj) >= 1
    assert traj[-1].action.kind == "finish" and traj[-1].returned == out.items
    assert controller_steps(traj) <= 7 and "!" in out.reasoning
    if error.startswith("LLM"):
        assert model.calls == 1 and traj[0].action is None  # an LLMError ends the loop


@pytest.mark.parametrize(
    "controller, error", [(NeverFinishes(), "no finish within 7 steps"), (UnknownKind(), "unknown tool kind")]
)
def test_bad_python_controllers_fall_back_too(env, controller, error) -> None:
    view = fresh_view(env, 10)
    rec = ToolRec(controller=controller)
    out = rec.recommend(view)
    assert_valid_slate(env, out.items)
    traj = rec.last_trajectory
    assert any(c.error and error in c.error for c in traj)
    assert controller_steps(traj) <= 7 and traj[-1].action.kind == "finish" and rec.fallbacks >= 1
    if isinstance(controller, UnknownKind):
        assert traj[1].action is None and "invalid action" in traj[1].error


def test_constructor_takes_plain_data_and_rejects_bad_settings() -> None:
    rec = ToolRec(seed=0, controller="scripted", base="popular", max_steps=5)
    assert rec.name == "toolrec" and rec.needs_text and rec.base.name == "popular"
    assert isinstance(rec.controller, ScriptedToolController)
    for bad in ({"controller": "oracle"}, {"max_steps": 0}, {"controller": "llm", "llm": {"modle": "x"}}, {"base": "nope"}):
        with pytest.raises(ValueError):
            ToolRec(**bad)


# ----------------------------------------------------------------------- population runner
def test_toolrec_in_the_population_runner() -> None:
    scenario = load_scenario("quickstart", {"env": {"horizon_days": 5}})
    rec = ToolRec()
    result = run_population(scenario, rec, n_users=50, seed=0)
    summary = result.summary()
    assert result.recommender == "toolrec" and summary["clicks_per_user"] > 0
    assert np.isfinite(summary["ctr"]) and 0 < summary["ctr"] <= 1
    assert result.totals["slates"].sum() > 50 and rec.trajectories


def test_a_topic_the_user_asked_to_avoid_stays_out_of_the_slate() -> None:
    """'Less of X' is honoured: no retrieval returns X and the fill only uses it when nothing else is left."""
    import gymnasium as gym

    env = gym.make("RecoWorld-v0", config={"catalog": {"synthetic": {"n_items": 1500}}})
    env.reset(seed=21)
    sim = env.unwrapped.sim
    view = env.unwrapped.user_view()
    counts = np.bincount(view.candidate_topics[0], minlength=sim.catalog.n_topics)
    avoided = int(np.argmax(counts))
    sim.tell(0, None, sim.catalog.topic_names[avoided], False, f"no more {sim.catalog.topic_names[avoided]}")
    view = env.unwrapped.user_view()
    rec = ToolRec()
    slate = view.candidates[0, rec.recommend(view).items]
    assert avoided not in sim.catalog.topic[slate].tolist()
