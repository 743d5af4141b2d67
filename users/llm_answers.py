"""What an LLM user answers, as pydantic schemas: one :class:`SlateDecision` per slate (every item's
action, watch seconds and reason, the mindset in words, leave, an optional :class:`InstructionOut`),
made exact for a slate of k by :func:`slate_schema`; :class:`InstructionWords` for a hybrid user's words."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENGAGING = {"click": 0, "like": 1, "share": 2, "comment": 3}


class ItemDecision(BaseModel):
    """What the user did with one item of the slate."""

    model_config = ConfigDict(extra="forbid")

    position: int = Field(ge=0, description="Index of the item in the slate, in order.")
    action: Literal["skip", "click", "like", "share", "comment", "leave"] = Field(
        description="skip; click (watch it); like/share/comment (watched it and did that too); leave (stop the session here)."
    )
    watch_seconds: float = Field(0.0, ge=0, description="Seconds watched (0 unless watched).")
    reason: str = Field("", max_length=300, description="A few words on why.")


class InstructionOut(BaseModel):
    """What the user tells the recommender, if anything."""

    model_config = ConfigDict(extra="forbid")

    more_topic: str | None = Field(None, description="A topic they want more of.")
    less_topic: str | None = Field(None, description="A topic they want less of.")
    surprise: bool = Field(False, description="They want something different.")
    text: str = Field(max_length=300, description="The request in the user's own words and tone.")


class SlateDecision(BaseModel):
    """The user's reaction to one slate."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemDecision] = Field(description="One decision per item, in slate order, up to the item where they leave.")
    leave: bool = Field(False, description="Whether they leave the session after this slate.")
    mindset: str = Field("", max_length=500, description="How they feel now, in a sentence or two.")
    instruction: InstructionOut | None = Field(None, description="Only if they are about to lose interest.")
    session_summary: str | None = Field(
        None, max_length=500, description="If they leave (or this is the last slate): what this session was like."
    )


@functools.lru_cache(maxsize=None)
def slate_schema(k: int) -> type[SlateDecision]:
    """SlateDecision whose JSON schema (what the prompt shows and a constrained decoder enforces) asks
    for exactly ``k`` decisions; validation stays SlateDecision's."""

    def exactly_k(schema: dict) -> None:
        schema["properties"]["items"].update(
            minItems=k, maxItems=k, description=f"Exactly {k} decisions, one per item in slate order "
            f"(position 0 to {k - 1}); decisions after a 'leave' are ignored.",
        )

    def decoding_schema(cls: type[SlateDecision]) -> dict:
        """For constrained decoders: decision j must have position j (the prompt's schema stays short)."""
        schema = cls.model_json_schema()
        item = schema["$defs"]["ItemDecision"]
        tuple_items = [{**item, "properties": {**item["properties"], "position": {"const": j}}} for j in range(k)]
        schema["properties"]["items"] = {"type": "array", "prefixItems": tuple_items, "minItems": k, "maxItems": k}
        return schema

    def fits_slate(self: SlateDecision) -> SlateDecision:
        """A wrong item count or order fails validation, so the client's retries ask again."""
        for j, d in enumerate(self.items):
            if d.position != j:
                raise ValueError(f"items: expected position {j}, got {d.position}")
        left = self.leave or any(d.action == "leave" for d in self.items)
        if len(self.items) > k or (len(self.items) < k and not left):
            raise ValueError(f"items: {len(self.items)} decisions for a slate of {k}")
        return self

    return type("SlateDecision", (SlateDecision,), {
        "__doc__": SlateDecision.__doc__, "decoding_schema": classmethod(decoding_schema),
        "model_config": ConfigDict(extra="forbid", json_schema_extra=exactly_k),
        "_fits_slate": model_validator(mode="after")(fits_slate),
    })


class InstructionWords(BaseModel):
    """The words of an instruction whose intent is already decided (hybrid users)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=300, description="The request in the user's own words and tone.")
