"""The plan a language agent writes: ``more: <topic|new|nothing>; less: <topic|nothing>``.

A reply is one choice per field from a finite set (the catalog's topics, ``new`` for something
different, ``nothing``), so every reply the model can produce is a valid action: the plan becomes
:class:`~recoworld.agents.instruction_following.Constraints` and the instruction-following ranker turns
those into a slate of candidate ids. The rule parser's reading of the same words is the demonstration
an SFT warm start learns from (:func:`rules_plan`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from recoworld.agents.instruction_following import Constraints, parse_rules
from recoworld.llm.text import DATA_RULE, quote_all

NEW, NOTHING = "new", "nothing"
FIELDS = ("more", "less")
PROMPT_HEAD = "more:"  # the reply starts here; the model writes what follows
SEPARATOR = "; less:"


class Plan(BaseModel):
    """What the agent will do about the user's words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    more: str = NOTHING
    less: str = NOTHING

    def text(self) -> str:
        """The plan as the model writes it: the prompt's head, then ``more``, the separator and ``less``."""
        return f"{PROMPT_HEAD} {self.more}{SEPARATOR} {self.less}"

    def constraints(self) -> Constraints:
        """The plan as constraints: include ``more`` (a topic; ``new`` asks for novelty instead), exclude ``less``
        unless it is nothing or the same topic."""
        return Constraints(include_topics=[] if self.more in (NEW, NOTHING) else [self.more],
                           exclude_topics=[] if self.less == NOTHING or self.less == self.more else [self.less],
                           more_novelty=self.more == NEW)


def choices(topics: list[str]) -> dict[str, list[str]]:
    """The allowed answers of each field."""
    return {"more": [*topics, NEW, NOTHING], "less": [*topics, NOTHING]}


def rules_plan(words: str, topics: list[str]) -> Plan:
    """The rule parser's reading of ``words`` as a plan (the demonstration for the SFT warm start)."""
    c = parse_rules(words, topics)
    more = c.include_topics[0] if c.include_topics else (NEW if c.more_novelty else NOTHING)
    return Plan(more=more, less=c.exclude_topics[0] if c.exclude_topics else NOTHING)


def plan_messages(words: str, topics: list[str]) -> list[dict[str, str]]:
    """The agent's short prompt: the topics and the user's (quoted) words; the reply continues ``PROMPT_HEAD``."""
    system = ("You are a video recommender. Read what the user said and plan the next videos: which topic to show "
              f"more of ('new' for something different, 'nothing' if they asked for none) and which to show less of. {DATA_RULE}")
    user = (f"Topics: {quote_all(topics)}\nThe user said: {words}\n"
            f"Answer as '{PROMPT_HEAD} <topic|{NEW}|{NOTHING}>{SEPARATOR} <topic|{NOTHING}>'.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
