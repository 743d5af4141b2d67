"""LocalModel: a LanguageModel on a local GGUF file, served by the process's own llama.cpp server.

It measures every prompt with the model's own tokenizer before sending it, shrinks the completion
cap so that prompt + answer fit the context window, refuses (LLMConfigError, so the caller falls
back) a prompt that leaves no room, and counts attempts, schema-valid answers, tokens and seconds
in :attr:`LocalModel.stats`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from recoworld.llm.base import Generation, LanguageModel, LLMConfigError, LLMError, LLMMalformedOutput, LLMServerError, Message, T
from recoworld.llm.litellm_model import LiteLLMModel, ResponseFormat, _refused, with_schema_instruction
from recoworld.llm.local_server import _NO_KEY, LOCAL_TIMEOUT, LocalLLMConfig, LocalServer, require_server, resolve_model_path, shared_server

_TEMPLATE_TOKENS = 8  # per message: role markers of a chat template, counted generously
_MIN_ANSWER = 32  # fewer free tokens than this for the answer: the prompt does not fit


def cap_schema(node: Any, max_chars: int, max_items: int) -> Any:
    """A copy of a JSON schema with free-text strings and arrays capped (a subset of what it accepts).

    Small models under a grammar can repeat themselves until the token cap cuts the JSON off; the
    caps make every answer end inside the budget and still validate against the original schema.
    """
    if isinstance(node, list):
        return [cap_schema(v, max_chars, max_items) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: cap_schema(v, max_chars, max_items) for k, v in node.items()}
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        out["maxLength"] = min(int(out.get("maxLength", max_chars)), max_chars)
    if out.get("type") == "array":
        out["maxItems"] = min(int(out.get("maxItems", max_items)), max_items)
    return out


def compact_schema(node: Any, in_properties: bool = False) -> Any:
    """A JSON schema without ``title`` and ``additionalProperties`` (for the prompt: a third fewer tokens)."""
    if isinstance(node, list):
        return [compact_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # keys here are field names, not keywords
        return {k: compact_schema(v) for k, v in node.items()}
    return {k: compact_schema(v, k in ("properties", "$defs")) for k, v in node.items() if k not in ("title", "additionalProperties")}


@functools.lru_cache(maxsize=4)
def _vocabulary(path: str) -> Any:
    """The model's tokenizer alone (vocab_only: no weights, no threads), loaded once per file."""
    from llama_cpp import Llama

    with _quiet_stderr():  # llama.cpp warns about the (unused) context of a vocabulary-only load
        return Llama(model_path=path, vocab_only=True, verbose=False)


atexit.register(_vocabulary.cache_clear)  # free the tokenizers while llama_cpp can still do it (not at interpreter teardown)


@contextlib.contextmanager
def _quiet_stderr():
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@dataclass
class LocalStats:
    """What reached the server: attempts, how they ended, tokens and seconds (valid answers' tokens only)."""

    attempts: int = 0
    valid: int = 0  # parsed and validated against the schema
    malformed: int = 0  # JSON that did not parse or validate (before any fallback)
    failed: int = 0  # other errors: timeouts, server errors, prompts that did not fit
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    max_prompt_tokens: int = 0


class _ServerClient(LiteLLMModel):
    """The litellm adapter with a compact schema in the prompt and capped strings and arrays in the grammar."""

    def __init__(self, *args: Any, max_chars: int, max_items: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_chars, self.max_items = max_chars, max_items

    def prompt_messages(self, messages: list[Message], schema: type[BaseModel]) -> list[Message]:
        return local_prompt(messages, schema)

    def response_schema(self, schema: type[BaseModel]) -> dict[str, Any]:
        return cap_schema(decoding_schema(schema), self.max_chars, self.max_items)


def decoding_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The grammar's JSON schema: the class's stricter ``decoding_schema()`` if it has one (e.g. fixed
    positions in a tuple, too long to show in the prompt), else its JSON schema."""
    stricter = getattr(schema, "decoding_schema", None)
    return stricter() if callable(stricter) else schema.model_json_schema()


def local_prompt(messages: list[Message], schema: type[BaseModel]) -> list[Message]:
    """The messages a local model gets: the compact schema first, so that prompts of one schema share a
    prefix that the server keeps in its KV cache from one call to the next."""
    return with_schema_instruction(messages, schema, compact_schema(schema.model_json_schema()), first=True)


class LocalModel:
    """Structured generation on ``local/<bundled name>`` or ``local/<file.gguf>``.

    Calls are serialised: the server decodes one request at a time, and a request waiting in its
    queue would spend its timeout there. The server starts on the first call.
    """

    def __init__(
        self,
        model: str,
        settings: LocalLLMConfig | None = None,
        *,
        timeout: float | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        response_format: ResponseFormat = "json_object_schema",
    ) -> None:
        require_server()
        self.model = model
        self.path = resolve_model_path(model)
        self.settings = settings or LocalLLMConfig()
        self.timeout = LOCAL_TIMEOUT if timeout is None else float(timeout)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens or self.settings.max_tokens)
        self.response_format = response_format
        self.stats = LocalStats()
        self._lock = threading.Lock()
        self._server: LocalServer | None = None
        self._client: _ServerClient | None = None

    def __repr__(self) -> str:
        return f"LocalModel(model={self.model!r}, n_threads={self.settings.n_threads}, n_ctx={self.settings.n_ctx})"

    def __getstate__(self) -> dict[str, Any]:  # a copy in another process starts its own server
        state = dict(self.__dict__)
        state.update(_lock=None, _server=None, _client=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def server(self) -> LocalServer | None:
        """The running server this model talks to (None before the first call)."""
        return self._server

    # -- prompt size -------------------------------------------------------------------------
    def count_tokens(self, messages: list[Message], schema: type[BaseModel]) -> int:
        """Prompt tokens of ``messages`` as sent (with the schema instruction), by the model's tokenizer."""
        vocab = _vocabulary(str(self.path))
        sent = local_prompt(messages, schema)
        text = sum(len(vocab.tokenize(m.get("content", "").encode("utf-8"), add_bos=False, special=True)) for m in sent)
        return text + _TEMPLATE_TOKENS * (len(sent) + 1)

    @property
    def prompt_limit(self) -> int:
        """The largest prompt that still leaves the full completion cap (at least half the window)."""
        return max(self.settings.n_ctx - self.max_tokens, self.settings.n_ctx // 2)

    def fits(self, messages: list[Message], schema: type[BaseModel]) -> bool:
        """Whether the prompt for ``messages`` and ``schema`` fits the context window with room for an answer."""
        return self.count_tokens(messages, schema) <= self.prompt_limit

    # -- LanguageModel -----------------------------------------------------------------------
    def _connect(self) -> _ServerClient:
        if self._server is not None and not self._server.alive:  # it died since the last call
            self._drop_server()
        if self._server is None:  # first call, or after a death or close(): (re)start, or join a running one
            self._server = shared_server(self.path, self.settings)
            self._client = _ServerClient(
                f"openai/{self._server.alias}", api_base=self._server.url, api_key=_NO_KEY, timeout=self.timeout,
                temperature=self.temperature, response_format=self.response_format,
                max_chars=self.settings.max_string_chars, max_items=self.settings.max_array_items,
            )
        assert self._client is not None
        return self._client

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """One structured call to the llama.cpp server (started, or joined, on first use and after it died), the answer
        capped to the context the prompt leaves; a prompt that leaves no room raises :class:`LLMConfigError`."""
        with self._lock:
            self.stats.attempts += 1
            prompt = self.count_tokens(messages, schema)
            room = self.settings.n_ctx - prompt
            if room < _MIN_ANSWER:
                self.stats.failed += 1
                raise LLMConfigError(
                    f"{self.model}: a prompt of {prompt} tokens leaves no room for the answer in n_ctx="
                    f"{self.settings.n_ctx}; raise llm.local.n_ctx"
                )
            client = self._connect()
            client.max_tokens = min(self.max_tokens, room)
            start = time.perf_counter()
            try:
                generation = client.generate(messages, schema, seed=seed, temperature=temperature)
            except LLMError as exc:
                self.stats.seconds += time.perf_counter() - start
                if isinstance(exc, LLMMalformedOutput):
                    self.stats.malformed += 1
                    raise
                self.stats.failed += 1
                died = self._died(exc)
                if died is not None:  # transient: the retry's call starts another server
                    raise LLMServerError(f"{self.model}: the local model server died during the call ({died}); "
                                         "the next call starts it again") from exc
                raise
            self._record(generation, time.perf_counter() - start)
            return generation.model_copy(update={"model": self.model})

    def _record(self, generation: Generation[Any], seconds: float) -> None:
        s, usage = self.stats, generation.usage
        s.valid += 1
        s.seconds += seconds
        s.prompt_tokens += usage.prompt_tokens
        s.completion_tokens += usage.completion_tokens
        s.max_prompt_tokens = max(s.max_prompt_tokens, usage.prompt_tokens)

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        """The asyncio form of :meth:`generate`, run in a worker thread."""
        return await asyncio.to_thread(self.generate, messages, schema, seed=seed, temperature=temperature)

    def _died(self, exc: LLMError) -> str | None:
        """After a failed call: how the server ended, if it has (it is then dropped), else None. A lost
        connection waits a moment for a killed server to finish dying; other errors (a 500, a timeout) do not."""
        if self._server is None:
            return None
        status = self._server.exit_status(wait=5.0 if _connection_lost(exc) else 0.0)
        if status is None:
            return None
        pid = self._server.pid
        self._drop_server()
        how = f"killed by {signal.Signals(-status).name}" if status < 0 and -status in signal.valid_signals() else f"exit status {status}"
        return f"pid {pid}, {how}"

    def _drop_server(self) -> None:
        if self._server is not None:
            self._server.release()
        self._server = self._client = None

    def close(self) -> None:
        """Give the server back: it stops unless another model of the same file and settings still uses it
        (a later call on this model starts or joins one again)."""
        with self._lock:
            self._drop_server()


def _connection_lost(exc: BaseException) -> bool:
    """Whether the call failed because the connection was refused or broke (not a timeout, not an HTTP status)."""
    import openai

    cause = exc.__cause__  # the adapter raises its LLMError from the client's exception
    broke = isinstance(cause, openai.APIConnectionError) and not isinstance(cause, openai.APITimeoutError)
    return broke or _refused(exc)


def innermost(model: LanguageModel) -> LanguageModel:
    """The model at the bottom of a wrapper stack (each wrapper keeps its inner model in ``.inner``)."""
    while hasattr(model, "inner"):
        model = model.inner
    return model


def context_fit(model: LanguageModel) -> Callable[[list[Message], type[BaseModel]], bool] | None:
    """For a stack around a LocalModel, its ``fits(messages, schema)`` test; None for models without a known window."""
    bottom = innermost(model)
    return bottom.fits if isinstance(bottom, LocalModel) else None
