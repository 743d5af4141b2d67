"""Several structured requests to one language model: each answer (or the LLMError it ended in), in
order, concurrent when there are several (:func:`run_requests`; LLM users and creators use it)."""

from __future__ import annotations

import asyncio
from typing import Sequence

from pydantic import BaseModel

from recoworld.llm.base import LanguageModel, LLMError, Message


def run_requests(model: LanguageModel, requests: Sequence[tuple[list[Message], type[BaseModel]]], max_in_flight: int) -> list:
    """Answers (or the LLMError each request ended in), in order; concurrent when there are several."""
    def one(messages: list[Message], schema: type[BaseModel]):
        try:
            return model.generate(messages, schema)
        except LLMError as err:
            return err

    try:
        asyncio.get_running_loop()
        running = True  # called from inside an event loop (e.g. a notebook): stay sequential
    except RuntimeError:
        running = False
    if len(requests) == 1 or running:
        return [one(m, s) for m, s in requests]
    from recoworld.llm.wrappers import generate_many

    return asyncio.run(generate_many(model, [(m, s, None) for m, s in requests], max_in_flight=max_in_flight))
