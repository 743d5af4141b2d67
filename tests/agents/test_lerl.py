"""LERL: planners (heuristic, LLM with reflection memory) over a masked low-level RL policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

import recoworld  # noqa: F401
from recoworld.agents.lerl import (
    MIN_CATEGORIES,
    HeuristicPlanner,
    LERLRecommender,
    LLMPlanner,
    PlannedEnv,
    ReflectionMemory,
    project_action,
)
from recoworld.llm.base import LLMTimeout
from recoworld.llm.scripted import ScriptedModel
from recoworld.runs.runner import run_population
from recoworld.scenario import load_scenario

CONFIG = {"catalog": {"synthetic": {"n_items": 2000}}}


def test_reflection_memory_keeps_200_and_samples_by_exp_of_return() -> None:
    memory = ReflectionMemory()
    for k in range(250):
        memory.add(f"r{k}", session_return=0.0)
    assert len(memory.items) == 200 and memory.items[0][0] == "r50"  # the oldest are dropped
    memory = ReflectionMemory()
    memory.add("good", 30.0)
    for k in range(9):
        memory.add(f"poor{k}", 0.0)
    rng = np.random.default_rng(0)
    draws = [memory.sample(rng, k=1)[0] for _ in range(2000)]
    share = draws.count("good") / len(draws)
    expected = np.exp(3.0) / (np.exp(3.0) + 9)  # exp(0.1 x 30) against nine exp(0)
    assert abs(share - expected) < 0.03
    assert len(set(memory.sample(rng, k=3))) == 3  # without replacement


def _view(seed: int = 0):
    env = gym.make("RecoWorld-v0", config=CONFIG)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(3):
        env.step(env.action_space.sample())
    return env, env.unwrapped.user_view()


def test_heuristic_planner_picks_two_present_categories_and_respects_instructions() -> None:
    env, view = _view()
    plan = HeuristicPlanner().plan(view, 0)
    present = set(view.candidate_topics[0].tolist())
    assert len(plan) >= MIN_CATEGORIES and len(set(plan)) == len(plan) and set(plan) <= present
    sim = env.unwrapped.sim
    more, less = int(view.candidate_topics[0][0]), int(view.candidate_topics[0][1])
    if more != less:
        sim.tell(0, sim.catalog.topic_names[more], sim.catalog.topic_names[less], False, "x")
        plan = HeuristicPlanner().plan(env.unwrapped.user_view(), 0)
        assert plan[0] == more and less not in plan


def test_llm_planner_uses_the_model_falls_back_and_remembers() -> None:
    env, view = _view(1)
    names = view.catalog.topic_names
    answers = iter([
        {"categories": [names[0], names[1]], "rationale": "ok"},
        {"categories": [names[2], "atlantis"], "rationale": "half unknown"},
        LLMTimeout("slow"),
    ])
    model = ScriptedModel(lambda m, s: next(answers))
    planner = LLMPlanner(model, seed=0)
    assert planner.plan(view, 0) == [0, 1]
    second = planner.plan(view, 0)
    assert second[0] == 2 and len(second) >= MIN_CATEGORIES and planner.fallbacks == 1  # filled up by the heuristic
    assert len(planner.plan(view, 0)) >= MIN_CATEGORIES and planner.fallbacks == 2  # model error: heuristic plan
    planner.reflect("Planning cooking gave a long session", 12.0)
    model.respond = lambda m, s: {"categories": [names[3], names[4]]}
    planner.plan(view, 0)
    assert "Planning cooking gave a long session" in model.last_messages[-1]["content"]


def test_project_action_keeps_slots_inside_the_plan_and_distinct() -> None:
    topics = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    scores = np.arange(8, dtype=float)
    out = project_action(np.array([2, 2, 5, 0]), topics, [0, 1], scores)
    assert set(topics[out]) <= {0, 1} and len(set(out.tolist())) == 4 and out[3] == 0


def test_planned_env_serves_only_planned_categories_and_writes_reflections() -> None:
    planner = LLMPlanner(ScriptedModel(lambda m, s: LLMTimeout("down")))  # heuristic plans, memory still kept
    env = PlannedEnv(gym.make("RecoWorld-v0", config=CONFIG), planner)
    obs, info = env.reset(seed=2)
    env.action_space.seed(2)
    cat = env.unwrapped.catalog
    sessions = 0
    for _ in range(120):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        served = {cat.topic_names[cat.topic[cat.index_of[i]]] for i in info["items"]}
        assert served <= set(info["planned"])
        sessions += info["session_ended"]
        if terminated or truncated:
            break
    assert len(planner.memory.items) == sessions > 0


def test_lerl_recommender_runs_in_the_population_runner() -> None:
    low = PPO("MultiInputPolicy", PlannedEnv(gym.make("RecoWorld-v0", config=CONFIG), HeuristicPlanner()), n_steps=64, batch_size=32, seed=0).learn(64)
    scenario = load_scenario("quickstart", {**CONFIG, "env": {"horizon_days": 3}})
    result = run_population(scenario, LERLRecommender(policy=low), n_users=20, seed=0)
    assert result.totals["slates"].sum() > 0 and result.summary()["ctr"] > 0
    with pytest.raises(ValueError, match="policy"):
        run_population(scenario, LERLRecommender(), n_users=2, seed=0)
