"""A :class:`~recoworld.agents.protocol.UserView` as language: the :class:`AgentObservation` a language agent reads.

One rendering for every language agent and for ``recoworld serve``: item text quoted as data (the
project's one quoting rule, :mod:`recoworld.llm.text`), the user's words quoted, the history's last
``history`` items with their feedback, and the chat messages built from those same fields.
"""

from __future__ import annotations

from recoworld.agents.language.protocol import AgentObservation, Candidate, Seen
from recoworld.agents.protocol import UserView
from recoworld.llm.text import DATA_RULE, quote

HISTORY = 5  # reviewed items shown to the agent (the latest)
ITEM_CHARS = 80  # an item's text in an observation
WORDS_CHARS = 200  # the user's words in an observation

SYSTEM = (
    "You are a recommender on a video platform. Pick the candidates this user will enjoy and, above all, do what "
    f"the user asks. Reply with the ids of your slate. {DATA_RULE}"
)


def feedback(engagement: float) -> str:
    """The platform's view of one reviewed item (watch fraction, +1 if liked; 0 means skipped)."""
    if engagement <= 0:
        return "skipped"
    liked = engagement > 1
    share = round(100 * min(engagement - 1 if liked else engagement, 1.0))
    return f"watched {share}%" + (" and liked" if liked else "")


def observe_view(view: UserView, row: int = 0, history: int = HISTORY) -> AgentObservation:
    """User ``row`` of ``view`` as an :class:`AgentObservation` (the view must carry the words: ``with_text=True``)."""
    cat = view.catalog
    names = cat.topic_names
    seen = [
        Seen(item_id=str(cat.item_id[i]), topic=names[int(cat.topic[i])], text=quote(cat.texts[i], ITEM_CHARS),
             feedback=feedback(float(e)))
        for i, e in zip(view.history_items[row], view.history_engagement[row])
        if i >= 0
    ][-history:] if history > 0 else []
    candidates = [
        Candidate(id=k, item_id=str(cat.item_id[i]), topic=names[int(cat.topic[i])], text=quote(cat.texts[i], ITEM_CHARS))
        for k, i in enumerate(view.candidates[row].tolist())
    ]
    spoken = view.instructions[row] if row < len(view.instructions) else None
    obs = AgentObservation(
        user_id=view.user_ids[row], day=int(view.day[row]), session_step=int(view.session_step[row]), history=seen,
        instruction=quote(spoken.text, WORDS_CHARS) if spoken is not None else None, candidates=candidates,
        slate_size=view.slate_size, topics=list(names),
    )
    obs.messages = chat_messages(obs)
    return obs


def chat_messages(obs: AgentObservation) -> list[dict[str, str]]:
    """The observation's fields as a system and a user message."""
    lines = [f"Day {obs.day}, slate {obs.session_step + 1} of this session."]
    if obs.history:
        lines.append("Recently seen:")
        lines += [f"- [{s.topic}] {s.text}: {s.feedback}" for s in obs.history]
    lines.append(f"The user said: {obs.instruction}" if obs.instruction else "The user said nothing.")
    lines.append("Candidates:")
    lines += [f"{c.id}. [{c.topic}] {c.text}" for c in obs.candidates]
    lines.append(f"Reply with {obs.slate_size} candidate ids.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]
