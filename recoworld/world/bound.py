"""The world's lasting arrays bound once into one compiled structure (a numba StructRef), and the
observation's entry that takes it (the step's entry, ``recoworld.world.kernel.step_bound``, takes it too).

A step passes the kernel its parameters, the users' state, the catalog, the platform log, the clock and the
candidate table: 30 arrays that stay the same objects from step to step. Numba unboxes every array argument
on every call (about 55 ns each), and Python builds the named tuples around them first. Bound into a
:class:`WorldState` they cross into compiled code as one pointer: ``recoworld.world.kernel.step_bound`` and
:func:`observe_bound` rebuild the kernel's named tuples inside, from the state's fields (:func:`views`), so
the kernel's code and results are unchanged. Only what changes per call (rows, slates, seeds, output and
observation buffers, decisions) is passed as arrays.

The step's entry lives in ``recoworld.world.kernel``, beside the threaded kernel it calls: a cached function
that calls a ``parallel=True`` function of another module crashed on loading from numba's cache after the
calling module alone had been recompiled.

Imports: numba, ``recoworld.users.layout``, ``recoworld.world.layout``, ``recoworld.world.observation_kernel``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.experimental import structref

from recoworld.users.layout import UserArrays
from recoworld.world.observation_kernel import observe_kernel
from recoworld.world.layout import CatalogArrays, ClockArrays, LogArrays, ObsArrays

FIELDS: tuple[str, ...] = (
    "params",
    "env_vec",
    "reward_weights",
    *(f"user_{f}" for f in UserArrays._fields),
    *(f"cat_{f}" for f in CatalogArrays._fields),
    *(f"log_{f}" for f in LogArrays._fields),
    *(f"clock_{f}" for f in ClockArrays._fields),
    "candidates",
    "obs_scale",
)


@structref.register
class WorldStateType(types.StructRef):
    """Numba's type of :class:`WorldState`."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


class WorldState(structref.StructRefProxy):
    """The arrays of one simulation that every step reads and writes in place (fields: :data:`FIELDS`)."""


structref.define_proxy(WorldState, WorldStateType, list(FIELDS))


def bind(
    params: np.ndarray, env_vec: np.ndarray, reward_weights: np.ndarray, users: UserArrays, catalog: CatalogArrays,
    log: LogArrays, clock: ClockArrays, candidates: np.ndarray, obs_scale: np.ndarray,
) -> WorldState:
    """A :class:`WorldState` holding these arrays (not copies: the step writes into them)."""
    return WorldState(params, env_vec, reward_weights, *users, *catalog, *log, *clock, candidates, obs_scale)


@njit(cache=True, inline="always")
def views(w):
    """The kernel's named tuples (users, catalog, log, clock) on the state's arrays."""
    users = UserArrays(w.user_taste, w.user_recent, w.user_traits, w.user_mind, w.user_topic_state, w.user_instr,
                       w.user_consumed)
    cat = CatalogArrays(w.cat_topic, w.cat_embeddings, w.cat_mean_embedding, w.cat_quality, w.cat_popularity,
                        w.cat_duration, w.cat_duration_scaled, w.cat_created_day)
    log = LogArrays(w.log_est_taste, w.log_topics, w.log_hist_items, w.log_hist_engagement, w.log_hist_next, w.log_stats)
    clock = ClockArrays(w.clock_day, w.clock_session_step, w.clock_days_active, w.clock_churned, w.clock_finished)
    return users, cat, log, clock


@njit(cache=True)
def observe_bound(w, rows, obs_candidates, obs_user, obs_topics, obs_instruction) -> None:
    """The observation of users ``rows`` of the world ``w`` written into the buffers (row i for user ``rows[i]``)."""
    users, cat, log, clock = views(w)
    obs = ObsArrays(w.obs_scale, obs_candidates, obs_user, obs_topics, obs_instruction)
    observe_kernel(rows, w.candidates, clock, cat, users, log, obs)


@njit(cache=True)
def _unbind(w):
    users, cat, log, clock = views(w)
    return w.params, w.env_vec, w.reward_weights, users, cat, log, clock, w.candidates, w.obs_scale


def field_arrays(state: WorldState) -> dict[str, Any]:
    """The state's arrays by field name, as Python sees them (the same array objects that were bound)."""
    params, env_vec, weights, users, cat, log, clock, candidates, obs_scale = _unbind(state)
    return dict(zip(FIELDS, (params, env_vec, weights, *users, *cat, *log, *clock, candidates, obs_scale)))
