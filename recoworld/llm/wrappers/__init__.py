"""Wrappers around a LanguageModel; each implements the same interface around ``inner``.

Compose them outside-in as Metered(Budgeted(Cached(Retrying(model)))) (see config.py):
the cache sits outside the retries so a hit costs nothing, the budget outside the cache so
hits never count against it, and the meter outermost so it sees everything. One wrapper per
module; each writes its logic once as a flow that ``base.Wrapper`` drives sync and async.
"""

from recoworld.llm.wrappers.base import Request, Sleep, Wrapper
from recoworld.llm.wrappers.batch import generate_many
from recoworld.llm.wrappers.budget import BudgetedModel
from recoworld.llm.wrappers.cache import CachedModel, cache_key
from recoworld.llm.wrappers.faults import FAULT_KINDS, FaultInjectingModel
from recoworld.llm.wrappers.meter import MeteredModel
from recoworld.llm.wrappers.retry import RetryingModel

__all__ = [
    "FAULT_KINDS",
    "BudgetedModel",
    "CachedModel",
    "FaultInjectingModel",
    "MeteredModel",
    "Request",
    "RetryingModel",
    "Sleep",
    "Wrapper",
    "cache_key",
    "generate_many",
]
