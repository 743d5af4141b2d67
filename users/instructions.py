"""Reflective instructions: what a disengaging user tells the recommender (intent and words).

Compliance with an instruction is scored in ``recoworld.users.compliance``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NO_TOPIC = -1

_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "casual": {
        "both": ["ugh, way too much {less} lately. got any {more}?", "ok I'm kinda done with {less}... more {more} pls"],
        "more": ["could use some {more} right now tbh", "where's all the {more} stuff?"],
        "less": ["enough {less} for today lol", "can we skip the {less} for a bit"],
        "surprise": ["show me something totally different", "surprise me, I'm bored"],
    },
    "polite": {
        "both": ["Could you show me fewer {less} videos and more {more}, please?", "I'd appreciate a break from {less}; some {more} would be lovely."],
        "more": ["Could you show me some {more}, please?", "I would enjoy more {more} content, if possible."],
        "less": ["Could you show me less {less}, please?", "I'd prefer fewer {less} videos for now, thank you."],
        "surprise": ["Could you show me something new, please?", "I'd love to discover something different, if you can."],
    },
    "blunt": {
        "both": ["Stop with the {less}. More {more}.", "No more {less}. Give me {more}."],
        "more": ["More {more}.", "I want {more}."],
        "less": ["Stop showing me {less}.", "No more {less}."],
        "surprise": ["This is boring. Something else.", "Show me something new."],
    },
    "enthusiastic": {
        "both": ["I'd love more {more}! Maybe a little break from {less}?", "More {more} please!! I've had my fill of {less}."],
        "more": ["Ooh, I'd love some {more} videos!", "Give me all the {more}!"],
        "less": ["Loved it, but I need a break from {less}!", "Maybe fewer {less} videos for a while?"],
        "surprise": ["Surprise me with something fun and new!", "Show me something I've never seen!"],
    },
}


class InstructionIntent(BaseModel):
    """The structured part of a reflective instruction."""

    model_config = ConfigDict(extra="forbid")

    more_topic: str | None = Field(None, description="Topic the user wants more of.")
    less_topic: str | None = Field(None, description="Topic the user wants less of.")
    surprise: bool = Field(False, description="The user asks for something different from what they usually see.")


class Instruction(BaseModel):
    """An instruction as the recommender receives it: structured intent plus the user's words."""

    model_config = ConfigDict(extra="forbid")

    intent: InstructionIntent
    text: str = Field(description="The instruction in the user's tone.")


def instruction_text(intent: InstructionIntent, tone: str, variant: int) -> str:
    """Render ``intent`` in ``tone``; ``variant`` picks among phrasings deterministically."""
    table = _TEMPLATES.get(tone, _TEMPLATES["casual"])
    if intent.surprise and intent.more_topic is None:
        key = "surprise"
    elif intent.more_topic and intent.less_topic:
        key = "both"
    elif intent.more_topic:
        key = "more"
    elif intent.less_topic:
        key = "less"
    else:
        key = "surprise"
    options = table[key]
    return options[variant % len(options)].format(more=intent.more_topic, less=intent.less_topic)
