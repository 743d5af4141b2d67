"""LLMConfig and the one place where the wrapper stack is composed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recoworld.llm.base import LanguageModel
from recoworld.llm.litellm_model import LiteLLMModel, ResponseFormat
from recoworld.llm.local_server import LocalLLMConfig, is_local
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
        description="litellm model string (openai/gpt-4o-mini, ollama/qwen2.5, hosted_vllm/...), or local/<file.gguf> "
        "or local/smollm2-135m for a GGUF model on this machine's own llama.cpp server (no key).",
    )
    api_base: str | None = Field(None, description="Endpoint URL for local or proxied servers.")
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the API key "
        "(default: the provider's usual variable, e.g. OPENAI_API_KEY).",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Default sampling temperature.")
    max_tokens: int | None = Field(None, ge=1, description="Completion token cap per call.")
    timeout: float | None = Field(
        None, gt=0.0, description="Seconds before one request times out (None: 30, or 600 for a local/ model on CPU)."
    )
    response_format: ResponseFormat | None = Field(
        None,
        description="How the schema is sent: json_object (JSON mode, schema in the prompt), json_schema (structured "
        "outputs: OpenAI, vLLM, Ollama), json_object_schema (llama-cpp-python). None: json_object_schema for local/ "
        "models, json_object otherwise.",
    )
    max_retries: int = Field(3, ge=0, description="Retries of transient errors per call.")
    max_calls: int | None = Field(None, ge=0, description="Model calls allowed (cache hits free).")
    max_usd: float | None = Field(None, ge=0.0, description="Spend after which calls stop.")
    cache_path: str | None = Field(None, min_length=1, description="SQLite answer cache for replay; off if None.")
    max_in_flight: int = Field(16, ge=1, description="Concurrent requests in batched generation.")
    seed: int = Field(0, description="Seed of the retry-jitter generator.")
    max_fallback_share: float | None = Field(
        0.5, ge=0.0, le=1.0, description="A run stops (non-zero exit, resumable) when more than this share of the last "
        "fallback_window LLM user decisions fell back to the parametric model; None: never stop.")
    fallback_window: int = Field(200, ge=1, description="LLM user decisions over which the fallback share is measured.")
    local: LocalLLMConfig = Field(default_factory=LocalLLMConfig, description="Threads and context of a local/ model.")

    @model_validator(mode="after")
    def _local_needs_no_endpoint(self) -> "LLMConfig":
        if is_local(self.model) and (self.api_base or self.api_key_env):
            raise ValueError("llm.api_base / llm.api_key_env: not used with a local/ model (it runs its own server, no key)")
        return self


def make_client(cfg: LLMConfig) -> LanguageModel:
    """The model that makes the requests: a LocalModel for ``local/...``, else the litellm adapter."""
    if is_local(cfg.model):
        from recoworld.llm.local_model import LocalModel

        return LocalModel(cfg.model, cfg.local, timeout=cfg.timeout, temperature=cfg.temperature,
                          max_tokens=cfg.max_tokens, response_format=cfg.response_format or "json_object_schema")
    return LiteLLMModel(
        cfg.model,
        api_base=cfg.api_base,
        timeout=30.0 if cfg.timeout is None else cfg.timeout,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        api_key_env=cfg.api_key_env,
        response_format=cfg.response_format or "json_object",
    )


def wrapper_chain(model: LanguageModel) -> list[LanguageModel]:
    """The model and every model it wraps, outermost first (following ``.inner``)."""
    chain = [model]
    while getattr(chain[-1], "inner", None) is not None and len(chain) < 64:
        chain.append(chain[-1].inner)
    return chain


def close_stack(model: LanguageModel, keep: LanguageModel | None = None) -> None:
    """Close every model of a stack that holds a resource (a local server is given back and stops when no other
    model uses it; an answer cache closes its database), from the outside in, stopping at ``keep`` (a model
    the caller passed in and still owns)."""
    for part in wrapper_chain(model):
        if part is keep:
            return
        close = getattr(part, "close", None)
        if callable(close):
            close()


def build_language_model(cfg: LLMConfig, inner: LanguageModel | None = None) -> MeteredModel:
    """Metered(Cached(Retrying(Budgeted(inner or make_client(cfg))))), built once.

    The budget sits directly around the client, so every HTTP request (each retry included)
    counts against ``max_calls`` and ``max_usd``; the cache outside the retries, so a hit costs
    nothing and never reaches the budget; the meter outermost. Without ``cache_path`` the cache
    layer is left out. An ``inner`` that already is such a stack is returned as it is, so a
    caller that passes a built stack on (the runner to the user backend) never doubles the retries
    (attempts per call stay at most ``max_retries + 1``). Nothing is called here (a local model's
    server starts on its first call).
    """
    if inner is not None and any(isinstance(m, RetryingModel) for m in wrapper_chain(inner)):
        if isinstance(inner, MeteredModel):
            return inner
        raise ValueError("build_language_model: inner already retries; pass the client, or the whole built stack")
    model: LanguageModel = inner or make_client(cfg)
    model = BudgetedModel(model, max_calls=cfg.max_calls, max_usd=cfg.max_usd)
    model = RetryingModel(model, max_retries=cfg.max_retries, seed=cfg.seed)
    if cfg.cache_path is not None:
        model = CachedModel(model, cfg.cache_path)
    return MeteredModel(model)
