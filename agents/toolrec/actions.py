"""ToolRec's vocabulary: attributes, the actions a controller takes and the log of each call."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recoworld.llm.text import quote

RETRIEVE_ATTRIBUTES: tuple[str, ...] = ("topic", "recency", "duration", "popularity", "semantic_id", "text")
RERANK_ATTRIBUTES: tuple[str, ...] = ("relevance", "popularity", "recency", "quality", "diversity")
LLM_RERANK = "llm"
TOP_UP = "top up"
MMR_LAMBDA = 0.5
_ALIASES = {"semantic_ids": "semantic_id", "sid": "semantic_id", "semanticid": "semantic_id", "category": "topic"}


class ToolError(ValueError):
    """A tool call that cannot be carried out (unknown attribute or value, bad k)."""


# ----------------------------------------------------------------------------- actions and logs
class ToolAction(BaseModel):
    """One controller decision: a retrieval, a re-rank, or finish."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["retrieve", "rerank", "finish"] = Field(
        description="retrieve: add matching candidates to the pool; rerank: re-order the pool and keep "
        "the top k; finish: stop and serve the pool."
    )
    attribute: str | None = Field(
        None,
        description="retrieve: topic | recency | duration | popularity | semantic_id | text; "
        "rerank: relevance | popularity | recency | quality | diversity | llm.",
    )
    value: str | None = Field(
        None,
        description="topic name (topic), short|long (duration), code prefix like 12 or 12-5 (semantic_id), "
        "free text (text); unused otherwise.",
    )
    k: int | None = Field(None, description="How many items to retrieve or to keep (default: the slate size).")
    reason: str = Field("", description="One short sentence: why this action.")

    @field_validator("value", mode="before")
    @classmethod
    def _value_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    def brief(self, quoted: bool = False) -> str:
        """``kind[attribute, 'value', k=K]``; with ``quoted`` the value as prompt data (``<<< value >>>``)."""
        if self.kind == "finish":
            return "finish"
        value = None if self.value is None else quote(self.value, 80) if quoted else f"'{self.value}'"
        args = [a for a in (self.attribute, value) if a is not None]
        if self.k is not None:
            args.append(f"k={self.k}")
        return f"{self.kind}[{', '.join(args)}]"


class ToolCall(BaseModel):
    """One logged step: the action (None when the controller produced none), what it returned, any error."""

    step: int = Field(description="0-based step of the controller loop.")
    action: ToolAction | None = Field(description="The action as parsed (None: no valid action).")
    returned: list[int] = Field(
        default_factory=list,
        description="Candidate positions: new pool items (retrieve), the kept pool (rerank), the slate (finish).",
    )
    error: str | None = Field(None, description="Why the step was skipped or fell back; None if it worked.")
    auto: bool = Field(False, description="Added by ToolRec itself (closing finish), not by the controller.")

    def brief(self) -> str:
        """The call in a few characters for trajectories: action, items returned, error."""
        what = self.action.brief() if self.action is not None else "?"
        text = f"{what}->{len(self.returned)}"
        return f"{text} !{self.error}" if self.error else text


def normalise_attribute(attribute: str | None) -> str:
    key = (attribute or "").strip().lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(key, key)


def parse_sid_prefix(value: str | None) -> list[int]:
    """``"12"``, ``"12-5"``, ``"sid 12-5"`` → ``[12, 5]``."""
    text = (value or "").strip().lower().removeprefix("sid").strip()
    parts = [p for p in text.replace("/", "-").replace(" ", "-").split("-") if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ToolError(f"semantic_id value must be a code prefix like '12' or '12-5', got '{value}'")
    return [int(p) for p in parts]
