"""The world's lasting arrays bound once into one compiled structure (a numba StructRef), and the
observation's entry that takes it (the step's entry, ``recoworld.world.kernel.step_bound``, takes it too).

A step passes the kernel its parameters, the users' state, the catalog, the platform log, the clock and the
candidate table: 30 arrays that stay the same objects from step to step. Numba unboxes every array argument
on every call (about 55 ns each), and Python builds the named tuples around them first. Bound into a
:class:`WorldState` they cross into compiled code as one pointer: ``recoworld.world.kernel.step_bound`` and
:func:`observe_bound` rebuild the kernel's named tuples inside, from the state's fields (:func:`views`), so
the kernel's code and results are unchanged. Only what changes per call (rows, slates, seeds, output and
observation buffers, decisions) is passed as arrays. Inside, every array is read *borrowed* (:func:`borrowed`),
without numba's per-view reference counting.

The step's entry lives in ``recoworld.world.kernel``, beside the threaded kernel it calls: a cached function
that calls a ``parallel=True`` function of another module crashed on loading from numba's cache after the
calling module alone had been recompiled.

Imports: numba, ``recoworld.users.layout``, ``recoworld.world.layout``, ``recoworld.world.observation_kernel``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.experimental import structref
from numba.extending import intrinsic

from recoworld.users.layout import UserArrays
from recoworld.world.observation_kernel import CANDIDATE_FEATURE_COUNT, USER_FEATURE_COUNT, observe_kernel, observe_user
from recoworld.world.retrieval import retrieve_kernel
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


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` without its reference count (a NULL meminfo): the same data, shape and strides, for use while the
    caller holds ``arr``. Every view the kernel takes of an array otherwise increments and decrements a shared
    counter with an atomic instruction; a one-user step did some three hundred of them, a third of its time."""

    def codegen(context, builder, sig, args):
        src = context.make_array(sig.args[0])(context, builder, value=args[0])
        dst = context.make_array(sig.return_type)(context, builder)
        for name in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, name, getattr(src, name))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()

    return arr(arr), codegen


@njit(cache=True, inline="always")
def _borrow(arr):
    """:func:`borrowed` as a compiled function (an intrinsic cannot be passed to :func:`_named` as an argument)."""
    return borrowed(arr)


@njit(cache=True, inline="always")
def _own(arr):
    return arr


@njit(cache=True, inline="always")
def _named(w, take):
    """The kernel's named tuples (users, catalog, log, clock) on the state's arrays, each passed through ``take``."""
    users = UserArrays(take(w.user_taste), take(w.user_recent), take(w.user_traits), take(w.user_mind),
                       take(w.user_topic_state), take(w.user_instr), take(w.user_consumed))
    cat = CatalogArrays(take(w.cat_topic), take(w.cat_embeddings), take(w.cat_mean_embedding), take(w.cat_quality),
                        take(w.cat_popularity), take(w.cat_duration), take(w.cat_duration_scaled), take(w.cat_created_day))
    log = LogArrays(take(w.log_est_taste), take(w.log_topics), take(w.log_hist_items), take(w.log_hist_engagement),
                    take(w.log_hist_next), take(w.log_stats))
    clock = ClockArrays(take(w.clock_day), take(w.clock_session_step), take(w.clock_days_active), take(w.clock_churned),
                        take(w.clock_finished))
    return users, cat, log, clock


@njit(cache=True, inline="always")
def views(w):
    """The kernel's named tuples (users, catalog, log, clock) on the state's arrays, borrowed (:func:`borrowed`:
    ``w`` holds them for as long as the call that reads them)."""
    return _named(w, _borrow)


@njit(cache=True, inline="always")
def observation_views(w, candidates, user, topics, instruction, candidate_topics):
    """The kernel's observation buffers (``ObsArrays``) with the world's scale, borrowed (:func:`borrowed`)."""
    b = borrowed
    return ObsArrays(b(w.obs_scale), b(candidates), b(user), b(topics), b(instruction), b(candidate_topics))


@njit(cache=True, inline="always")
def observation_fits(m: int, t: int, n_rows: int, obs) -> bool:
    """Whether the observation buffers ``obs`` (``ObsArrays``; none: no rows) have at least ``n_rows`` rows of the
    widths of a world of ``m`` candidates and ``t`` topics, in the full or (``candidate_topics`` with rows) the compact
    layout. Compiled code does not check bounds: buffers that do not fit would be written past their end."""
    if obs.candidates.shape[0] == 0:
        return True
    compact = obs.candidate_topics.shape[0] > 0
    if compact and (obs.candidate_topics.shape[0] < n_rows or obs.candidate_topics.shape[1] != m):
        return False
    return (min(obs.candidates.shape[0], obs.user.shape[0], obs.topics.shape[0], obs.instruction.shape[0]) >= n_rows
            and obs.candidates.shape[1] == m * ((0 if compact else t) + CANDIDATE_FEATURE_COUNT)
            and obs.user.shape[1] == USER_FEATURE_COUNT and obs.topics.shape[1] == 2 * t and obs.instruction.shape[1] == 2 * t + 1)


@njit(cache=True)
def observe_bound(w, rows, obs_candidates, obs_user, obs_topics, obs_instruction, obs_candidate_topics) -> bool:
    """The observation of users ``rows`` of the world ``w`` written into the buffers (row i for user ``rows[i]``);
    False (nothing written) when the buffers do not fit (:func:`observation_fits`)."""
    users, cat, log, clock = views(w)
    obs = observation_views(w, obs_candidates, obs_user, obs_topics, obs_instruction, obs_candidate_topics)
    candidates = borrowed(w.candidates)
    if not observation_fits(candidates.shape[1], log.topics.shape[2], len(rows), obs):
        return False
    observe_kernel(borrowed(rows), candidates, clock, cat, users, log, obs)
    return True


@njit(cache=True, inline="always")
def _copy_row(dst, r, src, i) -> None:
    dst[r] = src[i]


RESTARTED, ROWS_OUT_OF_RANGE, NEW_USERS_DO_NOT_FIT, OBSERVATION_DOES_NOT_FIT = range(4)  # what restart_bound returns


@njit(cache=True, inline="always")
def rows_in_range(rows, n: int) -> bool:
    """Every row of ``rows`` lies in 0 .. n - 1 (compiled code does not check bounds)."""
    for i in range(len(rows)):
        if rows[i] < 0 or rows[i] >= n:
            return False
    return True


@njit(cache=True, inline="always")
def _rows_fit(dst, src, n: int) -> bool:
    """``src`` holds ``n`` rows shaped as ``dst``'s."""
    return src.shape[0] >= n and src.shape[1:] == dst.shape[1:]


@njit(cache=True)
def restart_bound(w, fresh, rows, seeds, taste, recent, traits, mind, topic_state, instr, consumed,
                  obs_candidates, obs_user, obs_topics, obs_instruction, obs_candidate_topics) -> int:
    """Users ``rows`` of the world ``w`` start over: row ``rows[i]`` takes the new user state row i (the arrays of
    ``UserArrays``), the empty platform log and clock of row 0 of ``fresh`` (a world bound on a new user's log and
    clock), and candidates drawn from ``seeds[i]``; then, unless the observation buffers have no rows, its
    observation is written into row ``rows[i]`` of them (the single env's row 0 is its user 0). Returns RESTARTED,
    or (nothing written) what does not fit: a row, the new users' arrays, or the observation buffers."""
    users, cat, log, clock = views(w)
    n = len(rows)
    if not rows_in_range(rows, users.taste.shape[0]):
        return ROWS_OUT_OF_RANGE
    if not (len(seeds) >= n and _rows_fit(users.taste, taste, n) and _rows_fit(users.recent, recent, n)
            and _rows_fit(users.traits, traits, n) and _rows_fit(users.mind, mind, n)
            and _rows_fit(users.topic_state, topic_state, n) and _rows_fit(users.instr, instr, n)
            and _rows_fit(users.consumed, consumed, n)):
        return NEW_USERS_DO_NOT_FIT
    obs = observation_views(w, obs_candidates, obs_user, obs_topics, obs_instruction, obs_candidate_topics)
    if not observation_fits(w.candidates.shape[1], log.topics.shape[2], rows.max() + 1 if n else 0, obs):
        return OBSERVATION_DOES_NOT_FIT
    _, _, empty, start = views(fresh)
    for i in range(len(rows)):
        r = rows[i]
        _copy_row(users.taste, r, taste, i)
        _copy_row(users.recent, r, recent, i)
        _copy_row(users.traits, r, traits, i)
        _copy_row(users.mind, r, mind, i)
        _copy_row(users.topic_state, r, topic_state, i)
        _copy_row(users.instr, r, instr, i)
        _copy_row(users.consumed, r, consumed, i)
        _copy_row(log.est_taste, r, empty.est_taste, 0)
        _copy_row(log.topics, r, empty.topics, 0)
        _copy_row(log.hist_items, r, empty.hist_items, 0)
        _copy_row(log.hist_engagement, r, empty.hist_engagement, 0)
        _copy_row(log.hist_next, r, empty.hist_next, 0)
        _copy_row(log.stats, r, empty.stats, 0)
        _copy_row(clock.day, r, start.day, 0)
        _copy_row(clock.session_step, r, start.session_step, 0)
        _copy_row(clock.days_active, r, start.days_active, 0)
        _copy_row(clock.churned, r, start.churned, 0)
        _copy_row(clock.finished, r, start.finished, 0)
    retrieve_kernel(borrowed(rows), borrowed(seeds), borrowed(w.candidates), len(cat.topic))
    if obs_candidates.shape[0] > 0:
        candidates = borrowed(w.candidates)
        for i in range(len(rows)):
            observe_user(rows[i], rows[i], candidates, clock, cat, users, log, obs)
    return RESTARTED


@njit(cache=True)
def _unbind(w):
    users, cat, log, clock = _named(w, _own)  # owned: these go back to Python
    return w.params, w.env_vec, w.reward_weights, users, cat, log, clock, w.candidates, w.obs_scale


def field_arrays(state: WorldState) -> dict[str, Any]:
    """The state's arrays by field name, as Python sees them (the same array objects that were bound)."""
    params, env_vec, weights, users, cat, log, clock, candidates, obs_scale = _unbind(state)
    return dict(zip(FIELDS, (params, env_vec, weights, *users, *cat, *log, *clock, candidates, obs_scale)))
