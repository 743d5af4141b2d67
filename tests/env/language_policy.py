"""A deterministic language-agent policy shared by the agent-env tests and the client script they run in
another process: slates of ids (the user's asked-for topic first) and, every third slate, ToolRec tool calls."""

from __future__ import annotations

from typing import Any


def policy(obs: Any) -> dict[str, Any]:
    """The reply to an AgentObservation (a plain dict, as a client sends it)."""
    if obs.session_step % 3 == 2:
        topic = obs.candidates[obs.day % len(obs.candidates)].topic
        return {"tool_calls": [{"name": "retrieve", "attribute": "topic", "value": topic, "k": 4},
                               {"name": "retrieve", "attribute": "recency"}, {"name": "rerank", "attribute": "diversity"},
                               {"name": "finish"}], "message": f"More {topic} today."}
    asked = [c.id for c in obs.candidates if obs.instruction and c.topic in obs.instruction]
    rest = [c.id for c in obs.candidates if c.id not in asked]
    shift = (obs.day + obs.session_step) % 7  # not always the same positions
    return {"items": (asked + rest[shift:] + rest[:shift])[: obs.slate_size]}
