"""One small language-model interface: structured generation into a pydantic model, with a seed.

Everything else (caching, retries, budgets, accounting, concurrency, fault injection) is a
wrapper that implements the same interface around another model.
"""

from __future__ import annotations

import json
from typing import Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

T = TypeVar("T", bound=BaseModel)
Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


class LLMError(Exception):
    """A language-model call that did not produce a valid structured answer.

    ``usage`` is what the failed request cost when the model answered (an answer that failed
    validation still used tokens); the budget and the meter count it.
    """

    transient = False  # worth retrying
    usage: "Usage | None" = None


class LLMTimeout(LLMError):
    transient = True


class LLMRateLimited(LLMError):
    """HTTP 429; ``retry_after`` is the server's Retry-After in seconds, when it sent one."""

    transient = True

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMServerError(LLMError):
    transient = True


class LLMMalformedOutput(LLMError):
    """The answer was not valid JSON or did not fit the schema."""

    transient = True


class LLMEmptyResponse(LLMError):
    transient = True


class LLMBudgetExceeded(LLMError):
    """A call or USD budget would be exceeded; the caller should stop cleanly."""


class LLMConfigError(LLMError):
    """Bad model string, missing credentials or unreachable endpoint (not worth retrying)."""


class Usage(BaseModel):
    """Calls, tokens and cost; totals are always sums (``a + b``), never overwritten."""

    model_config = ConfigDict(extra="forbid")

    calls: int = Field(0, description="Calls that reached the model (cache hits excluded).")
    cache_hits: int = Field(0, description="Answers replayed from the cache.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return self._combine(other, 1)

    def __sub__(self, other: "Usage") -> "Usage":
        """What was spent since ``other`` (an earlier reading of the same running total)."""
        return self._combine(other, -1)

    def _combine(self, other: "Usage", sign: int) -> "Usage":
        return Usage(**{name: getattr(self, name) + sign * getattr(other, name) for name in Usage.model_fields})

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class Generation(BaseModel, Generic[T]):
    """A validated structured answer and what it cost."""

    value: T
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    cached: bool = False
    raw: str = Field("", description="The raw text the model returned (for logs).")


@runtime_checkable
class LanguageModel(Protocol):
    """Structured generation: messages in, a validated ``schema`` instance out (or an LLMError)."""

    model: str

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """One structured answer: ``messages`` in, an instance of ``schema`` out (LLMError subclasses on failure)."""
        ...

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """The async form of :meth:`generate`."""
        ...


def parse_structured(raw: str | None, schema: type[T]) -> T:
    """Validate a model's text answer against ``schema``.

    Empty content raises LLMEmptyResponse; invalid JSON or a schema violation raises
    LLMMalformedOutput naming the error class and the first failing field (never the content).
    A surrounding Markdown code fence (```json ... ```) is tolerated, and so are raw control
    characters (a newline) inside strings, which llama.cpp's JSON grammar lets through.
    """
    text = (raw or "").strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rstrip().removesuffix("```").strip()
    if not text:
        raise LLMEmptyResponse(f"{schema.__name__}: the model returned empty content")
    try:
        try:
            return schema.model_validate_json(text)
        except ValidationError as strict:
            loose = _loads_with_control_characters(text)
            if loose is None:
                raise strict from None
            return schema.model_validate(loose)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = errors[0] if errors else {"loc": (), "msg": str(exc)[:120]}
        where = ".".join(str(part) for part in first.get("loc", ())) or "<root>"
        raise LLMMalformedOutput(
            f"{schema.__name__}: ValidationError ({len(errors)} error(s)); {where}: {first['msg']}"
        ) from None


def _loads_with_control_characters(text: str) -> object | None:
    """``json.loads`` that accepts raw control characters inside strings; None if it is not JSON anyway."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        return None
