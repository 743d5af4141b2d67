"""Held-out evaluation of an SB3 model or a recommender: one episode per held-out user."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.rl.envs import HELD_OUT_OFFSET, gym_env
from recoworld.evaluation import headline as H
from recoworld.progress import stage
from recoworld.users.layout import A_UNSEEN

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
    scenario: str | dict[str, Any] = "quickstart",
    config: dict[str, Any] | None = None,
    batch: int = 50,
    retrain_every: int = 0,
) -> dict[str, Any]:
    """One episode per held-out user i (``reset(seed=seed_offset + i)``) served by ``policy``.

    ``policy`` is an SB3 model (deterministic ``predict`` on the observation; ``batch`` users are
    stepped together) or a :class:`BaseRecommender` (served from the env's user view, one user after
    another, so learners such as LinUCB carry what they learnt to the next user; always through
    ``action_mode="slate"``, as recommenders answer with candidate positions; the world and its
    users are the same in both action modes).
    With ``retrain_every`` > 0, a recommender that learns from logs (mf, sasrec) retrains on the
    impressions of the held-out users served so far after every ``retrain_every`` users (each user
    under its own id ``h<seed>``), as a population run retrains it every night.
    Returns means and standard errors of days active (``sim.days_active[0]`` at the end),
    episode reward, steps and clicks, the churned share, and the per-user values (those, and
    impressions reviewed, slates served with an instruction pending and their summed compliance).
    """
    if n_users < 1:
        raise ValueError("n_users: must be at least 1")
    if seed_offset < HELD_OUT_OFFSET:
        raise ValueError(f"seed_offset: held-out users start at {HELD_OUT_OFFSET} (seeds below are used in training and validation)")
    if isinstance(policy, BaseRecommender):
        return _evaluate_recommender(policy, n_users, seed_offset, scenario, config, retrain_every)
    if hasattr(policy, "predict") and hasattr(policy, "policy"):
        return _evaluate_model(policy, n_users, seed_offset, scenario, config, batch)
    raise TypeError(f"policy: expected an SB3 model or a BaseRecommender, got {type(policy).__name__}")


TOTALS = ("days_active", "reward", "steps", "clicks", "churned", "sessions", "reviewed", "compliance_sum", "compliance_n")


def _new_totals(n: int) -> dict[str, np.ndarray]:
    return {k: np.zeros(n) for k in TOTALS}


CLICKED = frozenset({"click", "like", "comment", "share"})
LOG_COLUMNS = ("user", "item", "action", "watch_seconds")  # what log-trained recommenders read (recoworld.agents.mf)


def _add_compliance(totals: dict[str, np.ndarray], users: np.ndarray, compliance: np.ndarray) -> None:
    """Compliance of the slates served while an instruction was pending (NaN where none was)."""
    scored = ~np.isnan(compliance)
    np.add.at(totals["compliance_sum"], users[scored], compliance[scored])
    np.add.at(totals["compliance_n"], users[scored], 1)


def _evaluate_recommender(
    rec: BaseRecommender, n: int, offset: int, scenario: str | dict[str, Any], config: dict | None, retrain_every: int = 0
) -> dict[str, Any]:
    # a recommender answers with candidate positions, so it is served in slate mode even when the
    # config asks for topic mode (the world, its users and their seeds are the same in both modes)
    config = copy.deepcopy(config) if config else {}
    config["env"] = {**config.get("env", {}), "action_mode": "slate"}
    env = gym_env(scenario, config)
    base = env.unwrapped
    totals = _new_totals(n)
    logs: dict[str, list] | None = {k: [] for k in LOG_COLUMNS} if retrain_every > 0 and rec.learns_from_logs else None
    one = np.zeros(1, dtype=np.int64)
    with stage("serving held-out users", total=n) as progress:
        for i in range(n):
            env.reset(seed=offset + i)
            # every reset draws its user as "u0"; the platform knows each held-out user by their own id
            base.sim.user_ids[0] = f"h{offset + i}"
            done = False
            while not done:
                view = base.sim.view(slice(None), with_text=rec.needs_text, with_observation=rec.needs_observation)
                choice = rec.slate(view)
                _obs, reward, terminated, truncated, info = env.step(choice.positions[0])
                labels = info["actions"]
                clicks = np.array([[a in CLICKED for a in labels]])
                reviewed = np.array([[a != "unseen" for a in labels]])
                rec.observe(view, choice.positions, clicks, reviewed)
                totals["reward"][i] += reward
                totals["steps"][i] += 1
                totals["clicks"][i] += clicks.sum()
                totals["reviewed"][i] += reviewed.sum()
                totals["sessions"][i] += info["session_ended"]
                one[0] = i
                _add_compliance(totals, one, np.array([np.nan if info["compliance"] is None else info["compliance"]]))
                if logs is not None:
                    logs["user"] += [view.user_ids[0]] * len(labels)
                    logs["item"] += info["items"]
                    logs["action"] += labels
                    logs["watch_seconds"] += info["watch_seconds"]
                done = terminated or truncated
            totals["days_active"][i] = base.sim.days_active[0]
            totals["churned"][i] = float(terminated)
            progress.advance()
            if logs is not None and (i + 1) % retrain_every == 0 and i + 1 < n:
                import pandas as pd

                with stage("retraining on the served users' logs"):
                    rec.retrain(pd.DataFrame(logs))
    env.close()
    return _summary(rec.name, totals, offset)


def _evaluate_model(model: BaseAlgorithm, n: int, offset: int, scenario: str, config: dict | None, batch: int) -> dict[str, Any]:
    """Held-out user i (seed ``offset + i``) served by ``model``; ``batch`` users at a time in one vector env."""
    from gymnasium.vector import AutoresetMode

    from recoworld.env.vector import RecoWorldVectorEnv

    width = max(1, min(batch, n))
    env = RecoWorldVectorEnv(width, scenario, copy.deepcopy(config) if config else None, autoreset_mode=AutoresetMode.DISABLED)
    totals = _new_totals(n)
    user = np.arange(width)  # the held-out user each env is serving; -1 = idle (serving a spare user)
    obs, _ = env.reset(seed=[offset + i for i in range(width)])
    next_user = width
    with stage("serving held-out users", total=n) as progress:
        while (user >= 0).any():
            actions, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(np.asarray(actions).reshape(width, -1))
            live = user >= 0
            np.add.at(totals["reward"], user[live], reward[live])
            np.add.at(totals["steps"], user[live], 1)
            np.add.at(totals["clicks"], user[live], info["rewards"]["click"][live])
            np.add.at(totals["reviewed"], user[live], (info["action_codes"][live] != A_UNSEEN).sum(axis=1))
            np.add.at(totals["sessions"], user[live], info["session_ended"][live])
            _add_compliance(totals, user[live], info["compliance"][live])
            ended = terminated | truncated
            if not ended.any():
                continue
            seeds: list[int | None] = [None] * width
            for s in np.flatnonzero(ended):
                i = user[s]
                if i >= 0:
                    totals["days_active"][i] = info["days_active"][s]
                    totals["churned"][i] = float(terminated[s])
                    progress.advance()
                if next_user < n:
                    user[s], seeds[s] = next_user, offset + next_user
                    next_user += 1
                else:  # no one left to serve: a spare user keeps the env stepping, unrecorded
                    user[s], seeds[s] = -1, offset + n + int(s)
            obs, _ = env.reset(seed=seeds, options={"reset_mask": ended})
    env.close()
    return _summary(type(model).__name__.lower(), totals, offset)
