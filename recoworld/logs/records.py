"""Run logs' schema: one record per shown item, per session and per creator-day, as Parquet per day.

A run folder holds ``scenario.yaml``, ``manifest.json``, ``users.parquet``, ``catalog.parquet``
and one file per table and day (``impressions/day=007.parquet``). The pydantic record models
below are the schema of each table (their fields are the columns, in order); the writers build
Arrow columns from numpy arrays directly (:func:`dictionary`, :func:`constant`), so a million rows
cost no Python loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

TABLES = ("impressions", "sessions", "creators", "items", "llm", "ope")



class ImpressionRecord(BaseModel):
    """One item shown to one user in one slate."""

    model_config = ConfigDict(extra="forbid")

    run: str = Field(description="Run id (scenario name).")
    arm: str = Field(description="Recommender arm that chose the slate.")
    day: int
    session: int = Field(description="The user's session number (1 = first).")
    step: int = Field(description="Slate number within the session (1 = first).")
    position: int = Field(description="Slot in the slate (0 = top).")
    user: str
    item: str
    creator: str
    topic: str
    action: str = Field(description="Strongest action: unseen, skip, click, like, comment, share, leave.")
    clicked: bool
    liked: bool
    shared: bool
    commented: bool
    skipped: bool
    left: bool = Field(description="The user left the session at this item.")
    watch_seconds: float
    reward: float = Field(description="Weighted item-level reward components (session-level ones are in sessions).")
    propensity: float = Field(description="Probability with which the recommender put this item in this slot.")
    candidate_index: int = Field(description="Position of the item in the retrieved candidate set.")
    instruction: str | None = Field(description="The user's pending instruction in words, if any.")
    compliance: float = Field(description="Compliance of the slate with the pending instruction; NaN if none.")
    user_fallback: bool = Field(description="An LLM user's decision fell back to the parametric model.")
    recommender_fallback: bool = Field(description="The recommender fell back from its LLM path.")
    user_echoed_item_text: bool = Field(
        description="An LLM user's answer repeated words of an item's text (it quoted or followed item text: an injection)."
    )


class SessionRecord(BaseModel):
    """One session of one user."""

    model_config = ConfigDict(extra="forbid")

    run: str
    arm: str
    day: int
    session: int
    user: str
    segment: str
    slates: int
    reviewed: int
    clicks: int
    likes: int
    shares: int
    comments: int
    watch_seconds: float
    reward: float = Field(description="All reward components of the session, return and churn included.")
    left: bool = Field(description="Ended by leaving (else by the slate cap).")
    churned: bool = Field(description="Will not come back within the churn window.")
    return_gap_days: int = Field(description="Days until the next session; 0 if none follows.")
    instructions: int = Field(description="Instructions voiced in the session.")
    compliance: float = Field(description="Mean compliance of slates with a pending instruction; NaN if none.")
    user_fallbacks: int


# ------------------------------------------------------------------ arrow helpers
def dictionary(codes: np.ndarray, values: Any) -> pa.DictionaryArray:
    """A dictionary-encoded string column from integer codes into ``values`` (-1 = null)."""
    codes = np.asarray(codes, dtype=np.int32)
    mask = codes < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(np.where(mask, 0, codes), type=pa.int32(), mask=mask if mask.any() else None), _strings(values),
    )


def _strings(values: Any) -> pa.Array:
    """``values`` as an Arrow string array, each value as ``str`` gives it; strings (a population's 100,000 user ids)
    go to Arrow as they are, which is 20x faster than through a numpy unicode array."""
    objects = np.asarray(values, dtype=object)
    listed = objects.tolist()
    if set(map(type, listed)) == {str}:
        return pa.array(listed, type=pa.string())
    return pa.array(objects.astype(str), type=pa.string())


def constant(value: str, n: int) -> pa.DictionaryArray:
    return dictionary(np.zeros(n, dtype=np.int32), [value])
