"""CachedModel: a SQLite answer cache keyed by (model, messages, schema, seed, temperature)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel

from recoworld.llm.base import Generation, LanguageModel, LLMError, Message, T, Usage, parse_structured
from recoworld.llm.wrappers.base import CALL, Flow, Request, Wrapper


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


class CachedModel(Wrapper):
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
        """Close the cache's database connection."""
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

    def flow(self, request: Request[T]) -> Flow:
        """The cached answer for (model, messages, schema, seed, temperature), or a call whose answer is stored."""
        key = cache_key(self.model, request.messages, request.schema, request.seed, request.temperature)
        hit = self._hit(key, request.schema)
        if hit is not None:
            return hit
        generation = yield CALL
        self._store(key, request.schema, generation)
        return generation
