"""LERL (planner over an RL policy) against PPO without a planner: interaction length and return.

Trains two PPO policies with the same budget: the low-level policy of LERL on PlannedEnv with the
heuristic planner, and a plain PPO on RecoWorld-v0. Both are evaluated on the same held-out users
(seeds >= 100,000), along with LERL under an LLM planner. No LLM is reachable here: the LLM planner
runs through the real litellm client against the local OpenAI-compatible server
(recoworld.testing.fake_server), whose scripted answer picks the user's two most engaged topics plus
one from the reflections, so that row measures the pipeline (prompts, reflections, fallbacks),
not a model's judgement.

    python benchmarks/lerl.py [--timesteps 30000] [--users 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO

import recoworld  # noqa: F401
from recoworld.agents.lerl import HeuristicPlanner, LLMPlanner, PlannedEnv
from recoworld.llm.config import LLMConfig, build_language_model
from recoworld.testing.fake_server import FakeLLMServer

os.environ.setdefault("OPENAI_API_KEY", "sk-local-benchmark")
CONFIG = {"catalog": {"synthetic": {"n_items": 5000}}}
HELD_OUT = 100_000


def make(planner=None) -> gym.Env:
    env = gym.make("RecoWorld-v0", config=CONFIG)
    return PlannedEnv(env, planner) if planner is not None else env


def evaluate(env: gym.Env, model: PPO, users: int) -> dict[str, float]:
    lengths, returns, days = [], [], []
    for i in range(users):
        obs, _ = env.reset(seed=HELD_OUT + i)
        total, steps, done = 0.0, 0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            steps += 1
            done = terminated or truncated
        lengths.append(steps)
        returns.append(total)
        days.append(int(env.unwrapped.sim.days_active[0]))
    sem = lambda x: float(np.std(x, ddof=1) / np.sqrt(len(x)))  # noqa: E731
    return {
        "slates": float(np.mean(lengths)), "slates_sem": sem(lengths),
        "return": float(np.mean(returns)), "return_sem": sem(returns),
        "days": float(np.mean(days)), "days_sem": sem(days),
    }


def planner_answer(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    topics = re.search(r"Topics: (.*)\.", prompt).group(1).split(", ")
    engaged = re.search(r"engaged most with: (.*)\.", prompt).group(1)
    picks = [t for t in engaged.split(", ") if t in topics][:2]
    lesson = re.findall(r"Planning ([a-z]+)", prompt)
    for t in [*lesson, *topics]:
        if len(picks) >= 3:
            break
        if t in topics and t not in picks:
            picks.append(t)
    return json.dumps({"categories": picks, "rationale": "what they engage with, plus what worked before"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    rows = {}
    start = time.perf_counter()
    low = PPO("MultiInputPolicy", make(HeuristicPlanner()), n_steps=512, batch_size=128, seed=0, verbose=0).learn(args.timesteps)
    plain = PPO("MultiInputPolicy", make(), n_steps=512, batch_size=128, seed=0, verbose=0).learn(args.timesteps)
    trained = time.perf_counter() - start
    rows["PPO, no planner"] = evaluate(make(), plain, args.users)
    rows["LERL, heuristic planner"] = evaluate(make(HeuristicPlanner()), low, args.users)
    with FakeLLMServer(responder=planner_answer) as server:
        model = build_language_model(LLMConfig(model="openai/test-model", api_base=server.base_url, max_retries=0))
        llm = LLMPlanner(model)
        rows["LERL, LLM planner (local server)"] = evaluate(make(llm), low, args.users)
        calls = server.count
    print(f"trained 2 x {args.timesteps} PPO steps in {trained:.0f} s; {args.users} held-out users")
    print(f"{'policy':36s} {'slates/user':>14s} {'return':>16s} {'days active':>14s}")
    for name, r in rows.items():
        print(f"{name:36s} {r['slates']:8.1f} ± {r['slates_sem']:<4.1f} {r['return']:9.1f} ± {r['return_sem']:<5.1f} "
              f"{r['days']:7.2f} ± {r['days_sem']:.2f}")
    print(f"LLM planner: {calls} calls, {llm.fallbacks} fallbacks, {len(llm.memory.items)} reflections kept")


if __name__ == "__main__":
    main()
