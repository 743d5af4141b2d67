"""RecoWorld-v0 as an RL researcher uses it: registration, checkers, determinism, rewards,
episode ends, rendering, bad input, SB3 training, topic mode and recommenders as policies."""

from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest

import recoworld
from recoworld.agents import make_recommender
from recoworld.scenario import ScenarioError, deep_merge, load_scenario

SMALL = {"catalog": {"synthetic": {"n_items": 2000}}}
COMPONENTS = ("click", "like", "share", "comment", "watch_minutes", "skip", "leave", "return", "churn")
OBS_KEYS = {"candidates", "user", "topics", "instruction"}


def make(config: dict | None = None, **kwargs) -> gym.Env:
    return gym.make("RecoWorld-v0", config=deep_merge(SMALL, config or {}), **kwargs)


def rollout(env: gym.Env, seed: int, n_steps: int, policy_seed: int = 123) -> list[tuple]:
    """n_steps transitions from reset(seed); episodes that end are followed by reset() without a seed."""
    env.action_space.seed(policy_seed)
    obs, info = env.reset(seed=seed)
    steps = [(obs, None, None, None, info)]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            steps.append((obs, None, None, None, info))
    return steps


def same_step(a: tuple, b: tuple) -> bool:
    obs_a, *rest_a = a
    obs_b, *rest_b = b
    return obs_a.keys() == obs_b.keys() and all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a) and rest_a == rest_b


# ----------------------------------------------------------------- registration and checkers
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"action_mode": "topic"}, {"config": {"env": {"action_mode": "topic"}}}],
    ids=["slate", "topic-kwarg", "topic-config"],
)
def test_env_checkers_pass(kwargs):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make(**kwargs)
    expected_mode = "topic" if kwargs else "slate"
    assert env.unwrapped.action_mode == expected_mode
    width = env.unwrapped.n_topics if expected_mode == "topic" else env.unwrapped.n_candidates
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    assert env.action_space.nvec.tolist() == [width] * env.unwrapped.slate_size
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure too
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)


def test_make_with_module_prefix_and_double_registration():
    env = gym.make("recoworld:RecoWorld-v0", config=SMALL)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    importlib.reload(recoworld)  # registers again: must not raise
    importlib.reload(recoworld)
    env = gym.make("RecoWorld-v0", config=SMALL)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("action_mode", ["slate", "topic"])
def test_same_seed_same_trajectory(action_mode):
    a = rollout(make(action_mode=action_mode), seed=7, n_steps=250)
    b = rollout(make(action_mode=action_mode), seed=7, n_steps=250)
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        assert same_step(x, y), f"trajectories diverge at transition {t}"
    assert any(s[2] or s[3] for s in a[1:]), "expected at least one episode end in 250 steps"


@pytest.mark.parametrize("action_mode", ["slate", "topic"])
def test_different_seed_different_trajectory(action_mode):
    a = rollout(make(action_mode=action_mode), seed=7, n_steps=30)
    b = rollout(make(action_mode=action_mode), seed=8, n_steps=30)
    assert not all(same_step(x, y) for x, y in zip(a, b))


def test_a_kept_step_is_not_changed_by_later_steps():
    """What a step returns (observation, reward, info) stays as it was while later steps run: a replay buffer may
    keep it (the env writes the kernel's results into buffers it reuses, and copies what it hands out)."""
    import copy

    env = make()
    env.reset(seed=5)
    kept = []
    for t in range(60):
        step = env.step(env.action_space.sample())
        kept.append((step, copy.deepcopy(step)))
        if step[2] or step[3]:
            env.reset()
    for t, (step, snapshot) in enumerate(kept):
        assert same_step(step, snapshot), f"step {t} (observation, reward, flags or info) changed after later steps"


def test_reset_seed_restarts_the_same_user():
    env = make()
    first = rollout(env, seed=3, n_steps=20)
    rollout(env, seed=99, n_steps=5)
    again = rollout(env, seed=3, n_steps=20)
    assert all(same_step(x, y) for x, y in zip(first, again))


# ----------------------------------------------------------------------------- observations
def test_observation_keys_and_space():
    env = make()
    obs, _ = env.reset(seed=0)
    assert set(obs) == OBS_KEYS
    assert env.observation_space.contains(obs)
    for _ in range(30):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert set(obs) == OBS_KEYS
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            obs, _ = env.reset()


def test_observation_does_not_reveal_the_profile():
    """Before any interaction the platform knows nothing, so two very different users look identical."""
    env = make()
    env.reset(seed=0)
    topics = list(env.unwrapped.user_view().catalog.topic_names)
    a = {"user_id": "a", "interests": {topics[0]: 1.0}, "dislikes": [topics[1]],
         "traits": {"patience": 0.05, "activity": 0.05, "verbosity": 0.95, "novelty_seeking": 0.9}}
    b = {"user_id": "b", "interests": {topics[5]: 1.0}, "dislikes": [topics[6]],
         "traits": {"patience": 0.95, "activity": 0.95, "verbosity": 0.05, "novelty_seeking": 0.1}}
    obs_a, info_a = env.reset(seed=11, options={"profile": a})
    obs_b, info_b = env.reset(seed=11, options={"profile": b})
    assert info_a["user_id"] == "a" and info_b["user_id"] == "b"
    for k in OBS_KEYS:
        assert np.array_equal(obs_a[k], obs_b[k]), k


# ---------------------------------------------------------------------------------- rewards
def test_reward_is_weighted_sum_of_components():
    weights = load_scenario("quickstart").rewards.model_dump(by_alias=True)
    assert set(weights) == set(COMPONENTS)
    env = make()
    env.reset(seed=0)
    env.action_space.seed(0)
    seen_nonzero = set()
    for _ in range(150):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        comps = info["rewards"]
        assert set(comps) == set(COMPONENTS)
        assert reward == pytest.approx(sum(weights[k] * comps[k] for k in COMPONENTS), rel=1e-5, abs=1e-5)
        seen_nonzero |= {k for k, v in comps.items() if v}
        if terminated or truncated:
            env.reset()
    assert {"click", "watch_minutes", "skip"} <= seen_nonzero


def test_reward_weights_from_config():
    custom = {"click": 0.0, "like": 0.0, "share": 0.0, "comment": 0.0, "watch_minutes": 1.0,
              "skip": -0.25, "leave": 0.0, "return": 5.0, "churn": -3.0}
    default_env, custom_env = make(), make({"rewards": custom})
    default_env.reset(seed=4)
    custom_env.reset(seed=4)
    rng = np.random.default_rng(0)
    differs = False
    for _ in range(150):
        action = rng.choice(100, size=10, replace=False)
        _, r_def, te_d, tr_d, info_d = default_env.step(action)
        _, r_cus, te_c, tr_c, info_c = custom_env.step(action)
        # weights change the reward, not what the user does
        assert info_d["rewards"] == info_c["rewards"] and info_d["items"] == info_c["items"]
        comps = info_c["rewards"]
        assert r_cus == pytest.approx(sum(custom[k] * comps[k] for k in COMPONENTS), rel=1e-5, abs=1e-5)
        differs |= not np.isclose(r_def, r_cus)
        assert (te_d, tr_d) == (te_c, tr_c)
        if te_d or tr_d:
            default_env.reset()
            custom_env.reset()
    assert differs


# ------------------------------------------------------------------------------ episode ends
def run_episode(env: gym.Env, max_steps: int) -> tuple[int, bool, bool, dict, list[dict]]:
    infos = []
    for t in range(1, max_steps + 1):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        infos.append(info)
        if terminated or truncated:
            return t, terminated, truncated, info, infos
    return max_steps, False, False, infos[-1], infos


def test_random_policy_episodes_end_by_churn():
    env = make()
    cfg = env.unwrapped.scenario.env
    bound = cfg.horizon_days * cfg.max_slates_per_session  # at most one session per day
    env.action_space.seed(0)
    churned = 0
    for ep in range(12):
        env.reset(seed=ep)
        steps, terminated, truncated, last, infos = run_episode(env, bound + 50)
        assert terminated or truncated, f"episode {ep} did not end within {bound + 50} steps"
        assert steps <= bound
        assert not (terminated and truncated)
        assert last["session_ended"] is True
        if terminated:
            churned += 1
            assert last["rewards"]["churn"] == 1.0
            assert last["rewards"]["return"] == 0.0
        else:
            assert last["rewards"]["churn"] == 0.0
        # only the final step carries churn
        assert all(i["rewards"]["churn"] == 0.0 for i in infos[:-1])
    assert churned > 0, "a random policy should make some users churn"


def test_short_horizon_truncates():
    horizon = 3
    env = make({"env": {"horizon_days": horizon}})
    max_slates = env.unwrapped.scenario.env.max_slates_per_session
    env.action_space.seed(1)
    truncated_eps = 0
    for ep in range(10):
        env.reset(seed=100 + ep)
        steps, terminated, truncated, last, infos = run_episode(env, horizon * max_slates + 50)
        assert terminated or truncated
        assert steps <= horizon * max_slates
        assert all(i["day"] < horizon for i in infos)
        assert last["session_ended"] is True
        if truncated:
            truncated_eps += 1
            assert not terminated
            assert last["rewards"]["churn"] == 0.0
    assert truncated_eps > 0


# ----------------------------------------------------------------------------------- render
def test_render_ansi_shows_titles():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    assert isinstance(env.render(), str)
    action = np.arange(10) * 3
    view = env.unwrapped.user_view()
    titles = [str(t) for t in view.catalog.title[view.candidates[0][action]]]
    _, _, _, _, info = env.step(action)
    text = env.render()
    assert isinstance(text, str)
    for title in titles:
        assert title in text
    assert info["items"] == [str(x) for x in view.catalog.item_id[view.candidates[0][action]]]


def test_render_mode_validated():
    with warnings.catch_warnings(), pytest.raises(ValueError, match="render_mode"):
        warnings.simplefilter("ignore")  # gymnasium warns about the unsupported mode before the env refuses it
        make(render_mode="human")


# -------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "action, pattern",
    [
        (np.zeros(11, dtype=np.int64), r"^action:.*shape"),
        (np.zeros(9, dtype=np.int64), r"^action:.*shape"),
        (np.zeros((1, 10), dtype=np.int64), r"^action:.*shape"),
        ([0, 1, 2], r"^action:.*shape"),
        (np.full(10, 100), r"^action:.*\[0, 100\)"),
        (np.array([-1] + [0] * 9), r"^action:.*\[0, 100\)"),
        (np.full(10, 0.5), r"^action:"),
        (np.arange(10) + 0.25, r"^action:"),
    ],
    ids=["too-long", "too-short", "2d", "list", "too-high", "negative", "half", "fractional"],
)
def test_bad_action_raises_value_error(action, pattern):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=pattern):
        env.step(action)


def test_bad_topic_action_raises_value_error():
    env = make(action_mode="topic")
    n_topics = env.unwrapped.n_topics
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"^action:.*\[0, {n_topics}\)"):
        env.step(np.full(10, n_topics))


def test_bad_action_leaves_the_env_untouched():
    action = np.arange(10)
    ref = make()
    ref.reset(seed=5)
    expected = ref.step(action)
    env = make()
    env.reset(seed=5)
    with pytest.raises(ValueError):
        env.step(np.full(10, 1000))
    got = env.step(action)
    assert same_step((got[0], *got[1:]), (expected[0], *expected[1:]))


def test_integral_float_action_is_accepted():
    env = make()
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.arange(10, dtype=np.float64))
    assert len(info["items"]) == 10


def test_unknown_config_key_names_the_path():
    with pytest.raises(ScenarioError, match=r"env\.slat_size"):
        gym.make("RecoWorld-v0", config={"env": {"slat_size": 3}})


def test_unknown_bundled_scenario():
    with pytest.raises(ScenarioError, match="no_such_world"):
        gym.make("RecoWorld-v0", scenario="no_such_world")


# ------------------------------------------------------------------------------- topic mode
def check_topic_fill(view, requested: np.ndarray, served_ids: list[str]) -> int:
    """Each slot holds an unused candidate (an item not in the slate yet); it has the requested topic whenever
    one is left. Returns #in-topic."""
    cat = view.catalog
    remaining = list(view.candidates[0])
    in_topic = 0
    for t, item_id in zip(requested, served_ids):
        rows = [r for r in remaining if str(cat.item_id[r]) == item_id]
        assert rows, f"served item {item_id} is not an unused candidate"
        row = rows[0]
        if any(cat.topic[r] == t for r in remaining):
            assert cat.topic[row] == t, f"slot asked for topic {t}, got {cat.topic[row]} though one was available"
            in_topic += 1
        remaining = [r for r in remaining if r != row]  # an item drawn twice as a candidate is used once shown
    return in_topic


def test_topic_mode_fills_slots_with_requested_topics():
    env = make(action_mode="topic")
    n_topics = env.unwrapped.n_topics
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    in_topic = 0
    for step in range(40):
        if step % 3 == 0:
            requested = np.full(10, rng.integers(n_topics))  # one topic for the whole slate exhausts it
        else:
            requested = rng.integers(n_topics, size=10)
        view = env.unwrapped.user_view()
        _, _, terminated, truncated, info = env.step(requested)
        in_topic += check_topic_fill(view, requested, info["items"])
        if terminated or truncated:
            env.reset()
    assert in_topic > 100


# --------------------------------------------------------------------- recommenders as policies
@pytest.mark.parametrize("name", ["random", "popular", "greedy", "mmr", "egreedy", "linucb", "instruction_following"])
def test_recommenders_as_policies(name):
    rec = make_recommender(name)
    env = make()
    env.reset(seed=0)
    for _ in range(8):
        items = rec.recommend(env.unwrapped.user_view()).items
        action = np.asarray(items)
        assert env.action_space.contains(action), items
        assert len(set(items)) == len(items), f"{name} repeats a candidate: {items}"
        _, _, terminated, truncated, _ = env.step(items)
        if terminated or truncated:
            env.reset()


def test_llm_users_without_a_key_fail_at_reset_in_one_line(monkeypatch) -> None:
    """An LLM that cannot answer stops the env at reset, instead of falling back on every step."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    env = gym.make("RecoWorld-v0", user_backend="llm", config={"llm": {"model": "openai/gpt-4o-mini"}})
    with pytest.raises(ValueError) as err:
        env.reset(seed=0)
    assert "OPENAI_API_KEY" in str(err.value) and "\n" not in str(err.value)
