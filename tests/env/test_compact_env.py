"""RecoWorld-Compact-v0: the same world as RecoWorld-v0 with the compact observation (each candidate's topic as an
index instead of a one-hot). Users rely on it carrying exactly v0's information, in either env, through resets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import recoworld  # noqa: F401  (registers the envs)
from recoworld.world.observation import compact_observation

CONFIG = {"env": {"num_candidates": 30, "slate_size": 5}, "users": {"segments": [{"name": "restless", "traits": {"patience": {"mean": 0.1}}}]}}


def assert_same(full: dict[str, np.ndarray], compact: dict[str, np.ndarray], n_topics: int) -> None:
    want = compact_observation(full, n_topics)
    assert sorted(want) == sorted(compact)
    for key, value in want.items():
        np.testing.assert_array_equal(compact[key], value, err_msg=key)


@pytest.mark.parametrize("n", [1, 16])
def test_the_vector_env_observes_v0s_values_through_resets(n: int) -> None:
    full = gym.make_vec("RecoWorld-v0", num_envs=n, vectorization_mode="vector_entry_point", config=CONFIG)
    compact = gym.make_vec("RecoWorld-Compact-v0", num_envs=n, vectorization_mode="vector_entry_point", config=CONFIG)
    t = full.unwrapped.catalog.n_topics
    (o_full, _), (o_compact, _) = full.reset(seed=7), compact.reset(seed=7)
    full.action_space.seed(0)
    ended = 0
    for _ in range(80):
        assert compact.observation_space.contains(o_compact)
        assert_same(o_full, o_compact, t)
        actions = full.action_space.sample()
        o_full, r_full, term, trunc, _ = full.step(actions)
        o_compact, r_compact, *_ = compact.step(actions)
        np.testing.assert_array_equal(r_full, r_compact)
        ended += int((term | trunc).sum())
    assert ended > 0  # the comparison ran through autoresets


def test_the_single_env_observes_v0s_values_and_a_third_of_the_floats() -> None:
    full, compact = gym.make("RecoWorld-v0", config=CONFIG), gym.make("RecoWorld-Compact-v0", config=CONFIG)
    t = full.unwrapped.catalog.n_topics
    for seed in range(3):
        (o_full, _), (o_compact, _) = full.reset(seed=seed), compact.reset(seed=seed)
        for step in range(10):
            assert_same({k: v[None] for k, v in o_full.items()}, {k: v[None] for k, v in o_compact.items()}, t)
            o_full, _, term, trunc, _ = full.step(np.arange(5) + step)
            o_compact, *_ = compact.step(np.arange(5) + step)
            if term or trunc:
                break
    size = lambda space: sum(box.shape[0] for box in space.spaces.values())  # noqa: E731
    assert size(compact.observation_space) * 2 < size(full.observation_space)


def test_an_unknown_observation_layout_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"observation: 'tiny' is not one of \['full', 'compact'\]"):
        gym.make("RecoWorld-v0", observation="tiny")
