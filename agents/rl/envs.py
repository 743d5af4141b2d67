"""Seeds, retention rewards and env factories for RL on RecoWorld-v0 (no torch here).

Seeds. Every episode is one user, drawn by ``reset(seed=s)``; the three ranges never overlap:

* training episodes use seeds in ``TRAIN_SEEDS`` = [0, 50_000) (each vec-env worker takes its
  own slice of a seeded permutation of the range, one seed per episode);
* the ``EvalCallback`` that picks the best checkpoint during training uses the first
  ``eval_episodes`` seeds of ``VALIDATION_SEEDS`` = [50_000, 100_000);
* :func:`recoworld.agents.rl.evaluation.evaluate` uses ``seed_offset + i`` for user i, with
  ``seed_offset >= HELD_OUT_OFFSET`` (100_000) enforced, so held-out users are never seen in
  training or model selection.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import numpy as np

import recoworld  # noqa: F401  (registers RecoWorld-v0)

if TYPE_CHECKING:  # pragma: no cover
    from stable_baselines3.common.vec_env import VecEnv

Algo = Literal["ppo", "a2c", "dqn"]

TRAIN_SEEDS = range(50_000)
VALIDATION_SEEDS = range(50_000, 100_000)
HELD_OUT_OFFSET = 100_000

DQN_ERROR = "dqn: RecoWorld-v0's action space is MultiDiscrete; use ppo or a2c"


def retention_rewards() -> dict[str, float]:
    """Reward weights that put long-term retention first (pass as ``config={"rewards": ...}``).

    Coming back (``return``, paid as 1/gap days at the end of a session) and not churning dominate;
    in-session engagement keeps a small weight so early learning has a signal to follow.
    """
    return {
        "return": 5.0,
        "churn": -20.0,
        "click": 0.2,
        "like": 0.1,
        "share": 0.1,
        "comment": 0.1,
        "watch_minutes": 0.02,
        "leave": -0.5,
        "skip": 0.0,
    }


def retention_config(num_candidates: int = 20, slate_size: int = 5) -> dict[str, Any]:
    """Config overrides of the retention comparison: retention rewards and a smaller candidate set
    and slate than quickstart's (100 / 10), so PPO learns within minutes on 2 cores. Use the same
    config for the RL policy and every baseline it is compared with."""
    return {"env": {"num_candidates": num_candidates, "slate_size": slate_size}, "rewards": retention_rewards()}


# --------------------------------------------------------------------------- environments
class EpisodeSeeds(gym.Wrapper):
    """Resets episode n with ``seeds[n % len(seeds)]``, whatever seed the caller passes, so the users an
    env serves are exactly the ones listed."""

    def __init__(self, env: gym.Env, seeds: Sequence[int]) -> None:
        super().__init__(env)
        if len(seeds) == 0:
            raise ValueError("episode_seeds: expected at least one seed")
        self.seeds = seeds
        self.episodes = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset with the next of the fixed episode seeds, in turn (the ``seed`` argument is ignored)."""
        s = int(self.seeds[self.episodes % len(self.seeds)])
        self.episodes += 1
        return self.env.reset(seed=s, options=options)


class FirstResetSeed(gym.Wrapper):
    """Seeds the first reset with ``seed`` when the caller gives none (gymnasium's convention:
    later users then come from the env's own generator)."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        self._seed: int | None = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset with the seed given at construction the first time (unless one is passed), then as asked."""
        seed, self._seed = (self._seed if seed is None else seed), None
        return self.env.reset(seed=seed, options=options)


def gym_env(scenario: str, config: dict[str, Any] | None) -> gym.Env:
    return gym.make("RecoWorld-v0", scenario=scenario, config=copy.deepcopy(config) if config else None)


def make_env(
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    seed: int = 0,
    monitor: bool = True,
    episode_seeds: Sequence[int] | None = None,
) -> gym.Env:
    """``gym.make("RecoWorld-v0")``, Monitor-wrapped by default.

    Without ``episode_seeds`` the first reset is seeded with ``seed`` (unless the caller passes one)
    and later users come from the env's own generator; with them, episode n resets with
    ``episode_seeds[n % len(episode_seeds)]`` (how training and validation envs stay in their ranges).
    """
    env = gym_env(scenario, config)
    env = FirstResetSeed(env, seed) if episode_seeds is None else EpisodeSeeds(env, episode_seeds)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def training_seeds(n_envs: int, seed: int = 0, seeds: range = TRAIN_SEEDS) -> list[np.ndarray]:
    """Disjoint per-worker episode seeds: worker i takes every n_envs-th seed of a permutation of ``seeds``."""
    order = np.random.default_rng(seed).permutation(np.arange(seeds.start, seeds.stop, seeds.step))
    return [order[i::n_envs] for i in range(n_envs)]


def make_vec_env(
    n_envs: int = 4,
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    seed: int = 0,
    monitor: bool = True,
    seeds: range = TRAIN_SEEDS,
    vectorized: bool = True,
) -> VecEnv:
    """``n_envs`` users, each user seed from ``seeds`` (the training range by default): one batched
    simulation (``recoworld.env.sb3.RecoWorldVecEnv``, VecMonitor-wrapped with ``monitor``), or with
    ``vectorized=False`` SB3's DummyVecEnv of Monitor-wrapped single envs stepped one by one."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    if n_envs < 1:
        raise ValueError("n_envs: must be at least 1")
    parts = training_seeds(n_envs, seed, seeds)
    if vectorized:
        from recoworld.env.sb3 import RecoWorldVecEnv

        venv = RecoWorldVecEnv(n_envs, scenario, copy.deepcopy(config) if config else None, episode_seeds=parts)
        return VecMonitor(venv) if monitor else venv

    def factory(i: int) -> Callable[[], gym.Env]:
        return lambda: make_env(scenario, config, monitor=monitor, episode_seeds=parts[i])

    return DummyVecEnv([factory(i) for i in range(n_envs)])
