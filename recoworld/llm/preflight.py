"""Before an LLM is used: the model string, the provider's key and the endpoint, checked in one line each,
so a run or an env with an LLM that cannot answer fails at once instead of falling back on every step."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from recoworld.llm.config import LLMConfig
from recoworld.llm.local_server import is_local

_DEFAULT_BASES = {"ollama": "http://127.0.0.1:11434", "ollama_chat": "http://127.0.0.1:11434"}


def check_llm_config(cfg: LLMConfig, timeout: float = 3.0) -> None:
    """Raise a one-line ``ValueError`` naming the setting when the model string is not litellm's, the
    provider's API key is not in the environment, or the endpoint does not accept connections."""
    if is_local(cfg.model):
        return  # this machine's own llama.cpp server, started on the first call
    from recoworld.llm.litellm_model import _load_litellm

    litellm = _load_litellm()
    try:
        provider = litellm.get_llm_provider(cfg.model, api_base=cfg.api_base)[1]
    except Exception:  # litellm raises its BadRequestError for an unknown provider
        raise ValueError(f"llm.model: '{cfg.model}' is not a litellm model string (provider/model, e.g. "
                         "openai/gpt-4o-mini, ollama/qwen2.5, or local/smollm2-135m for the packaged model)") from None
    if cfg.api_key_env is not None:
        if not os.environ.get(cfg.api_key_env):
            raise ValueError(f"llm.api_key_env: the environment variable {cfg.api_key_env} is not set (model {cfg.model})")
    else:
        missing = [k for k in litellm.validate_environment(cfg.model).get("missing_keys", [])
                   if k.endswith(("_KEY", "_TOKEN"))]
        if missing:
            hint = " (a local OpenAI-compatible server accepts any value)" if cfg.api_base else ""
            raise ValueError(f"llm.model: {cfg.model} needs {missing[0]} in the environment{hint}; "
                             "set it, or use llm.model=local/smollm2-135m (no key)")
    base = cfg.api_base or _DEFAULT_BASES.get(provider)
    if base:
        _check_reachable(base, "llm.api_base" if cfg.api_base else f"llm.model ({provider} server)", timeout)


def _check_reachable(url: str, setting: str, timeout: float) -> None:
    parsed = urlparse(url)
    if not parsed.hostname:
        raise ValueError(f"{setting}: '{url}' is not a URL (e.g. http://127.0.0.1:8000/v1)")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(f"{setting}: nothing answers at {url} ({exc.strerror or exc}); start the server first") from None
