"""ToolRec's controllers: a scripted policy and an LLM with one structured call per step."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.protocol import UserView
from recoworld.agents.toolrec.actions import TOP_UP, ToolAction, ToolCall
from recoworld.agents.toolrec.tools import ToolBox
from recoworld.llm.base import LanguageModel, Message
from recoworld.llm.text import DATA_RULE, TOPIC_CHARS, quote, quote_all
from recoworld.users.instructions import NO_TOPIC


# ------------------------------------------------------------------------------- controllers
@dataclass
class ToolContext:
    """What a controller sees at one step, for one user."""

    view: UserView  # one user
    tools: ToolBox
    slate_size: int
    step: int
    max_steps: int
    pool: list[int] = field(default_factory=list)
    trajectory: list[ToolCall] = field(default_factory=list)


class ToolController(Protocol):
    name: str

    def next_action(self, ctx: ToolContext) -> ToolAction | dict:
        """The controller's next step (a ToolAction, or a dict to validate as one) given the trajectory so far."""


class ScriptedToolController:
    """The embedded default (no LLM): the instructed topic, the user's top clicked topic (the most
    popular items before any click), some recent items, a diversity re-rank, finish. When the pool
    is still smaller than K before the re-rank, one extra step tops it up with popular items."""

    name = "scripted"

    def plan(self, view: UserView, k: int) -> list[ToolAction]:
        """The fixed tool plan for the user: retrieve the topic asked for, the most clicked other topic (popular items
        when nothing was clicked) and something fresh, rerank for diversity, finish."""
        names = view.catalog.topic_names
        steps: list[ToolAction] = []
        more = int(view.instr_more[0])
        if more != NO_TOPIC:
            steps.append(ToolAction(kind="retrieve", attribute="topic", value=names[more], k=k, reason="the user asked for it"))
        clicks = np.asarray(view.click_topics[0], dtype=np.float64).copy()
        if more != NO_TOPIC:
            clicks[more] = 0.0
        if clicks.max(initial=0.0) > 0:
            top = int(clicks.argmax())
            steps.append(ToolAction(kind="retrieve", attribute="topic", value=names[top], k=k, reason="most clicked topic"))
        else:
            steps.append(ToolAction(kind="retrieve", attribute="popularity", k=k, reason="nothing clicked yet"))
        steps.append(ToolAction(kind="retrieve", attribute="recency", k=max(1, k // 2), reason="something fresh"))
        steps.append(ToolAction(kind="rerank", attribute="diversity", k=2 * k, reason="mix the pool"))
        steps.append(ToolAction(kind="finish", reason="done"))
        return steps

    def next_action(self, ctx: ToolContext) -> ToolAction:
        """The plan's next step; once, when the pool is smaller than the slate before ranking, a top-up retrieval
        first."""
        k = ctx.slate_size
        plan = self.plan(ctx.view, k)
        topped = any(c.action is not None and c.action.reason == TOP_UP for c in ctx.trajectory)
        i = ctx.step - topped
        action = plan[i] if i < len(plan) else ToolAction(kind="finish", reason="plan done")
        if action.kind != "retrieve" and not topped and len(ctx.pool) < k:
            # few candidates of the wanted topics: top the pool up once before ranking it
            return ToolAction(kind="retrieve", attribute="popularity", k=k - len(ctx.pool), reason=TOP_UP)
        return action


class PoolRanking(BaseModel):
    """An LLM re-rank of the pool."""

    model_config = ConfigDict(extra="ignore")

    order: list[int] = Field(description="Pool item numbers, best first.")


_SYSTEM = """You control the tools of a recommender that builds a slate of {k} items for one user of a \
short-video platform. Each turn you choose exactly ONE action; after at most {max_steps} actions the pool is \
served: in the order of your last rerank, else ranked by the base ranker, filled up if it has fewer than {k} items.

Tools:
- retrieve[attribute, value, k]: add up to k of the user's candidates that match, best first by the base ranker.
  attribute = topic (value = one of the listed topics) | recency (newest first) | duration (value = short | long) \
| popularity (most popular first) | semantic_id (value = a code prefix such as "12" or "12-5") \
| text (value = a free-text query; most similar first).
- rerank[attribute, k]: re-order the pool by relevance | popularity | recency | quality | diversity | llm \
(you order it) and keep the top k.
- finish: stop.

{data_rule}"""


class LLMToolController:
    """One structured call (schema :class:`ToolAction`) per step, with the user's context and the
    trajectory so far; ``rerank[llm]`` is one more structured call (schema :class:`PoolRanking`)."""

    name = "llm"

    def __init__(self, model: LanguageModel, seed: int = 0, temperature: float | None = None, history: int = 10) -> None:
        self.model = model
        self.seed = seed
        self.temperature = temperature
        self.history = history

    # -- prompts -------------------------------------------------------------------------------
    def describe_user(self, ctx: ToolContext) -> list[str]:
        """Prompt lines about the user: what they said, what they reviewed lately, their most clicked topics, and the
        candidates' topics and semantic-ID prefixes."""
        view, cat = ctx.view, ctx.view.catalog
        lines: list[str] = []
        instr = view.instructions[0] if view.instructions else None
        if instr is not None:
            lines.append(f"The user just said: {quote(instr.text)}")
        else:
            lines.append("The user has not said anything.")
        items, engagement = view.history_items[0], view.history_engagement[0]
        recent = [(int(i), float(e)) for i, e in zip(items, engagement) if i >= 0][-self.history :]
        if recent:
            lines.append("Recently reviewed (oldest first):")
            for i, e in recent:
                how = "skipped" if e <= 0 else f"watched {min(e, 1.0):.0%}" + (", liked" if e > 1 else "")
                lines.append(f"- {quote(cat.title[i], 80)} ({quote(cat.topic_names[cat.topic[i]], TOPIC_CHARS)}; {how})")
        else:
            lines.append("No viewing history yet.")
        clicks = view.click_topics[0]
        liked = [cat.topic_names[t] for t in np.argsort(-clicks, kind="stable")[:3] if clicks[t] > 0]
        if liked:
            lines.append("Most clicked topics: " + quote_all(liked) + ".")
        counts = Counter(cat.topic_names[t] for t in cat.topic[view.candidates[0]])
        lines.append(
            f"Topics among the {len(view.candidates[0])} candidates: "
            + ", ".join(f"{quote(name, TOPIC_CHARS)} ({n})" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            + "."
        )
        sids = Counter(cat.semantic_ids()[view.candidates[0], 0].tolist())
        lines.append(
            "Most common semantic-ID prefixes among the candidates: "
            + ", ".join(f"{code} ({n})" for code, n in sids.most_common(8))
            + "."
        )
        return lines

    def describe_trajectory(self, ctx: ToolContext) -> list[str]:
        """Prompt lines about the tool calls so far, their errors and the pool they left."""
        if not ctx.trajectory:
            return ["No actions yet; the pool is empty."]
        cat, cands = ctx.view.catalog, ctx.view.candidates[0]
        lines = ["Actions so far:"]
        for call in ctx.trajectory:
            what = call.action.brief(quoted=True) if call.action is not None else "(no valid action)"
            if call.error:
                lines.append(f"{call.step + 1}. {what} -> ERROR: {quote(call.error, 300)}")
                continue
            topics = Counter(cat.topic_names[cat.topic[cands[p]]] for p in call.returned)
            summary = ", ".join(f"{quote(t, TOPIC_CHARS)} {n}" for t, n in topics.most_common(5))
            lines.append(f"{call.step + 1}. {what} -> {len(call.returned)} items ({summary or 'none'})")
        lines.append(f"The pool now holds {len(ctx.pool)} items.")
        return lines

    def messages(self, ctx: ToolContext) -> list[Message]:
        """The system and user messages for the next tool call."""
        system = _SYSTEM.format(k=ctx.slate_size, max_steps=ctx.max_steps, data_rule=DATA_RULE)
        user = "\n".join(
            [
                *self.describe_user(ctx),
                "",
                *self.describe_trajectory(ctx),
                "",
                f"This is step {ctx.step + 1} of at most {ctx.max_steps}. Choose the next action.",
            ]
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    # -- decisions -----------------------------------------------------------------------------
    def next_action(self, ctx: ToolContext) -> ToolAction:
        """The language model's next tool call, as a validated :class:`ToolAction`."""
        answer = self.model.generate(self.messages(ctx), ToolAction, seed=self.seed, temperature=self.temperature)
        return answer.value

    def llm_rerank(self, ctx: ToolContext, pool: list[int], k: int) -> list[int]:
        """The pool in the order the model gives (numbers it leaves out keep their order, after)."""
        cat, cands = ctx.view.catalog, ctx.view.candidates[0]
        lines = [*self.describe_user(ctx), "", f"Order these {len(pool)} pool items for this user, best first:"]
        for n, p in enumerate(pool):
            row = cands[p]
            lines.append(f"[{n}] {quote(cat.title[row], 80)} ({quote(cat.topic_names[cat.topic[row]], TOPIC_CHARS)})")
        messages = [
            {
                "role": "system",
                "content": f"You rank videos for one user. {DATA_RULE}",
            },
            {"role": "user", "content": "\n".join(lines)},
        ]
        answer = self.model.generate(messages, PoolRanking, seed=self.seed, temperature=self.temperature).value
        seen: set[int] = set()
        order = []
        for n in answer.order:
            if 0 <= n < len(pool) and n not in seen:
                seen.add(n)
                order.append(pool[n])
        order += [p for n, p in enumerate(pool) if n not in seen]
        return order[:k]
