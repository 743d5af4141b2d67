"""Named reward components and the weights that turn them into a scalar."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

COMPONENTS: tuple[str, ...] = ("click", "like", "share", "comment", "watch_minutes", "skip", "leave", "return", "churn")


class RewardWeights(BaseModel):
    """Weight of each reward component; the step reward is their weighted sum."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    click: float = Field(1.0, description="Per item clicked.")
    like: float = Field(0.5, description="Per like.")
    share: float = Field(1.0, description="Per share.")
    comment: float = Field(0.5, description="Per comment.")
    watch_minutes: float = Field(0.1, description="Per minute watched.")
    skip: float = Field(0.0, description="Per item skipped.")
    leave: float = Field(-1.0, description="When the user leaves the session.")
    return_: float = Field(2.0, alias="return", description="When a session ends and the user will come back (x 1/gap days).")
    churn: float = Field(-10.0, description="When a session ends and the user never comes back.")

    def vector(self) -> np.ndarray:
        """Weights in the order of :data:`COMPONENTS`."""
        return np.array([self.return_ if c == "return" else getattr(self, c) for c in COMPONENTS], dtype=np.float32)


def as_dict(components: np.ndarray) -> dict[str, float]:
    """One user's component vector as a plain dict (the form that goes into ``info['rewards']``)."""
    return dict(zip(COMPONENTS, np.asarray(components, dtype=float).tolist()))
