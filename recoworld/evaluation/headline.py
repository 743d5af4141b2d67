"""The headline metrics, each defined once. Population runs (``PopulationResult.summary``), reports
(``metrics.arm_summary``) and RL evaluation (``agents.rl.evaluation``) all compute them here, from
totals summed over the users of an arm (plain numbers, or pandas Series with one value per arm).

An undefined ratio (nothing in its denominator) is NaN, never 0.

Imports: numpy and pandas only.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import pandas as pd

Value = TypeVar("Value", float, pd.Series)


def ratio(num: Value, den: Value) -> Value:
    """``num / den`` pooled over users; NaN where ``den`` is 0."""
    if isinstance(den, pd.Series):
        return num / den.where(den > 0)
    return float(num) / float(den) if den > 0 else float("nan")


def ctr(clicks: Value, reviewed: Value) -> Value:
    """Clicks per reviewed impression (pooled over the arm's users)."""
    return ratio(clicks, reviewed)


def per_user(total: Value, users: Value) -> Value:
    """A total divided by the users served (watch minutes per user, days active per user, ...)."""
    return ratio(total, users)


def slates_per_session(slates: Value, sessions: Value) -> Value:
    """Slates served per session (a session ends when the user leaves or reaches the cap)."""
    return ratio(slates, sessions)


def churn_rate(churned: Value, users: Value) -> Value:
    """Share of the users served who churned."""
    return ratio(churned, users)


def compliance(compliance_sum: Value, scored_slates: Value) -> Value:
    """Mean compliance over the slates served while an instruction was pending."""
    return ratio(compliance_sum, scored_slates)


def sem(values: np.ndarray) -> float:
    """Standard error of the mean over users (NaN for fewer than two)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
