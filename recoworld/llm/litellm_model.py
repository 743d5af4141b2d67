"""The litellm adapter: any provider litellm knows (OpenAI, Ollama, vLLM, ...) behind LanguageModel.

``litellm`` is imported lazily on the first call (the import takes seconds) with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` so that it never fetches the cost map from the network.
API keys are read from the environment only and never logged. This class makes exactly one
request per call: retries, caching, budgets and accounting are wrappers (see wrappers.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from typing import Any, Literal

from pydantic import BaseModel

from recoworld.llm.base import (
    Generation,
    LLMConfigError,
    LLMEmptyResponse,
    LLMError,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    Message,
    T,
    Usage,
    parse_structured,
)

_litellm: Any = None
_import_lock = threading.Lock()


def _load_litellm() -> Any:
    """Import litellm once, offline and quiet."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                try:
                    import litellm
                except ImportError as exc:
                    raise LLMConfigError(
                        "litellm is not installed: pip install 'recoworld[llm]'"
                    ) from exc

                litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners
                _litellm = litellm
    return _litellm


def with_schema_instruction(
    messages: list[Message], schema: type[BaseModel], json_schema: dict[str, Any] | None = None, first: bool = False
) -> list[Message]:
    """Return a copy of ``messages`` whose system prompt asks for one JSON object of ``schema``
    (shown as ``json_schema`` if given, else as its full JSON schema), after the system prompt or,
    with ``first``, before it (a prefix shared by every prompt of that schema, which a server can cache)."""
    shown = schema.model_json_schema() if json_schema is None else json_schema
    instruction = "Answer with one JSON object matching this JSON schema: " + json.dumps(shown, separators=(",", ":"))
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        parts = [instruction, out[0].get("content", "")] if first else [out[0].get("content", ""), instruction]
        out[0]["content"] = "\n\n".join(parts).strip()
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


ResponseFormat = Literal["json_object", "json_schema", "json_object_schema"]


def response_format(kind: ResponseFormat, schema: type[BaseModel], json_schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` request field: JSON mode, or the schema for constrained decoding.

    ``json_object``: any JSON (the schema is only in the prompt). ``json_schema``: OpenAI's
    structured outputs (``{"type": "json_schema", "json_schema": {...}}``), which vLLM, Ollama and
    llama.cpp's C++ server accept too. ``json_object_schema``: ``{"type": "json_object", "schema":
    {...}}``, the form llama-cpp-python's server turns into a grammar.
    """
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": json_schema, "strict": False}}
    if kind == "json_object_schema":
        return {"type": "json_object", "schema": json_schema}
    return {"type": "json_object"}


_MISSING_KEY_MARKERS = ("missing credentials", "api_key client option must be set")


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a 429's Retry-After header (a number of seconds; an HTTP date is ignored)."""
    sources = (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None),
               getattr(getattr(exc, "response", None), "headers", None))
    try:
        values = [h.get("retry-after") or h.get("Retry-After") for h in sources if h]
        value = next((v for v in values if v is not None), None)
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _refused(exc: BaseException) -> bool:
    """Whether the exception (or one it was raised from) is a refused TCP connection."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "connection refused" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def map_exception(exc: BaseException, *, secret: str | None = None) -> LLMError:
    """Translate a litellm / openai / httpx exception into the LLMError hierarchy.

    The message names the original class and is cut short; ``secret`` (an API key) is masked.
    """
    if isinstance(exc, LLMError):
        return exc
    import openai  # a litellm dependency, already imported once litellm is

    text = str(exc).replace("\n", " ")
    if secret:
        text = text.replace(secret, "***")
    message = f"{type(exc).__name__}: {text[:300]}"
    code = _status_code(exc)

    lowered = text.lower()
    if any(marker in lowered for marker in _MISSING_KEY_MARKERS):
        return LLMConfigError(message)  # litellm reports a missing key as a 500
    # APITimeoutError subclasses APIConnectionError: test it first.
    if isinstance(exc, (openai.APITimeoutError, TimeoutError, asyncio.TimeoutError)):
        return LLMTimeout(message)
    if isinstance(exc, openai.RateLimitError) or code == 429:
        return LLMRateLimited(message, retry_after=retry_after(exc))
    if _refused(exc):
        return LLMConfigError(f"the endpoint refused the connection (is the server running?): {message}")
    if isinstance(
        exc,
        (
            openai.AuthenticationError,
            openai.PermissionDeniedError,
            openai.NotFoundError,
            openai.BadRequestError,
        ),
    ):
        return LLMConfigError(message)
    if isinstance(exc, (openai.InternalServerError, openai.APIConnectionError)):
        return LLMServerError(message)
    if code is not None:
        if code == 408:
            return LLMTimeout(message)
        if code >= 500 or code in (409, 425):
            return LLMServerError(message)
        if 400 <= code < 500:
            return LLMConfigError(message)
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(message)
        if isinstance(exc, httpx.TransportError):
            return LLMServerError(message)
    except ImportError:  # pragma: no cover - httpx ships with openai
        pass
    if isinstance(exc, ConnectionError):
        return LLMServerError(message)
    if isinstance(exc, openai.APIError):  # litellm.APIError without a status: a provider hiccup
        return LLMServerError(message)
    return LLMError(message)  # unknown: not retried, but still an LLMError the caller can handle


def _rejects_json_mode(exc: BaseException) -> bool:
    """True when a provider refused ``response_format`` / an optional parameter."""
    name = type(exc).__name__
    text = str(exc).lower()
    if name == "UnsupportedParamsError":
        return True
    return _status_code(exc) in (400, 422) and "response_format" in text


class LiteLLMModel:
    """Structured generation through ``litellm.completion`` / ``litellm.acompletion``.

    ``model`` is any litellm model string (``openai/gpt-4o-mini``, ``ollama/qwen2.5``,
    ``hosted_vllm/...``). ``api_key_env`` names the environment variable holding the key;
    without it litellm reads the provider's usual variable (e.g. ``OPENAI_API_KEY``).
    ``api_key`` is a literal key for servers that need none (a local server); real keys come
    only from the environment. ``response_format`` picks how the schema is sent (see
    :func:`response_format`). ``mock_response`` is passed through to litellm (its offline mock,
    used in tests).
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        timeout: float = 30.0,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        api_key_env: str | None = None,
        mock_response: str | None = None,
        api_key: str | None = None,
        response_format: ResponseFormat = "json_object",
    ) -> None:
        if not model or not isinstance(model, str):
            raise LLMConfigError("model must be a non-empty litellm model string")
        self.model = model
        self.api_base = api_base
        self.timeout = float(timeout)
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.api_key_env = api_key_env
        self.mock_response = mock_response
        self._literal_key = api_key
        self.response_format = response_format
        self._json_mode = True  # switched off once if the provider rejects response_format

    def __repr__(self) -> str:  # never shows a key
        return f"LiteLLMModel(model={self.model!r}, api_base={self.api_base!r})"

    # -- request building ----------------------------------------------------------------

    def _api_key(self) -> str | None:
        if self.api_key_env is None:
            return self._literal_key
        key = os.environ.get(self.api_key_env)
        if not key:
            raise LLMConfigError(f"environment variable {self.api_key_env} is not set")
        return key

    def _request(
        self,
        messages: list[Message],
        schema: type[BaseModel],
        seed: int | None,
        temperature: float | None,
        key: str | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": self.prompt_messages(messages, schema),
            "temperature": self.temperature if temperature is None else float(temperature),
            "timeout": self.timeout,
            "num_retries": 0,  # RetryingModel is the only retry layer
            "max_retries": 0,
        }
        if seed is not None:
            kwargs["seed"] = int(seed)
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if key is not None:
            kwargs["api_key"] = key
        if self.mock_response is not None:
            kwargs["mock_response"] = self.mock_response
        if self._json_mode:
            kwargs["response_format"] = response_format(self.response_format, schema, self.response_schema(schema))
        else:  # the provider rejected a parameter once: let litellm drop what it lacks
            kwargs["drop_params"] = True
        return kwargs

    def prompt_messages(self, messages: list[Message], schema: type[BaseModel]) -> list[Message]:
        """The messages as sent: with the schema instruction (subclasses may shorten it)."""
        return with_schema_instruction(messages, schema)

    def response_schema(self, schema: type[BaseModel]) -> dict[str, Any]:
        """The JSON schema sent for constrained decoding (subclasses may tighten it)."""
        return schema.model_json_schema()

    @staticmethod
    def _without_json_mode(kwargs: dict[str, Any]) -> dict[str, Any]:
        retry = dict(kwargs)
        retry.pop("response_format", None)
        retry["drop_params"] = True  # let litellm drop any other parameter the provider lacks
        return retry

    def _generation(self, litellm: Any, response: Any, schema: type[T]) -> Generation[T]:
        """The validated answer; its usage is counted first, so an answer that fails validation
        raises an LLMError that still carries what it cost (``err.usage``)."""
        usage = getattr(response, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # noqa: BLE001 - no price for this model (a local server): free
            cost = 0.0
        spent = Usage(
            calls=1,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=cost,
        )
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        content = getattr(message, "content", None) if message is not None else None
        try:
            if not content or not str(content).strip():
                raise LLMEmptyResponse(f"{self.model}: empty content")
            value = parse_structured(str(content), schema)
        except LLMError as err:
            err.usage = spent
            raise
        return Generation[schema](value=value, usage=spent, model=self.model, raw=str(content))  # type: ignore[valid-type]

    # -- LanguageModel -----------------------------------------------------------------------

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """One structured call through litellm, validated against ``schema``; a server that refuses JSON mode is asked
        again without it (and never again with it). Errors come out as :class:`LLMError` with the API key masked."""
        litellm = _load_litellm()
        key = self._api_key()
        kwargs = self._request(messages, schema, seed, temperature, key)
        try:
            try:
                response = litellm.completion(**kwargs)
            except Exception as exc:
                if "response_format" not in kwargs or not _rejects_json_mode(exc):
                    raise
                self._json_mode = False
                response = litellm.completion(**self._without_json_mode(kwargs))
        except Exception as exc:
            raise map_exception(exc, secret=key) from exc
        return self._generation(litellm, response, schema)

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """The asyncio form of :meth:`generate` (litellm's ``acompletion``), with the same fallback and errors."""
        litellm = _litellm if _litellm is not None else await asyncio.to_thread(_load_litellm)
        key = self._api_key()
        kwargs = self._request(messages, schema, seed, temperature, key)
        try:
            try:
                response = await litellm.acompletion(**kwargs)
            except Exception as exc:
                if "response_format" not in kwargs or not _rejects_json_mode(exc):
                    raise
                self._json_mode = False
                response = await litellm.acompletion(**self._without_json_mode(kwargs))
        except Exception as exc:
            raise map_exception(exc, secret=key) from exc
        return self._generation(litellm, response, schema)
