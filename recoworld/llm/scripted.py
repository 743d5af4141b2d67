"""ScriptedModel: the test double. Same interface as any LanguageModel, answers from a function."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from recoworld.llm.base import (
    Generation,
    LLMError,
    LLMMalformedOutput,
    Message,
    T,
    Usage,
    parse_structured,
)

Answer = BaseModel | dict[str, Any] | str | Exception
Responder = Callable[[list[Message], type[BaseModel]], Answer]


class ScriptedModel:
    """Answers with ``respond(messages, schema)``; no network, deterministic, counts ``calls``.

    The answer may be an instance of ``schema`` (or another model with compatible fields), a
    dict, a JSON string (all validated against ``schema``; a failure raises
    LLMMalformedOutput / LLMEmptyResponse like a real model would), or an Exception, which is
    raised. Each call reports ``tokens_per_call`` = (prompt, completion) tokens and
    ``usd_per_call``.
    """

    def __init__(
        self,
        respond: Responder,
        model: str = "scripted",
        tokens_per_call: tuple[int, int] = (100, 20),
        usd_per_call: float = 0.0,
    ) -> None:
        self.respond = respond
        self.model = model
        self.tokens_per_call = (int(tokens_per_call[0]), int(tokens_per_call[1]))
        self.usd_per_call = float(usd_per_call)
        self.calls = 0
        self.last_messages: list[Message] | None = None
        self._lock = threading.Lock()

    def _validate(self, answer: Answer, schema: type[T]) -> tuple[T, str]:
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, str):
            value = parse_structured(answer, schema)
            return value, answer
        try:
            if isinstance(answer, schema):
                value = answer
            elif isinstance(answer, BaseModel):
                value = schema.model_validate(answer.model_dump())
            elif isinstance(answer, dict):
                value = schema.model_validate(answer)
            else:
                raise TypeError(
                    f"respond() returned {type(answer).__name__}; expected a {schema.__name__}, "
                    "dict, JSON string or Exception"
                )
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            first = errors[0] if errors else {"loc": (), "msg": "invalid"}
            where = ".".join(str(part) for part in first.get("loc", ())) or "<root>"
            raise LLMMalformedOutput(
                f"{schema.__name__}: ValidationError ({len(errors)} error(s)); "
                f"{where}: {first['msg']}"
            ) from None
        return value, value.model_dump_json()

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """The scripted answer to ``messages``, validated against ``schema`` like a real model's; counts the call and
        its configured tokens and cost, also when the answer is invalid."""
        with self._lock:
            self.calls += 1
            self.last_messages = messages
        answer = self.respond(messages, schema)
        prompt_tokens, completion_tokens = self.tokens_per_call
        usage = Usage(calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=self.usd_per_call)
        try:
            value, raw = self._validate(answer, schema)
        except LLMError as err:
            if not isinstance(answer, Exception):  # the model answered, invalidly: it still cost
                err.usage = usage
            raise
        return Generation[schema](value=value, usage=usage, model=self.model, raw=raw)  # type: ignore[valid-type]

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """The asyncio form of :meth:`generate` (the same answer, the same counts)."""
        return self.generate(messages, schema, seed=seed, temperature=temperature)
