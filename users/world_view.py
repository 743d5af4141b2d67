"""What a user backend sees of the world during a step, as protocols.

The simulation (``recoworld.world.simulation.Simulation``) and its step's outcome (``StepOutcome``) satisfy
them; the users' modules name these instead of the world's classes, so that no module below the world
refers to it, not even in an annotation. Imports: numpy and type names of the layers below only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from recoworld.scenario_sections import EnvConfig
    from recoworld.users.instructions import Instruction
    from recoworld.users.mindset import Mindset
    from recoworld.users.profile import UserProfile
    from recoworld.world.catalog import Catalog
    from recoworld.world.platform import PlatformState


class UserColumns(Protocol):
    """The users' packed arrays, as far as a backend reads them."""

    @property
    def instr_age(self) -> np.ndarray:
        """(B,) slates since each user's pending instruction; -1 = none."""
        ...


@runtime_checkable
class SimulationView(Protocol):
    """The simulation as a user backend reads and changes it (rows index its users)."""

    catalog: Catalog
    profiles: list[UserProfile]
    users: UserColumns
    platform: PlatformState
    env: EnvConfig

    @property
    def day(self) -> np.ndarray:
        """(B,) each user's current day."""
        ...

    @property
    def session_step(self) -> np.ndarray:
        """(B,) slates served so far in each user's session."""
        ...

    def mindset(self, row: int, memory: int = 10) -> Mindset:
        """A readable snapshot of the user's hidden state, with up to ``memory`` session memory entries."""
        ...

    def tell(self, row: int, more: str | None, less: str | None, surprise: bool, text: str) -> None:
        """The user voices an instruction in the words ``text`` (topics by name; unknown names mean 'something different')."""
        ...

    def set_instruction_text(self, row: int, text: str) -> None:
        """Replace the words of the user's pending instruction."""
        ...

    def instruction(self, row: int) -> Instruction | None:
        """The user's pending instruction, or None."""
        ...


class SlateResponseView(Protocol):
    """Per-item and per-user results of the slates just reviewed."""

    @property
    def action_codes(self) -> np.ndarray:
        """(b, K) each item's action code."""
        ...

    @property
    def per_user(self) -> np.ndarray:
        """(b, columns) per-user results (reward components, ended, churned, emitted, ...)."""
        ...


class SlateEffectsView(Protocol):
    """What the slates changed in the users."""

    @property
    def emitted(self) -> np.ndarray:
        """(b,) bool: the user voiced an instruction in this step."""
        ...


@runtime_checkable
class StepOutcomeView(Protocol):
    """A step's outcome for the b users served."""

    @property
    def response(self) -> SlateResponseView:
        """The slates' results."""
        ...

    @property
    def effects(self) -> SlateEffectsView:
        """The slates' effects on the users."""
        ...

    @property
    def session_ended(self) -> np.ndarray:
        """(b,) the step ended the user's session."""
        ...

    @property
    def churned(self) -> np.ndarray:
        """(b,) the session ended and the user will not come back."""
        ...
