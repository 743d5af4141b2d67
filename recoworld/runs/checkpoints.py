"""A run's state between days (worlds, shards, recommenders) and how it is checkpointed: pickled without
the profiles (saved once) and without LLM clients (re-attached on resume)."""

from __future__ import annotations

import io
import pickle
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from recoworld.agents.protocol import Recommender
from recoworld.llm.base import Usage
from recoworld.logs.folder import RunManifest
from recoworld.runs.shard import Shard
from recoworld.users.creators import CreatorPopulation
from recoworld.users.profile import UserProfile
from recoworld.world.catalog import Catalog

if TYPE_CHECKING:
    pass


@dataclass
class World:
    """One copy of the platform: its catalog, creators, user shards and the recommenders serving them."""

    index: int
    arms: list[int]
    catalog: Catalog
    creators: CreatorPopulation | None
    shards: list[Shard]
    recommenders: dict[int, Recommender]
    item_impressions: np.ndarray
    item_clicks: np.ndarray
    prior_clicks: np.ndarray  # pseudo-clicks of the items there were at day 0
    llm_usage: Usage = field(default_factory=Usage)

    def attach(self, profiles: list[list[UserProfile]], backend_for: Callable[[], object]) -> None:
        """After unpickling: give every shard its users' profiles, the world's catalog and a fresh user backend."""
        for shard in self.shards:
            shard.sim.profiles = profiles[shard.index]
            shard.sim.set_catalog(self.catalog)
            shard.sim.backend = backend_for()


@dataclass
class RunState:
    """Everything a run needs to go on from ``next_day`` (what the checkpoint holds)."""

    scenario_sha256: str
    next_day: int
    worlds: list[World]
    manifest: RunManifest
    arm_names: list[str]
    profiles: list[list[UserProfile]]  # each shard's users, shared by every world (saved once in profiles.pkl)
    stopped: str = ""  # why the run ended before its last day, if it did
    user_memory: list[list[object]] = field(default_factory=list)  # per world and shard: an LLM backend's memory

    def keep_user_memory(self) -> None:
        """Copy what LLM users remember (their backends are not pickled with the simulations) into the state."""
        self.user_memory = [[getattr(shard.sim.backend, "memory", None) for shard in w.shards] for w in self.worlds]

    def restore_user_memory(self) -> None:
        """After :meth:`World.attach`: give the fresh LLM backends back what their users remembered."""
        for world, memories in zip(self.worlds, self.user_memory):
            for shard, memory in zip(world.shards, memories):
                if memory is not None and hasattr(shard.sim.backend, "memory"):
                    shard.sim.backend.memory = memory

    def __getstate__(self) -> dict:
        """Pickled without the user profiles (they never change): the simulations' too."""
        state = self.__dict__.copy()
        state["profiles"] = None
        return state


@contextmanager
def detached(state: RunState):
    """Detach the profiles (saved once) and the recommenders (pickled on their own, see
    :func:`pickle_recommenders`) from ``state`` while it is pickled."""
    sims = [shard.sim for world in state.worlds for shard in world.shards]
    kept = [sim.profiles for sim in sims]
    recs = [world.recommenders for world in state.worlds]
    for sim in sims:
        sim.profiles = None
    for world in state.worlds:
        world.recommenders = {}
    try:
        yield
    finally:
        for sim, profiles in zip(sims, kept):
            sim.profiles = profiles
        for world, r in zip(state.worlds, recs):
            world.recommenders = r


def _language_models(obj: object, path: str = "", out: dict[str, object] | None = None, depth: int = 0) -> dict[str, object]:
    """Language models held anywhere inside recommenders, by attribute path (``0.controller.model``)."""
    from recoworld.llm.base import LanguageModel

    out = {} if out is None else out
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else sorted(vars(obj).items())
    for key, value in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, LanguageModel):
            out[here] = value
        elif depth < 5 and (isinstance(value, (dict, list)) or type(value).__module__.startswith("recoworld.")):
            if hasattr(value, "__dict__") or isinstance(value, (dict, list)):
                _language_models(value, here, out, depth + 1)
    return out


def pickle_recommenders(recs: list[dict[int, Recommender]]) -> bytes:
    """Recommenders with their language models left out by reference (clients and caches are not state)."""
    paths = {id(model): path for path, model in _language_models(recs).items()}

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> str | None:
            return paths.get(id(obj))

    out = io.BytesIO()
    try:
        _Pickler(out, protocol=5).dump(recs)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ValueError(f"checkpoint: a recommender's state cannot be saved ({exc})") from None
    return out.getvalue()


def unpickle_recommenders(blob: bytes, fresh: list[dict[int, Recommender]]) -> list[dict[int, Recommender]]:
    """Restore :func:`pickle_recommenders` output, taking language models from freshly built recommenders."""
    models = _language_models(fresh)

    class _Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: str) -> object:
            return models.get(pid)  # None where the fresh recommender builds its model lazily

    return _Unpickler(io.BytesIO(blob)).load()
