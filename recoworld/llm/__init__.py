"""The LLM layer: one LanguageModel interface, a litellm adapter, wrappers and a test double."""

from recoworld.llm.base import (
    Generation,
    LanguageModel,
    LLMBudgetExceeded,
    LLMConfigError,
    LLMEmptyResponse,
    LLMError,
    LLMMalformedOutput,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
    Message,
    Usage,
    parse_structured,
)
from recoworld.llm.config import LLMConfig, build_language_model
from recoworld.llm.litellm_model import (
    LiteLLMModel,
    map_exception,
    with_schema_instruction,
)
from recoworld.llm.scripted import ScriptedModel
from recoworld.llm.wrappers import (
    FAULT_KINDS,
    BudgetedModel,
    CachedModel,
    FaultInjectingModel,
    MeteredModel,
    RetryingModel,
    cache_key,
    generate_many,
)

__all__ = [
    "FAULT_KINDS",
    "BudgetedModel",
    "CachedModel",
    "FaultInjectingModel",
    "Generation",
    "LLMBudgetExceeded",
    "LLMConfig",
    "LLMConfigError",
    "LLMEmptyResponse",
    "LLMError",
    "LLMMalformedOutput",
    "LLMRateLimited",
    "LLMServerError",
    "LLMTimeout",
    "LanguageModel",
    "LiteLLMModel",
    "Message",
    "MeteredModel",
    "RetryingModel",
    "ScriptedModel",
    "Usage",
    "build_language_model",
    "cache_key",
    "generate_many",
    "map_exception",
    "parse_structured",
    "with_schema_instruction",
]
