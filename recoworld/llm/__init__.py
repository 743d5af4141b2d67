"""The LLM layer (import: ``recoworld.llm``).

What lives here: one ``LanguageModel`` interface and its errors (``base``), the litellm adapter
(``litellm_model``), the scripted test double (``scripted``), the config that builds a wrapped
model (``config``) and the wrappers around any model (``wrappers``: cache, retry, budget, metering,
fault injection, bounded concurrency).

May import: pydantic, the standard library, litellm (lazily, inside the adapter); nothing else
from ``recoworld``. Names below are re-exported lazily: importing this package loads no submodule.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    "Generation": "base",
    "LanguageModel": "base",
    "LLMBudgetExceeded": "base",
    "LLMConfigError": "base",
    "LLMEmptyResponse": "base",
    "LLMError": "base",
    "LLMMalformedOutput": "base",
    "LLMRateLimited": "base",
    "LLMServerError": "base",
    "LLMTimeout": "base",
    "Message": "base",
    "Usage": "base",
    "parse_structured": "base",
    "LLMConfig": "config",
    "build_language_model": "config",
    "LiteLLMModel": "litellm_model",
    "map_exception": "litellm_model",
    "with_schema_instruction": "litellm_model",
    "ScriptedModel": "scripted",
    "FAULT_KINDS": "wrappers",
    "BudgetedModel": "wrappers",
    "CachedModel": "wrappers",
    "FaultInjectingModel": "wrappers",
    "MeteredModel": "wrappers",
    "RetryingModel": "wrappers",
    "cache_key": "wrappers",
    "generate_many": "wrappers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
