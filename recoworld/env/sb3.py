"""Stable-Baselines3 ``VecEnv`` over :class:`~recoworld.env.vector.RecoWorldVectorEnv`: one batched
world step per ``step`` call, for ``PPO("MultiInputPolicy", vec_env)`` and friends.

``stable_baselines3`` is an optional dependency (the ``rl`` extra); it is imported when this
module is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from recoworld.env.vector import RecoWorldVectorEnv


class RecoWorldVecEnv(VecEnv):
    """``n_envs`` RecoWorld-v0 users as an SB3 ``VecEnv`` (SB3's conventions: an env that ends is reset
    within the same step, its last observation in ``infos[i]["terminal_observation"]`` and
    ``infos[i]["TimeLimit.truncated"]`` set when the horizon, not churn, ended it).

    ``episode_seeds``: one sequence per env; env i serves its n-th user with
    ``reset(seed=episode_seeds[i][n % len])`` whatever seed SB3 passes (how training, validation and
    held-out users stay in their ranges). Without it, ``seed()`` seeds the next reset as SB3 does and
    later users come from each env's own generator. Each ended episode's ``days_active`` is in its info,
    and every info has ``duplicate_positions`` (slots that repeated an item, see ``recoworld.env.actions``).
    Observations are the vector env's in-place buffers (SB3 copies what it keeps).
    """

    def __init__(
        self,
        n_envs: int = 8,
        scenario: str | dict[str, Any] = "quickstart",
        config: dict[str, Any] | None = None,
        episode_seeds: Sequence[Sequence[int]] | None = None,
        **env_kwargs: Any,
    ) -> None:
        if episode_seeds is not None:
            if len(episode_seeds) != n_envs or any(len(s) == 0 for s in episode_seeds):
                raise ValueError(f"episode_seeds: expected {n_envs} non-empty seed sequences, got {len(episode_seeds)}")
        self.venv = RecoWorldVectorEnv(n_envs, scenario, config, autoreset_mode=AutoresetMode.DISABLED, **env_kwargs)
        super().__init__(n_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self.episode_seeds = episode_seeds
        self.episodes = np.zeros(n_envs, dtype=np.int64)
        self._actions: np.ndarray | None = None

    def _seeds_for(self, mask: np.ndarray) -> list[int | None]:
        seeds: list[int | None] = [None] * self.num_envs
        for i in np.flatnonzero(mask):
            if self.episode_seeds is not None:
                part = self.episode_seeds[i]
                seeds[i] = int(part[self.episodes[i] % len(part)])
            else:
                seeds[i] = self._seeds[i]
            self.episodes[i] += 1
        return seeds

    def reset(self) -> VecEnvObs:
        """Reset every user, each with its episode's seed (and options), and return the batched observation."""
        every = np.ones(self.num_envs, dtype=bool)
        obs, self._last_infos = self.venv.reset(seed=self._seeds_for(every))
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the slates for :meth:`step_wait` (the world steps all users at once there)."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step every user; finished users are reset in place, their infos carrying SB3's ``terminal_observation``,
        ``TimeLimit.truncated`` and ``days_active``."""
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{"duplicate_positions": int(d)} for d in info["duplicate_positions"].tolist()]
        if done.any():
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = {key: value[i].copy() for key, value in obs.items()}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["days_active"] = int(info["days_active"][i])
            obs, _ = self.venv.reset(seed=self._seeds_for(done), options={"reset_mask": done})
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        """Close the underlying vector env."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per index (all users share one env object)."""
        return [getattr(self.venv, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute on the one shared vector env (``indices`` cannot select users)."""
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        """Call the method once on the shared vector env and repeat its result per index."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """False for every env: the vector env wraps none of them."""
        return [False] * len(self._get_indices(indices))
