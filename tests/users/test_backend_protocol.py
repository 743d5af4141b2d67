"""Parametric, LLM and hybrid users implement one UserBackend protocol."""

from __future__ import annotations

import numpy as np

from recoworld.llm.scripted import ScriptedModel
from recoworld.scenario import load_scenario
from recoworld.users.llm_user import make_user_backend
from recoworld.users.parametric import ParametricUserBackend
from recoworld.users.protocol import UserBackend
from recoworld.users.world_view import SimulationView, StepOutcomeView
from recoworld.world.observation import ObservedWorld
from recoworld.world.simulation import Simulation


def test_every_backend_is_a_user_backend() -> None:
    for kind in ("parametric", "llm", "hybrid"):
        backend = make_user_backend(load_scenario("quickstart", {"users": {"backend": kind}}), ScriptedModel(lambda *args: None))
        assert isinstance(backend, UserBackend) and backend.kind == kind


def test_parametric_users_are_a_backend_not_a_missing_one() -> None:
    scenario = load_scenario("quickstart", {"catalog": {"synthetic": {"n_items": 300}}})
    sim = Simulation.sample(scenario, 3, np.random.default_rng(0))
    assert isinstance(sim.backend, ParametricUserBackend)
    slates = sim.retrieve(slice(None))[:, : scenario.env.slate_size]
    sim.step(slice(None), slates)
    assert sim.backend.usage.calls == 0 and not sim.backend.fallbacks(3).any()


def test_the_world_is_what_a_backend_sees() -> None:
    """The simulation and its step's outcome have every member the backends' protocols name."""
    scenario = load_scenario("quickstart", {"catalog": {"synthetic": {"n_items": 300}}})
    sim = Simulation.sample(scenario, 2, np.random.default_rng(0))
    outcome = sim.step(slice(None), sim.retrieve(slice(None))[:, : scenario.env.slate_size])
    assert isinstance(sim, SimulationView) and isinstance(outcome, StepOutcomeView)
    assert isinstance(sim, ObservedWorld)  # what an observation reads of it
    assert sim.users.instr_age.shape == (2,) and outcome.response.action_codes.shape == (2, scenario.env.slate_size)
    assert outcome.effects.emitted.shape == (2,)
