"""LLMConfig and the one place where the wrapper stack is composed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LanguageModel
from recoworld.llm.litellm_model import LiteLLMModel
from recoworld.llm.wrappers import (
    BudgetedModel,
    CachedModel,
    MeteredModel,
    RetryingModel,
)


class LLMConfig(BaseModel):
    """Which model to call and the limits around it. API keys are never part of the config."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "openai/gpt-4o-mini",
        min_length=1,
        description="litellm model string: openai/gpt-4o-mini, ollama/qwen2.5, hosted_vllm/...",
    )
    api_base: str | None = Field(None, description="Endpoint URL for local or proxied servers.")
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key "
        "(default: the provider's usual variable, e.g. OPENAI_API_KEY).",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Default sampling temperature.")
    max_tokens: int | None = Field(None, ge=1, description="Completion token cap per call.")
    timeout: float = Field(30.0, gt=0.0, description="Seconds before one request times out.")
    max_retries: int = Field(3, ge=0, description="Retries of transient errors per call.")
    max_calls: int | None = Field(None, ge=0, description="Model calls allowed (cache hits free).")
    max_usd: float | None = Field(None, ge=0.0, description="Spend after which calls stop.")
    cache_path: str | None = Field(None, description="SQLite answer cache for replay; off if None.")
    max_in_flight: int = Field(16, ge=1, description="Concurrent requests in batched generation.")
    seed: int = Field(0, description="Seed of the retry-jitter generator.")


def build_language_model(cfg: LLMConfig, inner: LanguageModel | None = None) -> MeteredModel:
    """Metered(Budgeted(Cached(Retrying(inner or LiteLLMModel)))).

    The cache sits outside the retries so a hit costs nothing, the budget outside the cache
    so hits never count against it, and the meter outermost. Without ``cache_path`` the
    cache layer is left out. Nothing is called here.
    """
    model: LanguageModel = inner or LiteLLMModel(
        cfg.model,
        api_base=cfg.api_base,
        timeout=cfg.timeout,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        api_key_env=cfg.api_key_env,
    )
    model = RetryingModel(model, max_retries=cfg.max_retries, seed=cfg.seed)
    if cfg.cache_path is not None:
        model = CachedModel(model, cfg.cache_path)
    model = BudgetedModel(model, max_calls=cfg.max_calls, max_usd=cfg.max_usd)
    return MeteredModel(model)
