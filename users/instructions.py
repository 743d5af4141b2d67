"""Reflective instructions: what a disengaging user tells the recommender, and compliance scoring."""

from __future__ import annotations

import numpy as np
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


def familiar_topics(exposure: np.ndarray, top: int = 3) -> np.ndarray:
    """(b, T) bool: each user's ``top`` most-shown topics (what 'something different' is measured against)."""
    top = min(top, exposure.shape[1])
    order = np.argpartition(-exposure, top - 1, axis=1)[:, :top]
    out = np.zeros(exposure.shape, dtype=bool)
    np.put_along_axis(out, order, exposure[np.arange(len(exposure))[:, None], order] > 0, axis=1)
    return out


def compliance(
    slate_topics: np.ndarray,
    more: np.ndarray,
    less: np.ndarray,
    surprise: np.ndarray,
    familiar: np.ndarray,
    more_share: float = 0.3,
) -> np.ndarray:
    """Score in [0, 1] of how well each slate follows its user's instruction.

    ``more``: share of slate items in the wanted topic, full marks at ``more_share``.
    ``less``: full marks with no item of the unwanted topic, falling to 0 at a third of the slate.
    ``surprise``: share of items outside the user's familiar topics, full marks at half the slate.
    The score is the mean of the parts the instruction asks for.
    """
    b, k = slate_topics.shape
    parts = np.zeros((b, 3))
    asked = np.zeros((b, 3), dtype=bool)
    asked[:, 0] = more != NO_TOPIC
    asked[:, 1] = less != NO_TOPIC
    asked[:, 2] = surprise
    parts[:, 0] = np.minimum(1.0, (slate_topics == more[:, None]).mean(1) / more_share)
    parts[:, 1] = np.maximum(0.0, 1.0 - 3.0 * (slate_topics == less[:, None]).mean(1))
    unfamiliar = ~np.take_along_axis(familiar, slate_topics, axis=1)
    parts[:, 2] = np.minimum(1.0, unfamiliar.mean(1) / 0.5)
    n_asked = asked.sum(1)
    return np.where(n_asked > 0, (parts * asked).sum(1) / np.maximum(n_asked, 1), 1.0)
