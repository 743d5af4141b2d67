"""The world bound for compiled code (``recoworld.world.bound``) is always the simulation's current arrays: a
step after any of them was replaced reads and writes the new ones, never a stale copy."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from recoworld.scenario import load_scenario
from recoworld.world.bound import FIELDS, field_arrays
from recoworld.world.catalog import Item
from recoworld.world.observation import observe
from recoworld.world.platform import PlatformState
from recoworld.world.simulation import Simulation

CONFIG = {"catalog": {"synthetic": {"n_items": 60}}, "env": {"num_candidates": 12, "slate_size": 4}}


def world(seed: int = 0) -> Simulation:
    sim = Simulation.sample(load_scenario("quickstart", CONFIG), 3, np.random.default_rng(seed))
    sim.retrieve(slice(None))
    return sim


def serve(sim: Simulation, steps: int = 5) -> np.ndarray:
    """What the users did with ``steps`` slates of their first four candidates, (steps, users, outputs)."""
    return np.stack([sim.step(slice(None), sim.candidates[:, :4], observe=True).response.per_user for _ in range(steps)])


def test_the_bound_fields_are_the_simulations_own_arrays() -> None:
    sim = world()
    bound = field_arrays(sim.bound())
    assert set(bound) == set(FIELDS)
    assert bound["user_consumed"] is sim.users.consumed and bound["log_est_taste"] is sim.platform.est_taste
    assert bound["clock_day"] is sim.clock.day and bound["candidates"] is sim.candidates
    assert bound["cat_embeddings"] is sim.catalog.embeddings and bound["params"] is sim.model.vector
    assert sim.bound() is sim.bound()  # bound once while nothing changes


def test_a_replaced_log_or_a_grown_catalog_is_bound_again() -> None:
    sim = world()
    serve(sim, 2)
    sim.platform = PlatformState.empty(len(sim), sim.catalog, sim.platform.hist_items.shape[1])
    serve(sim, 1)
    assert sim.platform.topics.sum() > 0  # the step wrote into the new log
    assert field_arrays(sim.bound())["log_topics"] is sim.platform.topics

    new = [Item(item_id=f"new{i}", title=f"new {i}", topic=sim.catalog.topic_names[0]) for i in range(40)]
    sim.set_catalog(sim.catalog.extend(new))  # consumed grows to the new catalog's size
    sim.candidates[:] = len(sim.catalog) - 1 - np.arange(12)  # the newest items only
    serve(sim, 3)
    bound = field_arrays(sim.bound())
    assert bound["user_consumed"] is sim.users.consumed and bound["cat_topic"] is sim.catalog.topic
    assert sim.users.consumed.shape[1] == (len(sim.catalog) + 7) // 8


def test_a_restored_pickle_and_a_fork_step_as_the_original() -> None:
    sim = world(3)
    serve(sim, 2)
    twin = sim.fork()
    restored = pickle.loads(pickle.dumps(sim))
    restored.set_catalog(sim.catalog)
    restored.candidates[:] = sim.candidates
    expected = serve(sim)
    np.testing.assert_array_equal(serve(twin), expected)  # NaN (no instruction pending) equals NaN here
    np.testing.assert_array_equal(serve(restored), expected)


def test_steps_on_borrowed_arrays_leave_every_reference_count_as_it_was() -> None:
    """The kernel reads the world's arrays borrowed (no reference counting): stepping and observing take no
    reference to them and release none."""
    import sys

    sim = world(5)
    serve(sim, 2)  # compiled, bound
    arrays = list(field_arrays(sim.bound()).values())
    before = [sys.getrefcount(a) for a in arrays]
    serve(sim, 20)
    observe(sim, slice(None))
    assert [sys.getrefcount(a) for a in arrays] == before


def test_a_restarted_row_is_a_new_user_and_the_other_rows_are_untouched() -> None:
    """``replace_users`` (one compiled call) gives row 1 the new user's state, an empty log and clock, fresh
    candidates and its observation in row 1 of the buffers, and leaves every other row as it was."""
    sim = world(4)
    serve(sim, 6)
    before = {name: np.array(arr, copy=True) for name, arr in field_arrays(sim.bound()).items()}
    newcomer = Simulation.sample(load_scenario("quickstart", CONFIG), 1, np.random.default_rng(9), catalog=sim.catalog)
    obs = {key: np.full_like(value, -7.0) for key, value in observe(sim, slice(None)).items()}
    sim.replace_users(np.array([1]), newcomer.profiles, newcomer.users, np.array([12345], dtype=np.uint64), obs_out=obs)
    after = field_arrays(sim.bound())
    empty = PlatformState.empty(1, sim.catalog, sim.platform.hist_items.shape[1])
    for name in FIELDS:
        if after[name].ndim == 0 or after[name].shape[0] != len(sim):
            continue  # parameters and the catalog: not per user
        np.testing.assert_array_equal(after[name][[0, 2]], before[name][[0, 2]], err_msg=name)
    for name, new in newcomer.users.arrays()._asdict().items():
        np.testing.assert_array_equal(after[f"user_{name}"][1], new[0], err_msg=name)
    for name in ("est_taste", "topics", "hist_items", "hist_engagement", "hist_next", "stats"):
        np.testing.assert_array_equal(after[f"log_{name}"][1], getattr(empty, name)[0], err_msg=name)
    for name in ("day", "session_step", "days_active", "churned", "finished"):  # a new simulation's clock
        assert after[f"clock_{name}"][1] == getattr(newcomer.clock, name)[0], name
    assert sim.user_ids[1] == newcomer.user_ids[0] and sim.users.tone[1] == newcomer.users.tone[0]
    assert not np.array_equal(sim.candidates[1], before["candidates"][1])
    for key, value in observe(sim, [1]).items():
        np.testing.assert_array_equal(obs[key][1], value[0], err_msg=key)
        assert (obs[key][[0, 2]] == -7.0).all(), key  # other rows' observations are not written


def test_restarting_rows_with_another_number_of_users_is_refused() -> None:
    sim = world()
    newcomer = Simulation.sample(load_scenario("quickstart", CONFIG), 1, np.random.default_rng(9), catalog=sim.catalog)
    with pytest.raises(ValueError, match="replace_users: 1 new users for 2 rows"):
        sim.replace_users(np.array([0, 2]), newcomer.profiles * 2, newcomer.users, np.array([1, 2], dtype=np.uint64))
