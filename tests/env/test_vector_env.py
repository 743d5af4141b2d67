"""RecoWorld-v0 as a native vector env: gym.make_vec in all three modes, the same trajectories as N
single envs with the same seeds, Gymnasium's vector-env conventions (spaces, seeding, autoreset,
batched infos with masks, fresh data per call), the SB3 adapter, and one LLM batch per step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import recoworld  # noqa: F401  (registers RecoWorld-v0)
from recoworld.env.vector import RecoWorldVectorEnv

SMALL = {"catalog": {"synthetic": {"n_items": 1500}}}


def make_vec(n: int, **kwargs) -> RecoWorldVectorEnv:
    return gym.make_vec("RecoWorld-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def actions_for(env, rng: np.random.Generator) -> np.ndarray:
    """Distinct random positions (or topics) per env."""
    n, (k,), width = env.num_envs, env.single_action_space.shape, int(env.single_action_space.nvec[0])
    return np.stack([rng.permutation(width)[:k] if width >= k else rng.integers(0, width, k) for _ in range(n)])


# ------------------------------------------------------------------ make_vec, spaces
def test_make_vec_uses_the_vector_entry_point_with_batched_spaces() -> None:
    env = make_vec(3, config=SMALL)
    assert isinstance(env, RecoWorldVectorEnv) and env.num_envs == 3
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.action_space == batch_space(env.single_action_space, 3)
    assert env.observation_space == batch_space(env.single_observation_space, 3)
    single = gym.make("RecoWorld-v0", config=SMALL)
    assert env.single_action_space == single.action_space and env.single_observation_space == single.observation_space
    assert make_vec(2, config=SMALL, action_mode="topic").single_action_space == gym.make(
        "RecoWorld-v0", config=SMALL, action_mode="topic"
    ).action_space
    assert make_vec(2, config=SMALL, autoreset_mode="same_step").metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


@pytest.mark.parametrize("mode", ["sync", "async", "vector_entry_point"])
def test_make_vec_all_three_modes_step_the_same_users(mode) -> None:
    env = gym.make_vec("RecoWorld-v0", num_envs=2, vectorization_mode=mode, config=SMALL)
    obs, _ = env.reset(seed=[5, 6])
    assert env.observation_space.contains(obs)
    reference = make_vec(2, config=SMALL)
    ref_obs, _ = reference.reset(seed=[5, 6])
    assert data_equivalence(obs, ref_obs)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = actions_for(reference, rng)
        obs, reward, terminated, truncated, _ = env.step(a)
        ref_obs, ref_reward, *_ = reference.step(a)
        assert data_equivalence(obs, ref_obs) and np.allclose(reward, ref_reward)
    env.close()


# ------------------------------------------------------------------ equivalence with N single envs
@pytest.mark.parametrize("action_mode", ["slate", "topic"])
@pytest.mark.parametrize("autoreset", ["next_step", "same_step"])
def test_same_trajectories_as_n_single_envs_with_the_same_seeds(action_mode, autoreset) -> None:
    n, seeds = 3, [11, 12, 13]
    venv = make_vec(n, config=SMALL, action_mode=action_mode, autoreset_mode=autoreset)
    envs = [gym.make("RecoWorld-v0", config=SMALL, action_mode=action_mode) for _ in range(n)]
    vobs, vinfo = venv.reset(seed=seeds)
    sobs = [e.reset(seed=s)[0] for e, s in zip(envs, seeds)]
    pending = [False] * n  # next_step: the single env resets at the step after its episode ended
    rng, episodes = np.random.default_rng(0), 0
    for _ in range(300):
        for i in range(n):
            assert data_equivalence({k: v[i] for k, v in vobs.items()}, sobs[i], exact=True)
            assert vinfo["day"][i] == int(envs[i].unwrapped.sim.day[0])
        a = actions_for(venv, rng)
        vobs, vreward, vterm, vtrunc, vinfo = venv.step(a)
        for i, env in enumerate(envs):
            if pending[i]:
                sobs[i], _ = env.reset()
                reward, term, trunc, pending[i] = 0.0, False, False, False
                assert not vinfo["_rewards"][i]  # a reset step has no step info
                continue
            sobs[i], reward, term, trunc, info = env.step(a[i])
            assert vinfo["_rewards"][i] or autoreset == "same_step"
            if vinfo["_rewards"][i]:
                assert vinfo["rewards"]["click"][i] == info["rewards"]["click"]
                assert env.unwrapped.catalog.item_id[vinfo["slate_rows"][i]].tolist() == info["items"]
            if term or trunc:
                episodes += 1
                if autoreset == "same_step":
                    assert data_equivalence(vinfo["final_obs"][i], sobs[i], exact=True) and vinfo["_final_obs"][i]
                    assert vinfo["final_info"]["days_active"][i] == env.unwrapped.sim.days_active[0]
                    sobs[i], _ = env.reset()
                else:
                    pending[i] = True
            assert vreward[i] == reward and vterm[i] == term and vtrunc[i] == trunc
    assert episodes >= 3  # autoresets were exercised


# ------------------------------------------------------------------ vector-env conventions
def test_reset_seeding_is_per_env_and_deterministic() -> None:
    env = make_vec(3, config=SMALL)
    a = {k: v.copy() for k, v in env.reset(seed=7)[0].items()}  # an int seeds env i with 7 + i
    b, _ = env.reset(seed=[7, 8, 9])
    assert data_equivalence(a, b, exact=True)
    c, _ = env.reset(seed=[7, 7, 7])
    assert np.array_equal(c["candidates"][0], c["candidates"][2])
    assert not np.array_equal(a["candidates"][0], a["candidates"][1])
    env.reset(seed=[7, 8, 9])
    first = [env.step(np.tile(np.arange(10), (3, 1)))[1].copy() for _ in range(3)]
    env.reset(seed=[7, 8, 9])
    again = [env.step(np.tile(np.arange(10), (3, 1)))[1].copy() for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    with pytest.raises(ValueError, match="one seed per env"):
        env.reset(seed=[1, 2])


def test_step_returns_fresh_data_and_infos_with_masks() -> None:
    env = make_vec(4, config=SMALL)
    obs, info = env.reset(seed=0)
    for key in ("day", "session", "session_step", "days_active"):
        assert info[key].shape == (4,) and info[f"_{key}"].dtype == np.bool_ and info[f"_{key}"].all()
    kept = {k: v.copy() for k, v in obs.items()}
    served = np.take_along_axis(env.sim.candidates, np.tile(np.arange(10), (4, 1)), axis=1)
    nxt, reward, terminated, truncated, info = env.step(np.tile(np.arange(10), (4, 1)))
    assert data_equivalence(obs, kept, exact=True)  # the previous observation is not overwritten by the next step
    assert all(not np.shares_memory(obs[k], nxt[k]) for k in obs)
    assert env.observation_space.contains(nxt)
    assert reward.shape == terminated.shape == truncated.shape == (4,)
    assert terminated.dtype == truncated.dtype == np.bool_
    for key in ("session_ended", "compliance", "slate_rows", "action_codes", "watch_seconds", "rewards"):
        assert info[f"_{key}"].shape == (4,) and info[f"_{key}"].all()
    components = np.stack([info["rewards"][name] for name in recoworld.world.rewards.COMPONENTS], axis=1)
    assert np.allclose(components @ env.sim.weights, reward)
    assert np.array_equal(info["slate_rows"], served)  # the catalog rows at the positions asked for


def test_autoreset_disabled_needs_an_explicit_partial_reset() -> None:
    env = make_vec(3, config={**SMALL, "env": {"horizon_days": 1}}, autoreset_mode="disabled")
    obs, _ = env.reset(seed=[1, 2, 3])
    a = np.tile(np.arange(10), (3, 1))
    ended = np.zeros(3, dtype=bool)
    for _ in range(200):
        obs, _, terminated, truncated, _ = env.step(a)
        ended = terminated | truncated
        if ended.any():
            break
    assert ended.any()
    with pytest.raises(RuntimeError, match="reset_mask"):
        env.step(a)
    before = {k: v.copy() for k, v in obs.items()}
    obs, info = env.reset(seed=[40, 41, 42], options={"reset_mask": ended})
    i = int(np.flatnonzero(ended)[0])
    fresh = gym.make("RecoWorld-v0", config={**SMALL, "env": {"horizon_days": 1}}).reset(seed=40 + i)[0]
    assert data_equivalence({k: v[i] for k, v in obs.items()}, fresh, exact=True)
    for j in np.flatnonzero(~ended):  # envs outside the mask keep their observation
        assert all(np.array_equal(obs[k][j], before[k][j]) for k in obs)
    assert info["day"][i] == 0
    env.step(a)  # every env is live again
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.ones(2, dtype=bool)})


@pytest.mark.parametrize(
    "actions, pattern",
    [
        (np.zeros((2, 9), dtype=np.int64), r"shape \(2, 10\)"),
        (np.full((2, 10), 100), r"\[0, 100\)"),
        (np.full((2, 10), 0.5), "integers"),
    ],
)
def test_bad_actions_raise_one_clear_error(actions, pattern) -> None:
    env = make_vec(2, config=SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=pattern):
        env.step(actions)
    with pytest.raises(ValueError, match="autoreset_mode"):
        make_vec(2, config=SMALL, autoreset_mode="sometimes")


# ------------------------------------------------------------------ the SB3 adapter
def test_sb3_adapter_resets_within_the_step_and_serves_the_listed_users() -> None:
    pytest.importorskip("stable_baselines3")
    from recoworld.env.sb3 import RecoWorldVecEnv

    cfg = {**SMALL, "env": {"horizon_days": 2}}
    venv = RecoWorldVecEnv(2, config=cfg, episode_seeds=[[3, 4], [5]])
    obs = venv.reset()
    single = gym.make("RecoWorld-v0", config=cfg)
    assert np.array_equal(obs["candidates"][0], single.reset(seed=3)[0]["candidates"])
    action = np.tile(np.arange(10), (2, 1))
    done_any = False
    for _ in range(300):
        expected, *_rest = single.step(action[0])
        obs, rewards, dones, infos = venv.step(action)
        assert rewards.dtype == np.float32 and dones.shape == (2,)
        if dones[0]:
            assert data_equivalence(infos[0]["terminal_observation"], expected, exact=True)
            assert infos[0]["days_active"] == single.unwrapped.sim.days_active[0]
            assert np.array_equal(obs["candidates"][0], single.reset(seed=4)[0]["candidates"])  # env 0's next user
            done_any = True
            break
    assert done_any


def test_ppo_learns_on_the_sb3_adapter() -> None:
    pytest.importorskip("stable_baselines3")
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from recoworld.env.sb3 import RecoWorldVecEnv

    th.set_num_threads(1)
    env = VecMonitor(RecoWorldVecEnv(4, config={**SMALL, "env": {"num_candidates": 20, "slate_size": 5}}))
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(512)
    assert model.num_timesteps >= 512 and len(model.ep_info_buffer) > 0


# ------------------------------------------------------------------ LLM users
def test_llm_users_make_one_batch_of_calls_per_vector_step(monkeypatch) -> None:
    from recoworld.llm.scripted import ScriptedModel
    from recoworld.users import llm_user
    from tests.users.test_llm_users import decision

    batches: list[int] = []
    real = llm_user.run_requests

    def counting(model, requests, max_in_flight):
        batches.append(len(requests))
        return real(model, requests, max_in_flight)

    monkeypatch.setattr(llm_user, "run_requests", counting)
    model = ScriptedModel(lambda m, s: decision(m, click=(0,)))
    env = make_vec(4, config={**SMALL, "llm": {"max_retries": 0}}, user_backend="llm", language_model=model)
    env.reset(seed=0)
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(np.tile(np.arange(10), (4, 1)))
        assert info["llm_called"].all() and not info["llm_fallback"].any()
        assert info["rewards"]["click"].tolist() == [1.0] * 4  # the LLM's decisions drove the step
    assert batches == [4, 4, 4] and model.calls == 12
