"""What every wrapper shares: the request, and one flow per wrapper driven both ways.

A wrapper writes its logic once, as a generator ``flow(request)`` that yields ``CALL`` where it
calls the inner model (receiving the Generation, or the exception thrown into it) and ``Sleep(s)``
where it waits. :class:`Wrapper` drives that flow synchronously (``generate``) and under asyncio
(``agenerate``), so the sync and async paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic

from recoworld.llm.base import Generation, LanguageModel, Message, T


@dataclass(frozen=True)
class Request(Generic[T]):
    """One structured-generation request, as passed to ``generate`` / ``agenerate``."""

    messages: list[Message]
    schema: type[T]
    seed: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Sleep:
    """A wait the flow asks for (time.sleep or asyncio.sleep, by how it is driven)."""

    seconds: float


CALL = object()  # the flow asks for one call to the inner model
Flow = Generator[Any, Any, Generation[T]]


def _advance(flow: Flow, value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """(done, step or result) after sending ``value`` into the flow, or throwing ``error`` into it."""
    try:
        return False, (flow.throw(error) if error is not None else flow.send(value))
    except StopIteration as stop:
        return True, stop.value


class Wrapper:
    """Base of the wrappers: ``inner`` is wrapped, ``model`` is its name, ``flow`` is the logic."""

    inner: LanguageModel
    model: str
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    async_sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def flow(self, request: Request[T]) -> Flow:
        """The wrapper's logic for one request (yield CALL to call ``inner``, Sleep to wait)."""
        return (yield CALL)

    def generate(
        self, messages: list[Message], schema: type[T], *, seed: int | None = None, temperature: float | None = None
    ) -> Generation[T]:
        """Drive this wrapper's :meth:`flow` synchronously: call the inner model where it asks, sleep where it waits."""
        flow = self.flow(Request(messages, schema, seed, temperature))
        done, step = _advance(flow, None, None)
        while not done:
            value, error = None, None
            if step is CALL:
                try:
                    value = self.inner.generate(messages, schema, seed=seed, temperature=temperature)
                except BaseException as exc:  # handed to the flow, which decides
                    error = exc
            else:
                self.sleep(step.seconds)
            done, step = _advance(flow, value, error)
        return step

    async def agenerate(
        self, messages: list[Message], schema: type[T], *, seed: int | None = None, temperature: float | None = None
    ) -> Generation[T]:
        """Drive this wrapper's :meth:`flow` under asyncio: await the inner model where it asks, ``asyncio.sleep``
        where it waits."""
        flow = self.flow(Request(messages, schema, seed, temperature))
        done, step = _advance(flow, None, None)
        while not done:
            value, error = None, None
            if step is CALL:
                try:
                    value = await self.inner.agenerate(messages, schema, seed=seed, temperature=temperature)
                except BaseException as exc:
                    error = exc
            else:
                await self.async_sleep(step.seconds)
            done, step = _advance(flow, value, error)
        return step
