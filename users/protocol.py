"""The user-backend contract: who decides what a user does with a slate.

Parametric, LLM and hybrid users implement :class:`UserBackend`; the simulation calls ``decide``
before the compiled step (decisions it returns replace the parametric ones) and ``after_step``
after it, with what :mod:`.world_view` says a backend sees of the world. Imports: numpy, the LLM layer's
``Usage`` and type names only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from recoworld.llm.base import Usage

if TYPE_CHECKING:
    from recoworld.users.parametric import ForcedDecisions
    from recoworld.users.world_view import SimulationView, StepOutcomeView


@runtime_checkable
class UserBackend(Protocol):
    """What the simulation needs from a user backend."""

    kind: str  # "parametric", "llm" or "hybrid"
    exhausted: bool  # a budget cap was reached: the caller should end cleanly

    @property
    def usage(self) -> Usage:
        """LLM calls, tokens and cost so far (a running sum; zero for parametric users)."""
        ...

    def decide(self, sim: SimulationView, rows: np.ndarray, slates: np.ndarray) -> ForcedDecisions | None:
        """Decisions for ``rows`` reviewing ``slates``, or None to let the parametric model decide."""
        ...

    def after_step(self, sim: SimulationView, rows: np.ndarray, slates: np.ndarray, outcome: StepOutcomeView) -> None:
        """See the step's outcome (write words, update memories)."""
        ...

    def fallbacks(self, n: int) -> np.ndarray:
        """(n,) bool: the last step's users whose decision fell back to the parametric model."""
        ...
