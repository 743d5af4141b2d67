"""SFT and preference JSONL in the conversational format Hugging Face TRL trains on.

* SFT: ``{"messages": [system, user, assistant]}`` — the assistant answers with the real choice
  and the teacher's decision trace (``SFTTrainer``'s conversational language-modelling format);
* preference: ``{"prompt": [system, user], "chosen": [assistant], "rejected": [assistant]}`` — the
  real choice with its trace against the student's most probable wrong pick with a trace written
  for it (``DPOTrainer``'s conversational preference format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recoworld.users.align.prompts import answer_text, decision_messages
from recoworld.users.align.samples import ChoiceSample, ItemTable
from recoworld.users.align.traces import ChoiceWeights, DecisionTrace, parametric_trace


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class SFTRecord(BaseModel):
    """TRL conversational language-modelling example."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=2)

    @model_validator(mode="after")
    def _ends_with_answer(self) -> "SFTRecord":
        if self.messages[-1].role != "assistant":
            raise ValueError("messages: the last message must be the assistant's answer")
        return self


class PreferenceRecord(BaseModel):
    """TRL conversational preference example (explicit prompt)."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[ChatMessage] = Field(min_length=1)
    chosen: list[ChatMessage] = Field(min_length=1, max_length=1)
    rejected: list[ChatMessage] = Field(min_length=1, max_length=1)

    @model_validator(mode="after")
    def _answers(self) -> "PreferenceRecord":
        if self.prompt[-1].role != "user":
            raise ValueError("prompt: the last message must be the user's")
        if self.chosen[0].role != "assistant" or self.rejected[0].role != "assistant":
            raise ValueError("chosen/rejected: must be one assistant message each")
        if self.chosen[0].content == self.rejected[0].content:
            raise ValueError("chosen/rejected: identical answers")
        return self


def sft_records(samples: list[ChoiceSample], traces: list[DecisionTrace], items: ItemTable, history: int = 10) -> list[dict]:
    """One conversational SFT example per sample: the prompt and the real choice with its trace."""
    out = []
    for s, t in zip(samples, traces, strict=True):
        answer = {"role": "assistant", "content": answer_text(s.chosen, t.text)}
        out.append({"messages": decision_messages(s, items, history) + [answer]})
    return out


def choice_examples(samples: list[ChoiceSample], items: ItemTable, history: int = 10, copies: int = 1,
                    seed: int = 0) -> list[tuple[list[dict], int, int]]:
    """``(prompt messages, n candidates, chosen index)`` per sample for the choice objective; copies after the
    first show the candidates in a fresh seeded order, so that a fine-tune cannot learn a letter prior."""
    rng = np.random.default_rng(seed)
    out = []
    for copy in range(copies):
        for s in samples:
            shown = s if copy == 0 else s.reordered(rng.permutation(len(s.candidates)))
            out.append((decision_messages(shown, items, history), len(shown.candidates), shown.chosen))
    return out


def preference_records(samples: list[ChoiceSample], traces: list[DecisionTrace], rejected: list[int], items: ItemTable,
                       terms: list[np.ndarray], weights: ChoiceWeights, history: int = 10) -> list[dict]:
    """Chosen = the real choice and its trace; rejected = the ``rejected`` candidate with a trace for it."""
    out = []
    for s, t, r, x in zip(samples, traces, rejected, terms, strict=True):
        if r == s.chosen:
            raise ValueError(f"{s.sample_id}: the rejected answer is the real choice")
        wrong = parametric_trace(s.model_copy(update={"chosen": r}), items, x, weights)
        out.append({"prompt": decision_messages(s, items, history),
                    "chosen": [{"role": "assistant", "content": answer_text(s.chosen, t.text)}],
                    "rejected": [{"role": "assistant", "content": answer_text(r, wrong.text)}]})
    return out


def validate_records(records: list[dict], kind: Literal["sft", "preference"]) -> None:
    """Raise ValueError naming the first record that does not fit TRL's conversational format."""
    model = SFTRecord if kind == "sft" else PreferenceRecord
    for k, rec in enumerate(records):
        try:
            model.model_validate(rec)
        except ValueError as exc:
            first = str(exc).splitlines()
            raise ValueError(f"{kind} record {k}: {' '.join(first[1:3]).strip() or first[0]}") from None


def write_jsonl(path: str | Path, records: list[dict], kind: Literal["sft", "preference"]) -> Path:
    """Validate and write one JSON object per line."""
    validate_records(records, kind)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
