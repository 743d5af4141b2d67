"""Where a scenario's users come from: its segments, profiles extracted from an interaction log and
drawn by density, or calibrated users (:func:`profile_source`; each source has ``.sample(n, rng)``).

Imports: ``recoworld.users.population``; the extraction, readers and calibration-file modules only
inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from recoworld.users.population import PopulationSampler, sample_population
from recoworld.users.profile import UserProfile

if TYPE_CHECKING:
    from recoworld.scenario import Scenario
    from recoworld.world.catalog import Catalog


class ProfileSource(Protocol):
    """Anything that draws ``n`` user profiles with a seeded generator."""

    def sample(self, n: int, rng: np.random.Generator) -> list[UserProfile]:
        """``n`` profiles drawn with ``rng``."""


def sample_profiles(scenario: Scenario, n: int, rng: np.random.Generator, catalog: Catalog) -> list[UserProfile]:
    """``n`` user profiles: from the scenario's segments, or extracted from an interaction log."""
    return profile_source(scenario, catalog).sample(n, rng)


def profile_source(scenario: Scenario, catalog: Catalog) -> ProfileSource:
    """Where users come from: segments, users extracted from a log, or calibrated users (``.sample(n, rng)``)."""
    if scenario.users.source == "segments":
        return PopulationSampler(scenario.users.segments, catalog.topic_names)
    from recoworld.users.calibration.io import ProfilePool, load_calibration

    if scenario.users.source == "calibration":
        return ProfilePool(load_calibration(scenario.users.from_calibration).profiles)
    return _ExtractedPool(scenario, catalog)


class _ExtractedPool:
    """Profiles extracted from an interaction log, drawn by density (users.logs.sampling)."""

    def __init__(self, scenario: Scenario, catalog: Catalog) -> None:
        from recoworld.users.extraction import extract_profiles
        from recoworld.world import readers

        cfg = scenario.users.logs
        if cfg.interactions is not None:
            interactions = readers.load_interactions(cfg.interactions, catalog)
        elif scenario.catalog.source == "movielens":
            interactions = readers.load_movielens(scenario.catalog.path)[1]
        else:
            raise ValueError("users.logs.interactions: required unless the catalog is a movielens folder")
        self.profiles = extract_profiles(interactions, catalog, min_interactions=cfg.min_interactions)
        if not self.profiles:
            raise ValueError(f"users.logs: no user has {cfg.min_interactions} or more interactions")
        self.sampling = cfg.sampling

    def sample(self, n: int, rng: np.random.Generator) -> list[UserProfile]:
        return sample_population(self.profiles, n, self.sampling, rng)
