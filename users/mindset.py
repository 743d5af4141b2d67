"""A readable snapshot of one user's hidden mindset (for render, debugging and LLM prompts)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from recoworld.users.instructions import InstructionIntent


class MemoryEntry(BaseModel):
    """One recently reviewed item and what the user did with it."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    title: str
    topic: str
    engagement: float = Field(description="0 = skipped; else fraction watched, +1 if liked.")


class Mindset(BaseModel):
    """What the user feels now. The recommender never sees this; the world and its tools may."""

    model_config = ConfigDict(extra="forbid")

    satisfaction: float = Field(ge=0, le=1, description="EMA of how good recent slates were.")
    trust: float = Field(ge=0, le=1, description="Trust that the recommender listens.")
    fatigue: float = Field(ge=0, description="Session fatigue (resets between sessions).")
    boredom_streak: int = Field(ge=0, description="Consecutive items skipped.")
    satiation: dict[str, float] = Field(description="Topic -> short- plus long-term satiation (topics above 0.05).")
    pending_instruction: InstructionIntent | None = Field(None, description="What the user asked for and still waits for.")
    memory: list[MemoryEntry] = Field(default_factory=list, description="Recently reviewed items, oldest first.")

    def text(self) -> str:
        """A short description in words, e.g. for an LLM user's prompt."""
        sat = ", ".join(f"{t} {v:.2f}" for t, v in sorted(self.satiation.items(), key=lambda kv: -kv[1])[:4]) or "nothing"
        parts = [
            f"satisfaction {self.satisfaction:.2f}, trust {self.trust:.2f}, fatigue {self.fatigue:.2f}, "
            f"{self.boredom_streak} skips in a row; saturated on: {sat}."
        ]
        if self.pending_instruction is not None:
            parts.append(f"Waiting for: {self.pending_instruction.model_dump(exclude_defaults=True)}.")
        return " ".join(parts)
