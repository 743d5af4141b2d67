"""Repeated slots in a Gym action: served once, the slot filled from the next unused candidate in
candidate order, counted in ``info["duplicate_positions"]``; the same in the single env, the vector
env and the SB3 VecEnv; a slate without repeats is served unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.env.actions import serve
from recoworld.env.single import RecoWorldEnv
from recoworld.env.vector import RecoWorldVectorEnv

CFG = {"catalog": {"synthetic": {"n_items": 300, "n_topics": 6, "n_creators": 10}},
       "env": {"num_candidates": 20, "slate_size": 5, "horizon_days": 5}}


def expected(cands: np.ndarray, positions: np.ndarray) -> tuple[list[int], int]:
    """The rule, written out plainly: first slot with an item keeps it; later ones take the next
    candidate (in candidate order) whose item is neither asked for nor already served."""
    asked = [int(cands[p]) for p in positions]
    served: list[int] = []
    pool = iter(int(c) for c in cands)
    repeats = 0
    for item in asked:
        if item in served:
            repeats += 1
            item = next((c for c in pool if c not in asked and c not in served), item)
        served.append(item)
    return served, repeats


def test_serve_fills_repeats_in_candidate_order_and_leaves_other_slates_alone() -> None:
    cands = np.array([[10, 11, 12, 13, 14, 15], [10, 11, 12, 13, 14, 15], [7, 7, 8, 9, 7, 8], [5, 5, 5, 5, 5, 6]])
    pos = np.array([[3, 3, 0], [2, 0, 4], [0, 1, 2], [0, 1, 2]])
    slates, repeats = serve(cands, pos)
    assert slates.tolist() == [[13, 11, 10], [12, 10, 14], [7, 9, 8], [5, 6, 5]]
    assert repeats.tolist() == [1, 0, 1, 2]  # the last: one item left to fill with, the other slot stays
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = rng.integers(0, 25, (1, 12))
        p = rng.integers(0, 12, (1, 6))
        got, n = serve(c, p)
        want, m = expected(c[0], p[0])
        assert got[0].tolist() == want and n[0] == m


def test_single_env_serves_each_item_once_and_says_how_many_slots_repeated() -> None:
    env = RecoWorldEnv("quickstart", CFG)
    env.reset(seed=3)
    rng = np.random.default_rng(4)
    flagged = 0
    for _ in range(60):
        cands = env.sim.candidates[0].copy()
        action = env.action_space.sample()
        action[1] = action[0]  # at least one repeat per slate
        want, repeats = expected(cands, action)
        _, _, term, trunc, info = env.step(action)
        assert info["items"] == env.catalog.item_id[want].tolist()
        assert len(set(info["items"])) == len(info["items"])  # 20 candidates of 300 items: enough to fill
        assert info["duplicate_positions"] == repeats >= 1
        flagged += repeats
        if term or trunc:
            env.reset(seed=int(rng.integers(100)))
    assert flagged >= 60


def test_a_slate_without_repeats_is_served_unchanged_and_a_repeat_equals_asking_for_its_fill() -> None:
    env, twin = RecoWorldEnv("quickstart", CFG), RecoWorldEnv("quickstart", CFG)
    env.reset(seed=8)
    twin.reset(seed=8)
    rng = np.random.default_rng(9)
    for _ in range(30):
        cands = env.sim.candidates[0].copy()
        _, first = np.unique(cands, return_index=True)
        distinct = rng.permutation(first)[:5]
        repeated = distinct.copy()
        repeated[2] = repeated[4]
        fill = np.flatnonzero(~np.isin(cands, cands[repeated]))[0]  # the first candidate not asked for
        fixed = repeated.copy()
        fixed[4] = fill  # what the repeated action is served as (slot 4 repeats slot 2)
        action, fixed_action = (distinct, distinct) if rng.random() < 0.5 else (repeated, fixed)
        got, want = env.step(action), twin.step(fixed_action)
        assert got[4]["items"] == want[4]["items"] == env.catalog.item_id[cands[fixed_action]].tolist()
        assert got[1] == want[1] and all(np.array_equal(got[0][k], want[0][k]) for k in got[0])
        assert want[4]["duplicate_positions"] == 0
        if got[2] or got[3]:
            break


@pytest.mark.parametrize("mode", ["slate", "topic"])
def test_vector_env_serves_each_item_once_like_single_envs(mode) -> None:
    n = 3
    venv = RecoWorldVectorEnv(n, "quickstart", CFG, action_mode=mode)
    singles = [RecoWorldEnv("quickstart", CFG, action_mode=mode) for _ in range(n)]
    venv.reset(seed=[20, 21, 22])
    for i, env in enumerate(singles):
        env.reset(seed=20 + i)
    for _ in range(8):
        actions = venv.action_space.sample()
        actions[:, 3] = actions[:, 0]
        obs, reward, term, trunc, info = venv.step(actions)
        rows = info["slate_rows"]
        assert all(len(set(r)) == len(r) for r in rows.tolist())
        if mode == "slate":
            assert (info["duplicate_positions"] >= 1).all()
        for i, env in enumerate(singles):
            s_obs, s_reward, *_, s_info = env.step(actions[i])
            assert s_info["items"] == env.catalog.item_id[rows[i]].tolist()
            assert s_info["duplicate_positions"] == info["duplicate_positions"][i] and s_reward == reward[i]
        if (term | trunc).any():
            break


def test_sb3_vec_env_samples_repeats_and_reports_them() -> None:
    pytest.importorskip("stable_baselines3")
    from recoworld.env.sb3 import RecoWorldVecEnv

    venv = RecoWorldVecEnv(2, config=CFG)
    venv.reset()
    venv.action_space.seed(0)
    seen = 0
    for _ in range(10):
        before = venv.venv.sim.candidates.copy()
        actions = np.stack([venv.action_space.sample() for _ in range(2)])
        _, _, _, infos = venv.step(actions)
        for i, info in enumerate(infos):
            assert info["duplicate_positions"] == expected(before[i], actions[i])[1]
            seen += info["duplicate_positions"]
    assert seen > 0  # 5 of 20 positions drawn with replacement repeat in about half the slates
