"""Held-out evaluation of an SB3 model or a recommender: one episode per held-out user."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.rl.envs import HELD_OUT_OFFSET, gym_env
from recoworld.evaluation import headline as H

if TYPE_CHECKING:  # pragma: no cover
    from stable_baselines3.common.base_class import BaseAlgorithm


def _summary(name: str, per_user: dict[str, np.ndarray], seed_offset: int) -> dict[str, Any]:
    out: dict[str, Any] = {"policy": name, "n_users": len(per_user["days_active"]), "seeds": [seed_offset, seed_offset + len(per_user["days_active"])]}
    for key in ("days_active", "reward", "steps", "clicks"):
        out[f"{key}_mean"] = float(per_user[key].mean())
        out[f"{key}_sem"] = H.sem(per_user[key])
    n = len(per_user["days_active"])
    out["slates_per_session"] = H.slates_per_session(float(per_user["steps"].sum()), float(per_user["sessions"].sum()))
    out["churned_share"] = H.churn_rate(float(per_user["churned"].sum()), n)
    out["per_user"] = {k: v.tolist() for k, v in per_user.items()}
    return out


def evaluate(
    policy: BaseAlgorithm | BaseRecommender,
    n_users: int = 200,
    seed_offset: int = HELD_OUT_OFFSET,
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    batch: int = 50,
) -> dict[str, Any]:
    """One episode per held-out user i (``reset(seed=seed_offset + i)``) served by ``policy``.

    ``policy`` is an SB3 model (deterministic ``predict`` on the observation; ``batch`` users are
    stepped together) or a :class:`BaseRecommender` (served from the env's user view, one user after
    another, so learners such as LinUCB carry what they learnt to the next user; always through
    ``action_mode="slate"``, as recommenders answer with candidate positions; the world and its
    users are the same in both action modes).
    Returns means and standard errors of days active (``sim.days_active[0]`` at the end),
    episode reward, steps and clicks, the churned share, and the per-user values.
    """
    if n_users < 1:
        raise ValueError("n_users: must be at least 1")
    if seed_offset < HELD_OUT_OFFSET:
        raise ValueError(f"seed_offset: held-out users start at {HELD_OUT_OFFSET} (seeds below are used in training and validation)")
    if isinstance(policy, BaseRecommender):
        return _evaluate_recommender(policy, n_users, seed_offset, scenario, config)
    if hasattr(policy, "predict") and hasattr(policy, "policy"):
        return _evaluate_model(policy, n_users, seed_offset, scenario, config, batch)
    raise TypeError(f"policy: expected an SB3 model or a BaseRecommender, got {type(policy).__name__}")


def _new_totals(n: int) -> dict[str, np.ndarray]:
    return {k: np.zeros(n) for k in ("days_active", "reward", "steps", "clicks", "churned", "sessions")}


CLICKED = frozenset({"click", "like", "comment", "share"})


def _evaluate_recommender(rec: BaseRecommender, n: int, offset: int, scenario: str, config: dict | None) -> dict[str, Any]:
    # a recommender answers with candidate positions, so it is served in slate mode even when the
    # config asks for topic mode (the world, its users and their seeds are the same in both modes)
    config = copy.deepcopy(config) if config else {}
    config["env"] = {**config.get("env", {}), "action_mode": "slate"}
    env = gym_env(scenario, config)
    base = env.unwrapped
    totals = _new_totals(n)
    for i in range(n):
        env.reset(seed=offset + i)
        done = False
        while not done:
            view = base.sim.view(slice(None), with_text=rec.needs_text, with_observation=rec.needs_observation)
            choice = rec.slate(view)
            _obs, reward, terminated, truncated, info = env.step(choice.positions[0])
            labels = info["actions"]
            clicks = np.array([[a in CLICKED for a in labels]])
            rec.observe(view, choice.positions, clicks, np.array([[a != "unseen" for a in labels]]))
            totals["reward"][i] += reward
            totals["steps"][i] += 1
            totals["clicks"][i] += clicks.sum()
            totals["sessions"][i] += info["session_ended"]
            done = terminated or truncated
        totals["days_active"][i] = base.sim.days_active[0]
        totals["churned"][i] = float(terminated)
    env.close()
    return _summary(rec.name, totals, offset)


def _evaluate_model(model: BaseAlgorithm, n: int, offset: int, scenario: str, config: dict | None, batch: int) -> dict[str, Any]:
    width = max(1, min(batch, n))
    envs = [gym_env(scenario, config) for _ in range(width)]
    totals = _new_totals(n)
    user = [-1] * width  # the held-out user each env is serving; -1 = idle
    obs: list[dict[str, np.ndarray] | None] = [None] * width
    next_user = 0

    def start(slot: int) -> None:
        nonlocal next_user
        if next_user < n:
            obs[slot], _ = envs[slot].reset(seed=offset + next_user)
            user[slot] = next_user
            next_user += 1
        else:
            user[slot], obs[slot] = -1, None

    for slot in range(width):
        start(slot)
    while any(u >= 0 for u in user):
        live = [s for s in range(width) if user[s] >= 0]
        stacked = {k: np.stack([obs[s][k] for s in live]) for k in obs[live[0]]}
        actions, _ = model.predict(stacked, deterministic=True)
        for s, action in zip(live, np.asarray(actions)):
            env, i = envs[s], user[s]
            obs[s], reward, terminated, truncated, info = env.step(action)
            totals["reward"][i] += reward
            totals["steps"][i] += 1
            totals["clicks"][i] += info["rewards"]["click"]
            totals["sessions"][i] += info["session_ended"]
            if terminated or truncated:
                totals["days_active"][i] = env.unwrapped.sim.days_active[0]
                totals["churned"][i] = float(terminated)
                start(s)
    for env in envs:
        env.close()
    return _summary(type(model).__name__.lower(), totals, offset)
