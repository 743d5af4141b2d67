"""generate_many: a batch of requests with bounded concurrency (asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from recoworld.llm.base import Generation, LanguageModel, LLMError, Message, T


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
