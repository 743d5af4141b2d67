"""Metrics of a run from its logs: per user, per arm and per day; retention curves, diversity and creator health.

Every function takes a :class:`~recoworld.evaluation.data.RunLogs` and returns plain pandas frames with
one block per arm; each docstring states its definition. They are computed from the sums of one pass
over the logs (``scan``): the impressions and sessions are read batch by batch, never whole, and reduced
with ``np.bincount`` per (arm, user), (arm, item), (arm, day) and arm, so memory follows the population,
not the length of the logs, and no Python loop runs over rows, slates or users.

Terms used throughout:

- *reviewed* impression: a row whose action is not ``unseen`` (the user looked at it).
- *slate*: the rows of one (arm, user, day, step); *session*: one row of ``logs.sessions``.
- *returned* session: the user comes back within the churn window (``not churned`` and a positive gap;
  the comeback may fall after the horizon).
- the arm's *world*: its own copy of the platform (``copies``) or the world all arms share (``split``);
  its catalog is the day-0 catalog plus the items published in it.

Modules: ``base`` (constants, Gini, slate NDCG), ``codes``, ``sessions`` and ``scan`` (the one pass),
``exposure`` (what each arm showed of its world), ``users`` (user table, Kaplan-Meier, NDCG vs
retention), ``arms`` (``arm_summary``), ``daily`` (per day, Lorenz, creators).
"""

from recoworld.evaluation.metrics.arms import arm_summary
from recoworld.evaluation.metrics.base import (
    CREATOR_DAILY_COLUMNS,
    CREATOR_SUMMARY_COLUMNS,
    ILD_SLATES,
    QUADRANTS,
    RETENTION_DAYS,
    USER_COLUMNS,
    gini,
    slate_ndcg,
)
from recoworld.evaluation.metrics.daily import creator_health, daily, lorenz
from recoworld.evaluation.metrics.users import kaplan_meier, ndcg_retention_2x2, user_table

__all__ = [
    "CREATOR_DAILY_COLUMNS", "CREATOR_SUMMARY_COLUMNS", "ILD_SLATES", "QUADRANTS", "RETENTION_DAYS", "USER_COLUMNS",
    "arm_summary", "creator_health", "daily", "gini", "kaplan_meier", "lorenz", "ndcg_retention_2x2", "slate_ndcg",
    "user_table",
]
