"""Plausible answers for the local test server: a valid JSON object for whatever schema a request asks
for, and, for LLM users' slate decisions, what a small model would answer (a decision per item with a
short reason). Deterministic: the same request gets the same answer."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

SCHEMA_PREFIX = "Answer with one JSON object matching this JSON schema: "
SLOT = re.compile(r"^<<< \[(\d+)\].*\(topic (\w+)", re.MULTILINE)


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a chat request asks for: from ``response_format``, else from the system prompt."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
    if schema:
        return schema
    for message in body.get("messages", []):
        text = str(message.get("content") or "")
        at = text.find(SCHEMA_PREFIX)
        if at >= 0:
            try:
                return json.JSONDecoder().raw_decode(text[at + len(SCHEMA_PREFIX):])[0]
            except json.JSONDecodeError:
                return None
    return None


def plausible_answer(body: dict[str, Any]) -> str:
    """A plausible JSON answer to any request the project sends (see the module docstring)."""
    schema = request_schema(body) or {}
    prompt = str((body.get("messages") or [{}])[-1].get("content") or "")
    props = schema.get("properties", {})
    if "items" in props and "leave" in props:
        return json.dumps(_slate_decision(prompt, props))
    if schema.get("title") == "InstructionWords":
        return json.dumps({"text": "Honestly I've seen enough of this lately, can you show me something else?"})
    return json.dumps(example(schema, schema.get("$defs", {}), zlib.crc32(prompt.encode())))


def _slate_decision(prompt: str, props: dict[str, Any]) -> dict[str, Any]:
    items = []
    for j, topic in SLOT.findall(prompt):
        watch = (zlib.crc32(topic.encode()) + int(j)) % 4 == 0
        items.append({"position": int(j), "action": "click" if watch else "skip", "watch_seconds": 45.0 if watch else 0.0,
                      "reason": f"{'looks fun' if watch else 'not in the mood for'} {topic}"})
    leave = "slate 4 of" in prompt
    answer = {"items": items, "leave": leave, "mindset": "A bit tired, still curious about a couple of topics.",
              "instruction": None,
              "session_summary": "Scrolled a few slates, watched a couple of clips, then got bored." if leave else None}
    return {k: v for k, v in answer.items() if k in props}


def example(schema: dict[str, Any], defs: dict[str, Any], seed: int = 0) -> Any:
    """A valid instance of a (pydantic-made) JSON schema: the first enum value or a seeded one, numbers
    inside their bounds, the fewest array items allowed, every property of an object."""
    if "$ref" in schema:
        return example(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, seed)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][seed % len(schema["enum"])]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example(options[0], defs, seed)
    kind = schema.get("type", "object")
    if kind == "object":
        return {name: example(sub, defs, seed + i) for i, (name, sub) in enumerate(schema.get("properties", {}).items())}
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), 1) if schema.get("maxItems", 1) else 0
        return [example(schema.get("items", {}), defs, seed + i) for i in range(n)]
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 1))
        value = low + (high - low) / 2
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    text = "sounds good"
    return text[: schema["maxLength"]] if "maxLength" in schema else text
