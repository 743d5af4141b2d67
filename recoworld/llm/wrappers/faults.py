"""FaultInjectingModel: seeded injected failures, for testing the fallbacks."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from recoworld.llm.base import (
    LanguageModel,
    LLMEmptyResponse,
    LLMError,
    LLMMalformedOutput,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    T,
)
from recoworld.llm.wrappers.base import CALL, Flow, Request, Wrapper

FAULT_KINDS: tuple[str, ...] = ("timeout", "rate_limit", "server", "malformed", "empty", "schema")


def _fault(kind: str, schema: type[BaseModel]) -> LLMError:
    name = schema.__name__
    if kind == "timeout":
        return LLMTimeout("injected fault: request timed out")
    if kind == "rate_limit":
        return LLMRateLimited("injected fault: rate limited (HTTP 429)")
    if kind == "server":
        return LLMServerError("injected fault: server error (HTTP 500)")
    if kind == "malformed":
        return LLMMalformedOutput(f"{name}: injected fault: ValidationError; <root>: Invalid JSON")
    if kind == "empty":
        return LLMEmptyResponse(f"{name}: injected fault: empty content")
    if kind == "schema":
        return LLMMalformedOutput(
            f"{name}: injected fault: ValidationError; the answer does not match the schema"
        )
    raise ValueError(f"unknown fault kind {kind!r}")  # pragma: no cover - checked in __init__


class FaultInjectingModel(Wrapper):
    """With probability ``rate`` raises one of ``kinds`` (uniformly) instead of calling inner.

    Draws come from ``numpy.random.default_rng(seed)``; ``injected`` counts faults by kind and
    ``passed`` the calls forwarded to ``inner``.
    """

    def __init__(
        self,
        inner: LanguageModel,
        rate: float,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds}")
        self.inner = inner
        self.model = inner.model
        self.rate = float(rate)
        self.kinds = tuple(kinds)
        self.injected: dict[str, int] = {kind: 0 for kind in self.kinds}
        self.passed = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    @property
    def total_injected(self) -> int:
        """Faults injected so far, of every kind."""
        return sum(self.injected.values())

    def _maybe_fault(self, schema: type[BaseModel]) -> None:
        with self._lock:
            if self._rng.random() < self.rate:
                kind = self.kinds[int(self._rng.integers(len(self.kinds)))]
                self.injected[kind] += 1
            else:
                self.passed += 1
                return
        raise _fault(kind, schema)

    def flow(self, request: Request[T]) -> Flow:
        """With probability ``rate``, raise a fault of a kind drawn from ``kinds`` (counted in ``injected``); else call
        the inner model."""
        self._maybe_fault(request.schema)
        return (yield CALL)
