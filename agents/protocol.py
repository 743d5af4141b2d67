"""The recommender contract: what a recommender sees (UserView, which the world builds and
:mod:`recoworld.world.user_view` defines), what it returns (Recommendation, SlateChoice) and the full
protocol the runs need (Recommender)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.world.user_view import UserView

__all__ = ["Recommendation", "Recommender", "SlateChoice", "UserView"]

if TYPE_CHECKING:
    import pandas as pd


class Recommendation(BaseModel):
    """One user's slate: candidate positions in display order, plus optional words for the user."""

    model_config = ConfigDict(extra="forbid")

    items: list[int] = Field(description="Positions into the view's candidates, in display order.")
    message: str = Field("", description="What the recommender says to the user with the slate.")
    reasoning: str = Field("", description="Why these items (for logs, never shown to the user).")


@dataclass
class SlateChoice:
    """Slates for a batch: candidate positions (b, K) and the propensity of each choice (b, K)."""

    positions: np.ndarray
    propensities: np.ndarray
    fallback: np.ndarray | None = None  # (b,) bool: the slate came from a fallback path (e.g. an LLM failed)


@runtime_checkable
class Recommender(Protocol):
    """Everything a population run, the env loop and off-policy evaluation ask of a recommender.

    ``recoworld.agents.baselines.BaseRecommender`` implements it; a new recommender may subclass
    it or implement these members itself."""

    name: str
    needs_text: bool  # wants the users' instructions in words (UserView.instructions)
    needs_observation: bool  # wants the RecoWorld-v0 observation arrays (UserView.observation)

    def recommend(self, view: UserView) -> Recommendation:
        """One user's slate (a view of one user), with optional words."""
        ...

    def slate(self, view: UserView) -> SlateChoice:
        """Slates for a batch of users, with the propensity of each choice."""
        ...

    def inclusion(self, view: UserView) -> np.ndarray:
        """(b, M) probability that each candidate would be in the slate (for off-policy estimates)."""
        ...

    def observe(self, view: UserView, positions: np.ndarray, clicks: np.ndarray, reviewed: np.ndarray) -> None:
        """Feedback on the slates just served (b, K)."""
        ...

    def retrain(self, impressions: pd.DataFrame) -> None:
        """Refit on the run's impression logs so far (every ``run.retrain_every`` days)."""
        ...

    @property
    def learns_from_logs(self) -> bool:
        """Whether :meth:`retrain` does anything (the runner keeps logs in memory only then)."""
        ...

    def reseed(self, key: Sequence[int]) -> None:
        """Fresh random streams from ``key`` (each shard-day draws independently)."""
        ...

    def merge(self, copies: Sequence[Recommender]) -> None:
        """Take in what copies learned while serving shards of users in parallel."""
        ...
