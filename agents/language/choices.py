"""The policy as the model's probabilities over a finite set of replies, scored with a shared prefix.

A reply is a :class:`~recoworld.agents.language.plan.Plan`, written field by field. For each field the
prompt (and the fields already chosen) run through the model once; every allowed answer (its tokens and
the token that ends it, so that ``art`` and ``arts`` stay apart) is then scored on a copy of that cached
prefix in one batch. The field's distribution is the softmax of the answers' summed log-probabilities:
sampling from it never yields an invalid reply, and its log-probabilities are exact.

A reply's token ids (:meth:`ChoicePolicy.completion`) are the pieces of the plan text, each tokenised on
its own, with a mask that is 1 on the tokens the model chose and 0 on the forced ones (``; less:``), in
the form TRL's GRPO takes from a rollout function (``completion_ids``, ``env_mask``).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from recoworld.agents.language.plan import FIELDS, PROMPT_HEAD, SEPARATOR, Plan, choices


@dataclass
class Decision:
    """A sampled (or greedy) plan with its exact log-probability and each field's distribution."""

    plan: Plan
    logprob: float
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    token_logps: list[float] = field(default_factory=list)  # per completion token (0 on the forced ones)


class ChoicePolicy:
    """Plans from a causal LM (``model``, ``tokenizer``) over ``topics``; CPU or GPU, whatever the model is on."""

    def __init__(self, model, tokenizer, temperature: float = 1.0) -> None:
        self.model, self.tok, self.temperature = model, tokenizer, temperature
        self._pieces: dict[str, list[int]] = {}
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # transformers renames past_key_values to cache (5.x deprecates the old name)
        self._cache_arg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    # ------------------------------------------------------------------ tokens
    def piece(self, text: str) -> list[int]:
        """The token ids of ``text`` without special tokens (cached)."""
        if text not in self._pieces:
            self._pieces[text] = self.tok.encode(text, add_special_tokens=False)
        return self._pieces[text]

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat prompt with the generation prompt and the reply's fixed head (``more:``)."""
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tok.encode(text, add_special_tokens=False) + self.piece(PROMPT_HEAD)

    def _end(self, name: str) -> int:
        """The token that ends an answer of field ``name``: the separator's first, or end of sequence."""
        return self.piece(SEPARATOR)[0] if name == "more" else self.tok.eos_token_id

    def completion(self, plan: Plan) -> tuple[list[int], list[int]]:
        """The reply's token ids after the prompt, and the mask of the tokens the model chose (1) or was given (0)."""
        more, sep, less = self.piece(f" {plan.more}"), self.piece(SEPARATOR), self.piece(f" {plan.less}")
        ids = more + sep + less + [self.tok.eos_token_id]
        mask = [1] * (len(more) + 1) + [0] * (len(sep) - 1) + [1] * (len(less) + 1)
        return ids, mask

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def field_logps(self, prefix: list[int], name: str, answers: list[str]) -> tuple[torch.Tensor, list[list[float]]]:
        """Each answer's summed log-probability (with its end token) after ``prefix``, and its per-token ones."""
        device = self.model.device
        out = self.model(input_ids=torch.tensor([prefix], device=device), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)
        seqs = [self.piece(f" {a}") + [self._end(name)] for a in answers]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [s[-1]] * (width - len(s)) for s in seqs], device=device)
        tokens = first[ids[:, 0]][:, None]
        if width > 1:
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(seqs))
            rest = self.model(input_ids=ids[:, :-1], use_cache=True, **{self._cache_arg: cache}).logits.float()
            tokens = torch.cat([tokens, torch.log_softmax(rest, -1).gather(-1, ids[:, 1:, None])[..., 0]], 1)
        lengths = [len(s) for s in seqs]
        keep = torch.arange(width, device=device)[None] < torch.tensor(lengths, device=device)[:, None]
        per_token = [tokens[k, :n].tolist() for k, n in enumerate(lengths)]
        return (tokens * keep).sum(-1), per_token

    def decide(self, messages: list[dict[str, str]], topics: list[str], rng: np.random.Generator | None = None) -> Decision:
        """A plan: sampled field by field with ``rng``, or the most probable answer of each field without one."""
        return self.decide_many(messages, topics, 1, rng)[0]

    def decide_many(self, messages: list[dict[str, str]], topics: list[str], n: int,
                    rng: np.random.Generator | None = None) -> list[Decision]:
        """``n`` plans for one prompt (a GRPO group): each field's distribution is computed once per distinct prefix."""
        allowed = choices(topics)
        head = self.prompt_ids(messages)
        memo: dict[str, tuple[np.ndarray, list[list[float]]]] = {}

        def dist(prefix: list[int], name: str, key: str):
            if key not in memo:
                logps, per_token = self.field_logps(prefix, name, allowed[name])
                p = torch.softmax(logps / self.temperature, -1).cpu().double().numpy()
                memo[key] = (p / p.sum(), per_token)
            return memo[key]

        out = []
        for _ in range(n):
            prefix, chosen, logprob, probs, tokens = head, {}, 0.0, {}, []
            for name in FIELDS:
                if name == "less":
                    prefix = head + self.piece(f" {chosen['more']}") + self.piece(SEPARATOR)
                p, per_token = dist(prefix, name, name if name == "more" else chosen["more"])
                k = int(rng.choice(len(p), p=p)) if rng is not None else int(np.argmax(p))
                chosen[name], probs[name] = allowed[name][k], p
                logprob += math.log(max(p[k], 1e-300))
                tokens.append(per_token[k])
            more, less = tokens
            forced = [0.0] * (len(self.piece(SEPARATOR)) - 1)
            out.append(Decision(Plan(**chosen), logprob, probs, token_logps=more + forced + less))
        return out
