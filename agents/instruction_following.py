"""Instruction-following recommender: users' words → constraints → retrieve and re-rank.

A parser turns an instruction into :class:`Constraints` (include / exclude topics, more novelty,
shorter or longer items): ``rules`` (cue words and topic names, no model), ``llm`` (structured
output from a LanguageModel, falling back to the rules), or ``oracle`` (the structured intent the
platform recorded, an upper bound). Constraints are kept for ``hold`` slates after an instruction,
so they keep holding once the user stops repeating them, and are replaced by a newer instruction.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.baselines import BIG, BaseRecommender, WrapsBase, top_k
from recoworld.agents.protocol import SlateChoice, UserView
from recoworld.llm.base import LanguageModel, LLMError
from recoworld.llm.text import DATA_RULE, find_name, name_lookup, quote, quote_all
from recoworld.users.compliance import familiar_topics
from recoworld.users.instructions import Instruction

_NEGATIVE = re.compile(r"\b(less|fewer|no more|stop|enough|too much|break from|skip|tired of|not|avoid|had my fill|done with)\b")
_NOVELTY = re.compile(r"\b(surprise|different|something else|new|never seen|bored|boring|fresh)\b")
_SHORT = re.compile(r"\b(short|shorter|quick|quicker|brief)\b")
_LONG = re.compile(r"\b(long|longer|in-depth|deep dive)\b")
_CLAUSES = re.compile(r"[.!?;,]|\bbut\b|\band\b|\bmaybe\b")


class Constraints(BaseModel):
    """What an instruction asks of the next slates."""

    model_config = ConfigDict(extra="forbid")

    include_topics: list[str] = Field(default_factory=list, description="Topics to show more of.")
    exclude_topics: list[str] = Field(default_factory=list, description="Topics not to show.")
    more_novelty: bool = Field(False, description="Show topics the user has not seen much lately.")
    shorter: bool = Field(False, description="Prefer short items.")
    longer: bool = Field(False, description="Prefer long items.")

    @property
    def empty(self) -> bool:
        """No constraint at all: nothing to include, exclude, or shift in novelty or length."""
        return not (self.include_topics or self.exclude_topics or self.more_novelty or self.shorter or self.longer)


@functools.lru_cache(maxsize=64)
def constraints_schema(topics: tuple[str, ...]) -> type[Constraints]:
    """Constraints whose ``decoding_schema`` (used by constrained decoders: local models) allows only ``topics``."""

    def decoding_schema(cls: type[Constraints]) -> dict:
        schema = cls.model_json_schema()
        for name in ("include_topics", "exclude_topics"):
            schema["properties"][name]["items"] = {"enum": list(topics)}
        return schema

    return type("Constraints", (Constraints,), {"__doc__": Constraints.__doc__, "decoding_schema": classmethod(decoding_schema)})


def parse_rules(text: str, topics: list[str]) -> Constraints:
    """Cue words and topic names, clause by clause: a topic in a negative clause is excluded, else included."""
    out = Constraints()
    lowered = text.lower()
    for clause in _CLAUSES.split(lowered):
        named = [t for t in topics if re.search(rf"\b{re.escape(t.lower())}\b", clause)]
        target = out.exclude_topics if _NEGATIVE.search(clause) else out.include_topics
        target.extend(t for t in named if t not in target)
    out.include_topics = [t for t in out.include_topics if t not in out.exclude_topics]
    out.more_novelty = bool(_NOVELTY.search(lowered)) and not out.include_topics
    out.shorter = bool(_SHORT.search(lowered))
    out.longer = bool(_LONG.search(lowered)) and not out.shorter
    return out


def parse_oracle(instruction: Instruction) -> Constraints:
    """The platform's structured intent as constraints."""
    intent = instruction.intent
    return Constraints(
        include_topics=[intent.more_topic] if intent.more_topic else [],
        exclude_topics=[intent.less_topic] if intent.less_topic else [],
        more_novelty=intent.surprise,
    )


@dataclass
class _Held:
    text: str
    constraints: Constraints
    slates_left: int


class InstructionFollowing(WrapsBase):
    """Follows users' instructions on top of any base recommender (its scores and its ranking).

    Included topics fill ``share`` of the slate with the base's best candidates of those topics;
    excluded topics are removed; novelty fills ``share`` with topics outside the user's familiar
    ones; shorter/longer push items by duration. Without constraints it is the base recommender.
    """

    name = "instruction_following"
    needs_text = True

    def __init__(
        self,
        base: BaseRecommender,
        parser: str = "rules",
        share: float = 0.4,
        hold: int = 6,
        language_model: LanguageModel | None = None,
        llm: dict | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if parser not in ("rules", "llm", "oracle"):
            raise ValueError(f"instruction_following.parser: unknown parser '{parser}' (rules, llm or oracle)")
        self.base = base
        self.parser = parser
        self.share = share
        self.hold = hold
        self.name = f"{base.name}+instructions"
        self._model = language_model
        self._llm = llm or {}
        self.held: dict[str, _Held] = {}
        self.parsed = 0  # instructions turned into non-empty constraints
        self.unparsed = 0  # instructions the parser could not read
        self.fallbacks = 0  # LLM parses that fell back to the rules
        self._fell_back = np.zeros(0, dtype=bool)  # per user of the last batch

    # ------------------------------------------------------------- parsing
    def parse(self, instruction: Instruction, topics: list[str]) -> Constraints:
        """The instruction as constraints, by this recommender's parser (rules, an LLM with the rules as fallback, or the oracle)."""
        if self.parser == "oracle":
            return parse_oracle(instruction)
        if self.parser == "llm":
            try:
                return self._parse_llm(instruction.text, topics)
            except LLMError:
                self.fallbacks += 1
        return parse_rules(instruction.text, topics)

    def parse_for(self, user: str, instruction: Instruction, topics: list[str]) -> Constraints:
        """``user``'s new instruction as constraints (a subclass may read it in its own way)."""
        return self.parse(instruction, topics)

    def _parse_llm(self, text: str, topics: list[str]) -> Constraints:
        if self._model is None:
            from recoworld.llm.config import LLMConfig, build_language_model

            self._model = build_language_model(LLMConfig(**self._llm))
        messages = [
            {
                "role": "system",
                "content": "Turn a user's request to a video recommender into constraints. Use only these topics: "
                + quote_all(topics)
                + f". {DATA_RULE}",
            },
            {"role": "user", "content": quote(text, 300)},
        ]
        answer = Constraints(**self._model.generate(messages, constraints_schema(tuple(topics))).value.model_dump())
        known = name_lookup(topics)
        answer.include_topics = [t for t in (find_name(known, a) for a in answer.include_topics) if t is not None]
        answer.exclude_topics = [t for t in (find_name(known, a) for a in answer.exclude_topics) if t is not None]
        return answer

    def constraints_for(self, view: UserView) -> list[Constraints | None]:
        """Each user's constraints for this slate: a new instruction replaces what is held."""
        topics = view.catalog.topic_names
        out: list[Constraints | None] = []
        self._fell_back = np.zeros(len(view), dtype=bool)
        for i, user in enumerate(view.user_ids):
            instruction = view.instructions[i] if i < len(view.instructions) else None
            held = self.held.get(user)
            if instruction is not None and (held is None or held.text != instruction.text):
                before = self.fallbacks
                constraints = self.parse_for(user, instruction, topics)
                self._fell_back[i] = self.fallbacks > before
                if constraints.empty:
                    self.unparsed += 1
                else:
                    self.parsed += 1
                held = self.held[user] = _Held(instruction.text, constraints, self.hold)
            if held is not None and held.slates_left > 0 and not held.constraints.empty:
                held.slates_left -= 1
                out.append(held.constraints)
            else:
                out.append(None)
        return out

    # ------------------------------------------------------------- ranking
    def scores(self, view: UserView) -> np.ndarray:
        """The base's scores moved by each user's pending instruction: a share of the slate for the topics asked for
        (or unfamiliar ones, for novelty), avoided topics sunk, shorter or longer items nudged."""
        scores = self.base.scores(view).astype(np.float64)
        constraints = self.constraints_for(view)
        if not any(constraints):
            return scores
        cat = view.catalog
        topics = view.candidate_topics
        index = {name: t for t, name in enumerate(cat.topic_names)}
        familiar = familiar_topics(view.shown_topics)
        quota = max(1, int(round(self.share * view.slate_size)))
        median = float(np.median(cat.duration))
        for i, c in enumerate(constraints):
            if c is None:
                continue
            wanted = np.isin(topics[i], [index[t] for t in c.include_topics])
            if c.more_novelty:
                wanted |= ~familiar[i, topics[i]]
            if wanted.any():
                best = top_k(np.where(wanted, scores[i], -np.inf)[None, :], min(quota, int(wanted.sum())))[0]
                scores[i, best] += BIG / 10
            scores[i] -= BIG * np.isin(topics[i], [index[t] for t in c.exclude_topics])
            if c.shorter or c.longer:
                short = cat.duration[view.candidates[i]] <= median
                scores[i] += 0.5 * (short if c.shorter else ~short)
        return scores

    def rank(self, view: UserView, scores: np.ndarray) -> SlateChoice:
        """The base's ranking of the adjusted scores, marking the users whose new instruction the LLM could not parse
        (the rules read it instead)."""
        choice = self.base.rank(view, scores)
        if len(self._fell_back) == len(view):
            choice.fallback = self._fell_back  # where the LLM parse of a new instruction fell back to the rules
        return choice

