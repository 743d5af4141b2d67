"""The language-agent protocol: what a recommender that reads and writes language sees and replies.

An :class:`AgentObservation` is what the platform may show a recommender: the user's visible history and
feedback, their latest words, and the candidates as quoted text with ids (an id is the candidate's position,
as in RecoWorld-v0's slate action), as structured fields and as chat messages. It never holds the hidden
mindset. An :class:`AgentAction` is the reply: a slate of candidate ids, or ToolRec tool calls, plus an
optional message to the user. The same models travel over HTTP (``recoworld serve``) and in process.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MESSAGE_CHARS = 500  # the longest message to the user an action may carry


class Candidate(BaseModel):
    """An item the recommender may show."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="Position among this step's candidates: the id a slate names.")
    item_id: str = Field(description="The catalog's stable item id.")
    topic: str
    text: str = Field(description="Title, description and tags, quoted as data.")


class Seen(BaseModel):
    """An item the user reviewed earlier, with the feedback the platform saw."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    topic: str
    text: str
    feedback: str = Field(description="'skipped', 'watched N%' or 'watched N% and liked'.")


class AgentObservation(BaseModel):
    """What a recommender may see before it picks a slate (never the hidden mindset)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, str]] = Field(default_factory=list, description="The same view as chat messages.")
    user_id: str = ""
    day: int = 0
    session_step: int = 0
    history: list[Seen] = Field(default_factory=list, description="Reviewed items, oldest first.")
    instruction: str | None = Field(None, description="The user's latest words, where they spoke.")
    candidates: list[Candidate] = Field(default_factory=list)
    slate_size: int = 0
    topics: list[str] = Field(default_factory=list, description="Every topic name of the catalog.")
    error: str | None = Field(None, description="One line naming what was wrong with the last action.")
    reward: float | None = None
    done: bool = False
    truncated: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class ToolCall(BaseModel):
    """A ToolRec step: Retrieve[attribute, k], Rerank[attribute, k] or Finish."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["retrieve", "rerank", "finish"]
    attribute: str | None = Field(
        None,
        description="retrieve: topic | recency | duration | popularity | semantic_id | text; "
        "rerank: relevance | popularity | recency | quality | diversity (ToolRec's tools).",
    )
    value: str | None = Field(
        None, description="A topic name (topic), short | long (duration), a code prefix like 12-5 (semantic_id) or a query (text)."
    )
    k: int | None = Field(None, ge=1)


class AgentAction(BaseModel):
    """The agent's reply: a slate of candidate ids (``items``) or tool calls, and an optional message."""

    model_config = ConfigDict(extra="forbid")

    items: list[int] | None = Field(None, description="Candidate ids, in display order, exactly slate_size of them.")
    tool_calls: list[ToolCall] | None = Field(None, max_length=7)
    message: str = Field("", max_length=MESSAGE_CHARS)
