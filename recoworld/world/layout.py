"""Named layout of the world's state as the compiled step reads it, defined once.

The catalog, the platform log, the clock and the observation buffers travel into the kernel as
namedtuples of arrays (numba compiles attribute access on them to plain loads); the constants
name the packed axes that Python code (platform views, simulation, envs, runs) also reads. The
per-user output columns (``U_*``) are the step's report of each user's slate.

Imports: nothing of the project.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

# rows of PlatformState.topics (B, 2, T)
P_CLICK, P_SHOWN = range(2)
# columns of PlatformState.stats
S_REVIEWED, S_CLICKS, S_SKIP_STREAK, S_LAST_CTR, S_LAST_LENGTH, S_DAYS_SINCE, S_SESSIONS = range(7)
# columns of the per-user output; the first N_COMPONENTS are the reward components in
# recoworld.world.rewards.COMPONENTS order
(U_CLICKS, U_LIKES, U_SHARES, U_COMMENTS, U_WATCH_MINUTES, U_SKIPS, U_LEFT, U_RETURN, U_CHURN,
 U_LEFT_AT, U_COMPLIANCE, U_RESOLVED, U_IGNORED, U_EMITTED, U_RISK, U_ENDED, U_GAP, U_FINISHED, U_REWARD) = range(19)
N_COMPONENTS = 9
USER_OUTPUTS = 19
# env_vec entries
E_MAX_SLATES, E_CHURN_WINDOW, E_HORIZON = range(3)

CatalogArrays = namedtuple(
    "CatalogArrays", "topic embeddings mean_embedding quality popularity duration duration_scaled created_day"
)
CatalogArrays.__doc__ = "The catalog's per-item arrays (rows = items) and the mean embedding (D,)."
LogArrays = namedtuple("LogArrays", "est_taste topics hist_items hist_engagement hist_next stats")
LogArrays.__doc__ = "The platform log (recoworld.world.platform.PlatformState): topics rows P_*, stats columns S_*."
ClockArrays = namedtuple("ClockArrays", "day session_step days_active churned finished")
ClockArrays.__doc__ = "Each user's calendar (recoworld.world.platform.Clock)."
ObsArrays = namedtuple("ObsArrays", "scale candidates user topics instruction candidate_topics")
ObsArrays.__doc__ = """Observation buffers (recoworld.world.observation layout) and their scale (max slates per session,
churn window, horizon, slate size); empty buffers (0 rows) mean no observation. ``candidate_topics`` with rows: the
compact layout (each candidate's topic index there, no one-hot in ``candidates``)."""
Outputs = namedtuple("Outputs", "items users")
Outputs.__doc__ = "The step's report: items (b, K, ITEM_OUTPUTS) O_* columns, users (b, USER_OUTPUTS) U_* columns."


def catalog_arrays(catalog: Any) -> CatalogArrays:
    """The kernel's view of a :class:`recoworld.world.catalog.Catalog`."""
    return CatalogArrays(catalog.topic, catalog.embeddings, catalog.mean_embedding, catalog.quality, catalog.popularity,
                         catalog.duration, catalog.duration_scaled, catalog.created_day)


def log_arrays(platform: Any) -> LogArrays:
    """The kernel's view of a :class:`recoworld.world.platform.PlatformState`."""
    return LogArrays(platform.est_taste, platform.topics, platform.hist_items, platform.hist_engagement,
                     platform.hist_next, platform.stats)


def clock_arrays(clock: Any) -> ClockArrays:
    """The kernel's view of a :class:`recoworld.world.platform.Clock`."""
    return ClockArrays(clock.day, clock.session_step, clock.days_active, clock.churned, clock.finished)
