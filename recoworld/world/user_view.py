"""What the platform knows about b users at one decision: ``UserView``, built by
:meth:`recoworld.world.simulation.Simulation.view` and read by every recommender."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recoworld.users.instructions import NO_TOPIC, Instruction
from recoworld.world.catalog import Catalog


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
        """(b,) the user has a pending instruction (more, less or surprise)."""
        return (self.instr_more != NO_TOPIC) | (self.instr_less != NO_TOPIC) | self.instr_surprise

    @property
    def candidate_topics(self) -> np.ndarray:
        """(b, M) topic code of each candidate."""
        return self.catalog.topic[self.candidates]

    @property
    def candidate_embeddings(self) -> np.ndarray:
        """(b, M, D) embedding of each candidate."""
        return self.catalog.embeddings[self.candidates]

    def affinity(self) -> np.ndarray:
        """(b, M) cosine between each user's engagement profile and each candidate (0 when nothing known)."""
        from recoworld.world.affinity import candidate_dot

        norm = np.linalg.norm(self.est_taste, axis=1, keepdims=True)
        return candidate_dot(self.catalog.embeddings, self.candidates, self.est_taste / np.maximum(norm, 1e-9))
