"""A step given rows, catalog rows or buffers that do not fit the world is refused with a one-line error naming
what is wrong, before anything moves: compiled code does not check bounds, so these used to read or write past
an array (a crash, or another user's state). A corrected retry then plays exactly as if the bad call never was."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recoworld.scenario import load_scenario
from recoworld.world.observation import observation_buffers, observe
from recoworld.world.simulation import Simulation

CONFIG = {"catalog": {"synthetic": {"n_items": 60}}, "env": {"num_candidates": 12, "slate_size": 4}}
USERS = 3


def world() -> Simulation:
    sim = Simulation.sample(load_scenario("quickstart", CONFIG), USERS, np.random.default_rng(0))
    sim.retrieve(slice(None))
    return sim


def play(sim: Simulation, steps: int = 4) -> np.ndarray:
    """What the users did with ``steps`` slates of their first four candidates, with their observations."""
    out = []
    for _ in range(steps):
        step = sim.step(slice(None), sim.candidates[:, :4].copy(), observe=True)
        out.append(np.concatenate([step.response.per_user.ravel(), step.observation["candidates"].ravel()]))
    return np.stack(out)


def refusals(sim: Simulation) -> list[tuple[str, object]]:
    """(expected message fragment, a bad call) for every way the step's arguments can fail to fit."""
    good = sim.candidates[:, :4].copy()
    return [
        ("rows must lie in 0..2", lambda: sim.step(np.array([0, 1, 7]), good)),
        ("rows must lie in 0..2", lambda: sim.step(np.array([-1, 0, 1]), good)),
        ("catalog rows 0..59, got ", lambda: sim.step(slice(None), np.where(good == good[1, 2], 60, good))),
        ("catalog rows 0..59", lambda: sim.step(slice(None), -np.ones_like(good))),
        ("one slate and one seed per user, got 3 users, 2 slates", lambda: sim.step(slice(None), good[:2])),
        ("3 slates and 1 seeds", lambda: sim.step(slice(None), good, seeds=np.zeros(1, dtype=np.uint64))),
        ("outputs must have shapes (3, 4, 9) and (3, 19)",
         lambda: sim.step(slice(None), good, outputs=(np.empty((3, 4, 2)), np.empty((3, 19))))),
        ("observation buffers of the wrong shape: candidates (1, ",
         lambda: sim.step(slice(None), good, observe=True, obs_out=observation_buffers(sim, 1))),
        ("a boolean mask must have one entry per user (3)", lambda: sim.step(np.array([True, False]), good[:1])),
        ("a 1-D array of row numbers", lambda: sim.step(np.array([[0, 1, 2]]), good)),
        ("rows must lie in 0..2", lambda: observe(sim, np.array([3]))),
        ("observe: observation buffers of the wrong shape: candidates (1, 5) (expected (3, ",
         lambda: observe(sim, slice(None), out={k: v[:1, :5].copy() for k, v in observation_buffers(sim, 3).items()})),
        ("replace_users: observation buffers of the wrong shape: candidates (2, ",
         lambda: restart(sim, np.array([2]), obs_out=observation_buffers(sim, 2))),
        ("replace_users: the new users do not fit this world: taste (8,) (this world's (",
         lambda: restart(sim, np.array([1]), dim=8)),
        ("users: rows must lie in 0..2 (a batch of 3), got 3", lambda: restart(sim, np.array([3]))),
    ]


def restart(sim: Simulation, rows: np.ndarray, obs_out: dict | None = None, dim: int | None = None) -> None:
    """Row ``rows[0]`` restarts with a newcomer (of a world with ``dim``-d embeddings, when given)."""
    config = CONFIG if dim is None else {**CONFIG, "catalog": {"synthetic": {"n_items": 60}, "embedding": {"dim": dim}}}
    newcomer = Simulation.sample(load_scenario("quickstart", config), 1, np.random.default_rng(9),
                                 catalog=sim.catalog if dim is None else None)
    sim.replace_users(rows, newcomer.profiles, newcomer.users, np.array([5], dtype=np.uint64), obs_out=obs_out)


CASES = 15


@pytest.mark.parametrize("case", range(CASES))
def test_a_step_that_does_not_fit_the_world_is_refused_and_changes_nothing(case: int) -> None:
    sim, clean = world(), world()
    cases = refusals(sim)
    assert len(cases) == CASES  # every case is run
    message, bad = cases[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        bad()
    np.testing.assert_array_equal(play(sim), play(clean))  # the world and its generator stand as they stood


def test_a_refused_step_gives_back_its_draws_even_with_half_a_draw_buffered() -> None:
    sim, clean = world(), world()
    for s in (sim, clean):
        s.rng.integers(0, 10, dtype=np.int32)  # a 32-bit draw keeps the other half of a raw draw for later
    with pytest.raises(ValueError, match="catalog rows"):
        sim.step(slice(None), np.full((USERS, 4), 999))
    assert sim.rng.bit_generator.state == clean.rng.bit_generator.state
    np.testing.assert_array_equal(play(sim), play(clean))


def test_a_boolean_mask_selects_its_users() -> None:
    sim, clean = world(), world()
    mask = np.array([True, False, True])
    by_mask = sim.step(mask, sim.candidates[mask, :4].copy()).response.per_user
    by_rows = clean.step(np.array([0, 2]), clean.candidates[[0, 2], :4].copy()).response.per_user
    np.testing.assert_array_equal(by_mask, by_rows)

