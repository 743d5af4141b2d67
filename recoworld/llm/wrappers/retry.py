"""RetryingModel: transient errors retried with capped exponential backoff and seeded full jitter."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import numpy as np

from recoworld.llm.base import LanguageModel, LLMError, T, Usage
from recoworld.llm.wrappers.base import CALL, Flow, Request, Sleep, Wrapper


class RetryingModel(Wrapper):
    """Retries transient LLMErrors with capped exponential backoff and full jitter.

    Before retry ``k`` (0-based) it sleeps ``uniform(0, min(max_delay, base_delay * 2**k))``,
    drawn from ``numpy.random.default_rng(seed)``; after a 429 with a Retry-After it waits at least
    that long (capped at ``max_retry_after``). After ``max_retries`` retries the last
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
        max_retry_after: float = 60.0,
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
        self.max_retry_after = float(max_retry_after)
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

    def flow(self, request: Request[T]) -> Flow:
        """Attempts until one answers; the usage of failed attempts (answers that failed validation)
        is added to the result, or to the error that is finally raised."""
        failed = Usage()
        for retry in range(self.max_retries + 1):
            self._count_attempt()
            try:
                generation = yield CALL
            except LLMError as exc:
                failed = failed + (exc.usage or Usage())
                if not exc.transient or retry == self.max_retries:
                    exc.usage = failed if failed != Usage() else exc.usage
                    raise
                asked = getattr(exc, "retry_after", None)
            else:
                if failed == Usage():
                    return generation
                return generation.model_copy(update={"usage": generation.usage + failed})
            delay = self._next_delay(retry)
            yield Sleep(delay if asked is None else max(delay, min(float(asked), self.max_retry_after)))
        raise AssertionError("unreachable")  # pragma: no cover
