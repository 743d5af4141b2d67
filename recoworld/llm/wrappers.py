"""Wrappers around a LanguageModel; each implements the same interface around ``inner``.

Compose them outside-in as Metered(Budgeted(Cached(Retrying(model)))) (see config.py):
the cache sits outside the retries so a hit costs nothing, the budget outside the cache so
hits never count against it, and the meter outermost so it sees everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import BaseModel

from recoworld.llm.base import (
    Generation,
    LanguageModel,
    LLMBudgetExceeded,
    LLMEmptyResponse,
    LLMError,
    LLMMalformedOutput,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    Message,
    T,
    Usage,
    parse_structured,
)

__all__ = [
    "BudgetedModel",
    "CachedModel",
    "FaultInjectingModel",
    "MeteredModel",
    "RetryingModel",
    "cache_key",
    "generate_many",
]


# -- cache -------------------------------------------------------------------------------------


def cache_key(
    model: str,
    messages: list[Message],
    schema: type[BaseModel],
    seed: int | None,
    temperature: float | None,
) -> str:
    """sha256 over (model, messages, the schema's JSON schema, seed, temperature)."""
    payload = json.dumps(
        {
            "model": model,
            "messages": messages,
            "schema": schema.model_json_schema(),
            "seed": seed,
            "temperature": temperature,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CachedModel:
    """A SQLite answer cache for deterministic replay: a hit makes no call and costs nothing.

    Hits return ``cached=True`` and ``Usage(cache_hits=1)``. One connection guarded by a lock,
    so threads and asyncio tasks may share the wrapper. Only valid answers are stored.
    """

    def __init__(self, inner: LanguageModel, path: str | Path) -> None:
        self.inner = inner
        self.model = inner.model
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS answers ("
                " key TEXT PRIMARY KEY, model TEXT NOT NULL, schema TEXT NOT NULL,"
                " raw TEXT NOT NULL, created REAL NOT NULL)"
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def _lookup(self, key: str, schema: type[T]) -> Generation[T] | None:
        with self._lock:
            row = self._conn.execute("SELECT raw FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = parse_structured(row[0], schema)
        except LLMError:  # a stale entry that no longer validates: treat as a miss
            return None
        return Generation[schema](  # type: ignore[valid-type]
            value=value, usage=Usage(cache_hits=1), model=self.model, cached=True, raw=row[0]
        )

    def _store(self, key: str, schema: type[BaseModel], generation: Generation[Any]) -> None:
        raw = generation.raw or generation.value.model_dump_json()
        try:
            parse_structured(raw, schema)
        except LLMError:
            raw = generation.value.model_dump_json()
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO answers (key, model, schema, raw, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, self.model, schema.__name__, raw, time.time()),
            )

    def _hit(self, key: str, schema: type[T]) -> Generation[T] | None:
        hit = self._lookup(key, schema)
        with self._lock:
            if hit is None:
                self.misses += 1
            else:
                self.hits += 1
        return hit

    def lookup(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T] | None:
        """The cached answer for this request, or None (never calls ``inner``)."""
        hit = self._lookup(cache_key(self.model, messages, schema, seed, temperature), schema)
        if hit is not None:
            with self._lock:
                self.hits += 1
        return hit

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        key = cache_key(self.model, messages, schema, seed, temperature)
        hit = self._hit(key, schema)
        if hit is not None:
            return hit
        generation = self.inner.generate(messages, schema, seed=seed, temperature=temperature)
        self._store(key, schema, generation)
        return generation

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        key = cache_key(self.model, messages, schema, seed, temperature)
        hit = self._hit(key, schema)
        if hit is not None:
            return hit
        generation = await self.inner.agenerate(
            messages, schema, seed=seed, temperature=temperature
        )
        self._store(key, schema, generation)
        return generation


# -- retries -----------------------------------------------------------------------------------


class RetryingModel:
    """Retries transient LLMErrors with capped exponential backoff and full jitter.

    Before retry ``k`` (0-based) it sleeps ``uniform(0, min(max_delay, base_delay * 2**k))``,
    drawn from ``numpy.random.default_rng(seed)``. After ``max_retries`` retries the last
    error is re-raised; non-transient errors (budget, config) are raised at once.
    ``attempts`` counts every call made to ``inner``; ``retries`` the repeated ones.
    """

    def __init__(
        self,
        inner: LanguageModel,
        max_retries: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")
        self.inner = inner
        self.model = inner.model
        self.max_retries = int(max_retries)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.attempts = 0
        self.retries = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def backoff_cap(self, retry: int) -> float:
        """The upper bound of the delay before retry number ``retry`` (0-based)."""
        return min(self.max_delay, self.base_delay * (2.0**retry))

    def _next_delay(self, retry: int) -> float:
        with self._lock:
            self.retries += 1
            return float(self._rng.uniform(0.0, self.backoff_cap(retry)))

    def _count_attempt(self) -> None:
        with self._lock:
            self.attempts += 1

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        for retry in range(self.max_retries + 1):
            self._count_attempt()
            try:
                return self.inner.generate(messages, schema, seed=seed, temperature=temperature)
            except LLMError as exc:
                if not exc.transient or retry == self.max_retries:
                    raise
            self.sleep(self._next_delay(retry))
        raise AssertionError("unreachable")  # pragma: no cover

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        for retry in range(self.max_retries + 1):
            self._count_attempt()
            try:
                return await self.inner.agenerate(
                    messages, schema, seed=seed, temperature=temperature
                )
            except LLMError as exc:
                if not exc.transient or retry == self.max_retries:
                    raise
            await self.async_sleep(self._next_delay(retry))
        raise AssertionError("unreachable")  # pragma: no cover


# -- budget ------------------------------------------------------------------------------------


class BudgetedModel:
    """Call and USD limits; raises LLMBudgetExceeded *before* a call that would go past them.

    ``max_calls`` bounds the calls passed to ``inner`` that were not cache hits (failed calls
    count too, calls in flight are reserved, so concurrent callers cannot overshoot).
    ``max_usd`` stops new calls once the spent cost has reached it (the call that crosses the
    line completes; its cost is known only afterwards). ``spent`` is the sum of all usage.
    Once a limit is reached, requests that a CachedModel directly inside can answer are
    still served from the cache (hits are free); everything else raises.
    """

    def __init__(
        self,
        inner: LanguageModel,
        max_calls: int | None = None,
        max_usd: float | None = None,
    ) -> None:
        if max_calls is not None and max_calls < 0:
            raise ValueError("max_calls must be >= 0")
        if max_usd is not None and max_usd < 0:
            raise ValueError("max_usd must be >= 0")
        self.inner = inner
        self.model = inner.model
        self.max_calls = max_calls
        self.max_usd = max_usd
        self.spent = Usage()
        self.failed = 0  # calls that raised an LLMError
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def calls_used(self) -> int:
        return self.spent.calls + self.failed

    def _reserve(self) -> None:
        with self._lock:
            if self.max_calls is not None and self.calls_used + self._in_flight >= self.max_calls:
                raise LLMBudgetExceeded(f"call budget of {self.max_calls} calls is used up")
            if self.max_usd is not None and self.spent.cost_usd >= self.max_usd:
                raise LLMBudgetExceeded(
                    f"USD budget of {self.max_usd:.4f} is used up "
                    f"(spent {self.spent.cost_usd:.4f})"
                )
            self._in_flight += 1

    def _release(self, usage: Usage | None) -> None:
        with self._lock:
            self._in_flight -= 1
            if usage is None:
                self.failed += 1
            else:
                self.spent = self.spent + usage

    def _reserve_or_replay(
        self,
        messages: list[Message],
        schema: type[T],
        seed: int | None,
        temperature: float | None,
    ) -> Generation[T] | None:
        """Reserve a call; past the budget, return a cache hit if there is one, else raise."""
        try:
            self._reserve()
        except LLMBudgetExceeded:
            lookup = getattr(self.inner, "lookup", None)
            hit = lookup(messages, schema, seed=seed, temperature=temperature) if lookup else None
            if hit is None:
                raise
            with self._lock:
                self.spent = self.spent + hit.usage
            return hit
        return None

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        hit = self._reserve_or_replay(messages, schema, seed, temperature)
        if hit is not None:
            return hit
        try:
            generation = self.inner.generate(messages, schema, seed=seed, temperature=temperature)
        except BaseException:
            self._release(None)
            raise
        self._release(generation.usage)
        return generation

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        hit = self._reserve_or_replay(messages, schema, seed, temperature)
        if hit is not None:
            return hit
        try:
            generation = await self.inner.agenerate(
                messages, schema, seed=seed, temperature=temperature
            )
        except BaseException:
            self._release(None)
            raise
        self._release(generation.usage)
        return generation


# -- accounting --------------------------------------------------------------------------------


class MeteredModel:
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

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        try:
            generation = self.inner.generate(messages, schema, seed=seed, temperature=temperature)
        except LLMError as exc:
            self._record(None, exc)
            raise
        self._record(generation.usage, None)
        return generation

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        try:
            generation = await self.inner.agenerate(
                messages, schema, seed=seed, temperature=temperature
            )
        except LLMError as exc:
            self._record(None, exc)
            raise
        self._record(generation.usage, None)
        return generation


# -- fault injection ---------------------------------------------------------------------------

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


class FaultInjectingModel:
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

    def generate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        self._maybe_fault(schema)
        return self.inner.generate(messages, schema, seed=seed, temperature=temperature)

    async def agenerate(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Generation[T]:
        self._maybe_fault(schema)
        return await self.inner.agenerate(messages, schema, seed=seed, temperature=temperature)


# -- batches -----------------------------------------------------------------------------------


async def generate_many(
    model: LanguageModel,
    requests: Sequence[tuple[list[Message], type[T], int | None]],
    max_in_flight: int = 16,
) -> list[Generation[T] | LLMError]:
    """Run ``(messages, schema, seed)`` requests with at most ``max_in_flight`` at once.

    Results come back in request order; an LLMError is returned in its slot, not raised.
    """
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be >= 1")
    semaphore = asyncio.Semaphore(max_in_flight)

    async def one(messages: list[Message], schema: type[T], seed: int | None):
        async with semaphore:
            try:
                return await model.agenerate(messages, schema, seed=seed)
            except LLMError as exc:
                return exc

    return list(await asyncio.gather(*(one(m, s, seed) for m, s, seed in requests)))
