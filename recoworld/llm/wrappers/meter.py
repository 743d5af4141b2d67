"""MeteredModel: token, cost and call accounting, summed per run and per scope."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

from recoworld.llm.base import LanguageModel, LLMError, T, Usage
from recoworld.llm.wrappers.base import CALL, Flow, Request, Wrapper


class MeteredModel(Wrapper):
    """Token, cost and call accounting, summed per run (``total``) and per scope (``by_key``).

        with meter.scope("episode-3"):
            with meter.scope("user-7"):
                meter.generate(...)   # adds to total, by_key["episode-3"] and by_key["user-7"]

    Scopes live in a ContextVar, so asyncio tasks started inside a scope inherit it.
    ``errors`` counts failed calls by LLMError class name (in total and per scope).
    """

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner
        self.model = inner.model
        self.total = Usage()
        self.by_key: dict[str, Usage] = {}
        self.errors: dict[str, int] = {}
        self.errors_by_key: dict[str, dict[str, int]] = {}
        self._scopes: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
            f"llm_meter_scopes_{id(self)}", default=()
        )
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def scope(self, key: str) -> Iterator[None]:
        """Attribute every call made inside the block to ``key`` (scopes nest)."""
        current = self._scopes.get()
        token = self._scopes.set(current if key in current else (*current, key))
        try:
            yield
        finally:
            self._scopes.reset(token)

    @property
    def active_scopes(self) -> tuple[str, ...]:
        """The accounting scopes open in this context (innermost last)."""
        return self._scopes.get()

    def _record(self, usage: Usage | None, error: LLMError | None) -> None:
        keys = self._scopes.get()
        with self._lock:
            if usage is not None:
                self.total = self.total + usage
                for key in keys:
                    self.by_key[key] = self.by_key.get(key, Usage()) + usage
            if error is not None:
                name = type(error).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                for key in keys:
                    per_key = self.errors_by_key.setdefault(key, {})
                    per_key[name] = per_key.get(name, 0) + 1

    def flow(self, request: Request[T]) -> Flow:
        """Call the inner model and record its usage, also when the call failed after spending tokens."""
        try:
            generation = yield CALL
        except LLMError as exc:
            self._record(exc.usage, exc)  # an answer that failed validation still cost tokens
            raise
        self._record(generation.usage, None)
        return generation
