"""Numeric observations of what the platform can see (no hidden mindset), batched over users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from recoworld.world.bound import WorldState, field_arrays, observe_bound
from recoworld.users.parametric import Index, user_rows

if TYPE_CHECKING:
    from recoworld.scenario_sections import EnvConfig
    from recoworld.users.parametric import UserBatch
    from recoworld.world.catalog import Catalog
    from recoworld.world.platform import Clock, PlatformState


@runtime_checkable
class ObservedWorld(Protocol):
    """What an observation reads of the simulation (``recoworld.world.simulation.Simulation`` is one); named
    here so that this module, below the simulation, does not refer to it."""

    env: EnvConfig
    catalog: Catalog
    users: UserBatch
    platform: PlatformState
    clock: Clock
    candidates: np.ndarray  # (B, num_candidates) today's candidate item rows
    obs_scale: np.ndarray  # the observation's normalising constants

    def bound(self) -> WorldState:
        """The arrays above bound for compiled code (``recoworld.world.bound``)."""


CANDIDATE_FEATURES: tuple[str, ...] = (
    "quality",
    "popularity",
    "duration",
    "freshness",
    "consumed",
    "affinity",
    "topic_click_share",
    "topic_shown_share",
)
USER_FEATURES: tuple[str, ...] = (
    "session_step",
    "days_since_last_visit",
    "day",
    "sessions",
    "session_ctr",
    "last_session_ctr",
    "last_session_length",
    "skip_streak",
    "engagement_volume",
)


def observation_space(n_candidates: int, n_topics: int, compact: bool = False) -> spaces.Dict:
    """Flat Dict of 1-D Box arrays (SB3's MultiInputPolicy takes it as is).

    ``candidates`` holds M rows of (topic one-hot, CANDIDATE_FEATURES), flattened; reshape to
    ``(M, T + len(CANDIDATE_FEATURES))`` to read it per candidate. ``compact`` (RecoWorld-Compact-v0): the same
    information without the one-hot: ``candidates`` holds the CANDIDATE_FEATURES alone (reshape to
    ``(M, len(CANDIDATE_FEATURES))``) and ``candidate_topics`` (M,) each candidate's topic index.
    """
    width = len(CANDIDATE_FEATURES) + (0 if compact else n_topics)
    boxes = {
        "candidates": spaces.Box(-1.0, 1.0, (n_candidates * width,), np.float32),
        "user": spaces.Box(0.0, 1.0, (len(USER_FEATURES),), np.float32),
        "topics": spaces.Box(0.0, 1.0, (2 * n_topics,), np.float32),
        "instruction": spaces.Box(0.0, 1.0, (2 * n_topics + 1,), np.float32),
    }
    if compact:
        boxes["candidate_topics"] = spaces.Box(0.0, float(n_topics - 1), (n_candidates,), np.float32)
    return spaces.Dict(boxes)


def compact_observation(obs: dict[str, np.ndarray], n_topics: int) -> dict[str, np.ndarray]:
    """The compact layout of full-layout observations ``obs`` (leading batch axis): the same values, each one-hot
    read back as its topic index."""
    cand = obs["candidates"].reshape(len(obs["candidates"]), -1, n_topics + _N_CANDIDATE)
    out = {key: value for key, value in obs.items() if key != "candidates"}
    out["candidates"] = np.ascontiguousarray(cand[:, :, n_topics:]).reshape(len(cand), -1)
    out["candidate_topics"] = cand[:, :, :n_topics].argmax(2).astype(np.float32)
    return out


NO_CANDIDATE_TOPICS = np.zeros((0, 0), dtype=np.float32)  # the full layout's (absent) candidate_topics buffer


def buffer_args(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Observation buffers as the compiled entries take them: candidates, user, topics, instruction and
    candidate_topics (0 rows in the full layout)."""
    return obs["candidates"], obs["user"], obs["topics"], obs["instruction"], obs.get("candidate_topics", NO_CANDIDATE_TOPICS)


_F32, _N_CANDIDATE, _N_USER = np.float32, len(CANDIDATE_FEATURES), len(USER_FEATURES)  # read at every step


def observation_mismatch(state: WorldState, n_rows: int, obs: dict[str, np.ndarray]) -> str:
    """In words, how observation buffers that the compiled check (``recoworld.world.bound.observation_fits``) refused
    differ from at least ``n_rows`` rows of the observation space of the world bound in ``state``."""
    world = field_arrays(state)
    space = observation_space(world["candidates"].shape[1], world["log_topics"].shape[2], "candidate_topics" in obs)
    wrong = [f"{key} {obs[key].shape} (expected ({n_rows}, {box.shape[0]}))" for key, box in space.spaces.items()
             if obs[key].ndim != 2 or obs[key].shape[0] < n_rows or obs[key].shape[1] != box.shape[0]]
    return f"observation buffers of the wrong shape: {', '.join(wrong)}"


def observation_buffers(sim: ObservedWorld, b: int, compact: bool = False) -> dict[str, np.ndarray]:
    """Fresh, uninitialised observation arrays for ``b`` users (filled by the kernel), in the full or the
    ``compact`` layout (:func:`observation_space`)."""
    t_count, m, empty = sim.catalog.n_topics, sim.env.num_candidates, np.empty
    out = {
        "candidates": empty((b, m * ((0 if compact else t_count) + _N_CANDIDATE)), _F32),
        "user": empty((b, _N_USER), _F32),
        "topics": empty((b, 2 * t_count), _F32),
        "instruction": empty((b, 2 * t_count + 1), _F32),
    }
    if compact:
        out["candidate_topics"] = empty((b, m), _F32)
    return out


def observe(sim: ObservedWorld, idx: Index, out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Observation arrays for users ``idx``, each with a leading batch axis (written into ``out``,
    preallocated buffers of that batch size, when given).

    After a step, :meth:`Simulation.step` with ``observe=True`` returns the same arrays without
    a second pass; this function serves resets and ad-hoc looks.
    """
    rows = user_rows(sim.users, idx)
    out = observation_buffers(sim, len(rows)) if out is None else out
    state = sim.bound()
    if not observe_bound(state, rows, *buffer_args(out)):
        raise ValueError(f"observe: {observation_mismatch(state, len(rows), out)}")
    return out
