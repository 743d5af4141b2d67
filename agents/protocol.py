"""The recommender contract: what a recommender sees (UserView), what it returns (Recommendation,
SlateChoice) and the full protocol the runs need (Recommender)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.world.catalog import Catalog
from recoworld.users.instructions import NO_TOPIC, Instruction

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class UserView:
    """What the platform knows about b users at one decision. No hidden mindset is in here."""

    catalog: Catalog
    candidates: np.ndarray  # (b, M) catalog rows
    slate_size: int
    user_ids: list[str]
    est_taste: np.ndarray  # (b, D) engagement-weighted sum of clicked embeddings (zero = nothing known)
    click_topics: np.ndarray  # (b, T) decayed clicks per topic
    shown_topics: np.ndarray  # (b, T) decayed items shown per topic
    consumed: np.ndarray  # (b, M) candidate was clicked by this user before
    instr_more: np.ndarray  # (b,) topic asked for, or NO_TOPIC
    instr_less: np.ndarray  # (b,) topic asked to avoid, or NO_TOPIC
    instr_surprise: np.ndarray  # (b,) asked for something different
    session_step: np.ndarray  # (b,)
    day: np.ndarray  # (b,)
    history_items: np.ndarray  # (b, H) catalog rows reviewed, oldest first, -1 padded at the front
    history_engagement: np.ndarray  # (b, H) watch fraction (+1 if liked), 0 = skipped
    instructions: list[Instruction | None] = field(default_factory=list)  # the words, where a user spoke
    observation: dict[str, np.ndarray] | None = None  # RecoWorld-v0 observation arrays (b, ...), when asked for

    def __len__(self) -> int:
        return self.candidates.shape[0]

    @property
    def instr_active(self) -> np.ndarray:
        return (self.instr_more != NO_TOPIC) | (self.instr_less != NO_TOPIC) | self.instr_surprise

    @property
    def candidate_topics(self) -> np.ndarray:
        return self.catalog.topic[self.candidates]

    @property
    def candidate_embeddings(self) -> np.ndarray:
        return self.catalog.embeddings[self.candidates]

    def affinity(self) -> np.ndarray:
        """(b, M) cosine between each user's engagement profile and each candidate (0 when nothing known)."""
        from recoworld.agents.scoring import candidate_dot

        norm = np.linalg.norm(self.est_taste, axis=1, keepdims=True)
        return candidate_dot(self.catalog.embeddings, self.candidates, self.est_taste / np.maximum(norm, 1e-9))


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
