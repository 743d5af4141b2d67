"""BudgetedModel: call and USD limits, checked before every request that goes out."""

from __future__ import annotations

import threading

from recoworld.llm.base import Generation, LanguageModel, LLMBudgetExceeded, Message, T, Usage
from recoworld.llm.wrappers.base import CALL, Flow, Request, Wrapper


class BudgetedModel(Wrapper):
    """Call and USD limits; raises LLMBudgetExceeded *before* a call that would go past them.

    It sits directly around the client, inside the retries, so every HTTP request is one call:
    ``max_calls`` bounds the requests sent (failed ones count too, requests in flight are
    reserved, so concurrent callers cannot overshoot). ``max_usd`` stops new requests once the
    spent cost has reached it (the request that crosses the line completes; its cost is known
    only afterwards). ``spent`` sums all usage, including that of answers that failed validation.
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
        """Calls counted against the budget: those that answered plus those that failed."""
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
        """Release a reservation: a request that was answered adds its usage (valid or not); one
        that never got an answer counts as a failed call."""
        with self._lock:
            self._in_flight -= 1
            if usage is None or usage.calls == 0:
                self.failed += 1
            if usage is not None:
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

    def flow(self, request: Request[T]) -> Flow:
        """Reserves a call within the budget (or replays a refusal), makes it, and books what it cost."""
        hit = self._reserve_or_replay(request.messages, request.schema, request.seed, request.temperature)
        if hit is not None:
            return hit
        try:
            generation = yield CALL
        except BaseException as exc:
            self._release(getattr(exc, "usage", None))
            raise
        self._release(generation.usage)
        return generation
