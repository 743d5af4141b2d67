"""LLM-backed users on the parametric state machine.

``LLMUserBackend``: one structured call per slate decides every item's action, watch seconds and
a reason, the user's mindset in words, whether they leave, an optional instruction and, at the
end of a session, a summary carried into later prompts. The decisions go through the same
compiled state machine as parametric users (satiation, fatigue, satisfaction, trust, compliance,
return gaps); an LLM failure falls back to the parametric decision for that step, recorded.

``HybridUserBackend``: parametric decisions; the LLM only writes the words of instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel

from recoworld.llm.base import LanguageModel, LLMBudgetExceeded, LLMError, LLMMalformedOutput, Message, Usage
from recoworld.llm.local_model import context_fit
from recoworld.llm.text import CLOSE, DATA_RULE, OPEN, TOPIC_CHARS, echoes, inert, quote
from recoworld.users import layout as UL
from recoworld.world import layout as WL
from recoworld.llm.requests import run_requests
from recoworld.users.llm_answers import ENGAGING, InstructionWords, SlateDecision, slate_schema
from recoworld.users.parametric import ForcedDecisions, ParametricUserBackend
from recoworld.users.protocol import UserBackend

if TYPE_CHECKING:
    from recoworld.scenario import Scenario
    from recoworld.users.world_view import SimulationView, StepOutcomeView

Representation = Literal["text", "semantic_ids", "both"]
@dataclass
class UserMemory:
    """What an LLM user remembers: recent interactions, their last mindset, summaries of past sessions."""

    interactions: list[str] = field(default_factory=list)
    mindset: str = ""
    summaries: list[str] = field(default_factory=list)


@dataclass
class LLMStepRecord:
    """What the LLM layer did for one user in one step (goes to info and logs)."""

    backend: str
    called: bool = False
    fallback: bool = False
    error: str | None = None
    reasons: list[str] = field(default_factory=list)
    mindset: str = ""
    usage: Usage = field(default_factory=Usage)
    echoed_item_text: bool = False  # the answer quotes or follows the text of an item it was shown



def quoted_profile(profile):  # type: ignore[no-untyped-def]
    """The profile as the prompt shows it: topic names (interests, dislikes) and extracted paragraphs quoted."""
    update = {
        "interests": {quote(t, TOPIC_CHARS): w for t, w in profile.interests.items()},
        "dislikes": [quote(t, TOPIC_CHARS) for t in profile.dislikes],
        "goals": [quote(g, 80) for g in profile.goals],
    }
    for name in ("facts_paragraph", "traits_paragraph"):
        if getattr(profile, name):
            update[name] = quote(getattr(profile, name), 1500)
    return profile.model_copy(update=update)


def quoted_mindset(mindset):  # type: ignore[no-untyped-def]
    """The mindset as the prompt shows it: topic names quoted, the instruction's words quoted."""
    return mindset.model_copy(update={
        "satiation": {quote(t, TOPIC_CHARS): v for t, v in mindset.satiation.items()},
        "pending_instruction": None,
    })


def quoted_intent(intent) -> str:  # type: ignore[no-untyped-def]
    """What a pending instruction asks for, every text field quoted."""
    fields = intent.model_dump(exclude_defaults=True)
    return "{" + ", ".join(f"{k}: {quote(v, 300) if isinstance(v, str) else v}" for k, v in fields.items()) + "}"


class LLMUserBackend:
    """Users whose per-slate decisions come from a language model."""

    kind = "llm"

    def __init__(
        self,
        model: LanguageModel,
        representation: Representation = "text",
        max_item_chars: int = 300,
        memory_items: int = 12,
        max_in_flight: int = 16,
    ) -> None:
        self.model = model
        self.representation = representation
        self.max_item_chars = max_item_chars
        self.memory_items = memory_items
        self.max_in_flight = max_in_flight
        self.memory: dict[int, UserMemory] = {}
        self.exhausted = False  # a budget cap was reached: the caller should end cleanly
        self.last_records: list[LLMStepRecord] = []
        self._parsed: list[SlateDecision | None] = []
        self._fits = context_fit(model)

    # ----------------------------------------------------------------- prompts
    def item_line(self, sim: "SimulationView", pos: int, item: int, max_chars: int | None = None) -> str:
        """One slate item as the LLM user reads it: position, quoted text and/or semantic ID (by ``representation``),
        topic and minutes, between the item markers."""
        cat = sim.catalog
        minutes = cat.duration[item] / 60.0
        parts = [f"[{pos}]"]
        if self.representation in ("text", "both"):
            parts.append(inert(cat.text(item), self.max_item_chars if max_chars is None else max_chars))
        if self.representation in ("semantic_ids", "both"):
            parts.append("sid " + "-".join(str(c) for c in cat.semantic_ids()[item]))
        topic = inert(cat.topic_names[cat.topic[item]], TOPIC_CHARS)
        parts.append(f"(topic {topic}, {minutes:.1f} min)")
        return f"{OPEN} {' '.join(parts)} {CLOSE}"

    def messages(
        self, sim: "SimulationView", row: int, slate: np.ndarray, memory_items: int | None = None, max_chars: int | None = None
    ) -> list[Message]:
        """The prompt for one slate; ``memory_items`` and ``max_chars`` trim the memory and item texts
        (default: the backend's settings; with no memory, earlier sessions' summaries go too)."""
        memory_items = self.memory_items if memory_items is None else memory_items
        profile = sim.profiles[row]
        mem = self.memory.setdefault(row, UserMemory())
        mindset = sim.mindset(row, memory=0)
        last_slate = sim.session_step[row] + 1 >= sim.env.max_slates_per_session
        system = (
            "You simulate one user of a short-video app, in character, and report what they do with the "
            f"slate of items the app shows them. {DATA_RULE}\n\n" + quoted_profile(profile).text()
        )
        lines = [
            f"Day {int(sim.day[row])}, session {int(sim.platform.sessions[row])}, slate {int(sim.session_step[row]) + 1} of this session.",
            f"How you feel (internal state): {quoted_mindset(mindset).text()}",
        ]
        if mem.mindset:
            lines.append(f"In your own words after the last slate: {quote(mem.mindset, 500)}")
        if mem.summaries and memory_items > 0:
            lines.append("Earlier sessions: " + " | ".join(mem.summaries[-3:]))
        if mem.interactions and memory_items > 0:
            lines.append("Recently: " + "; ".join(mem.interactions[-memory_items:]))
        if mindset.pending_instruction is not None:
            lines.append(f"You asked the app for: {quoted_intent(mindset.pending_instruction)}.")
        lines.append("The slate, in order:")
        lines.extend(self.item_line(sim, j, int(item), max_chars) for j, item in enumerate(slate))
        lines.append(
            "Decide for every item in order: skip, click (and how many seconds you watch), like, share or comment; "
            "or 'leave' at the item where you stop using the app. Set leave=true if you leave. Give a short reason "
            "per item and your mood now. Only if you are about to lose interest, tell the app what you want "
            "(instruction). " + ("This is the last slate of the session: " if last_slate else "If you leave, ")
            + "add a one-sentence session_summary."
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]

    def fitted_messages(self, sim: "SimulationView", row: int, slate: np.ndarray, schema: type[BaseModel]) -> list[Message]:
        """The prompt, trimmed until it fits the model's context window when the model has a known one
        (a local model): first the remembered interactions, then summaries, then the item texts."""
        messages = self.messages(sim, row, slate)
        if self._fits is None or self._fits(messages, schema):
            return messages
        chars = self.max_item_chars
        steps = [(self.memory_items // 2, chars), (0, chars), (0, chars // 2), (0, chars // 4), (0, min(chars, 40))]
        for memory_items, max_chars in steps:
            messages = self.messages(sim, row, slate, memory_items, max_chars)
            if self._fits(messages, schema):
                break
        return messages  # the shortest: if it still does not fit, the model refuses it and the step falls back

    # ------------------------------------------------------------- decisions
    @staticmethod
    def to_actions(decision: SlateDecision, durations: np.ndarray) -> tuple[np.ndarray, int]:
        """(K, 5) forced actions and the leave slot; LLMMalformedOutput if the decision does not fit the slate."""
        k = len(durations)
        actions = np.zeros((k, 5))
        leave_at = -1
        for j, d in enumerate(decision.items):
            if d.position != j:
                raise LLMMalformedOutput(f"items: expected position {j}, got {d.position}")
            if j >= k:
                raise LLMMalformedOutput(f"items: {len(decision.items)} decisions for a slate of {k}")
            if d.action == "leave":
                leave_at = j
                break
            if d.action in ENGAGING:
                actions[j, UL.F_CLICK] = 1.0
                actions[j, UL.F_WATCH] = min(1.0, d.watch_seconds / float(durations[j])) if d.watch_seconds > 0 else 0.5
                actions[j, UL.F_LIKE] = d.action == "like"
                actions[j, UL.F_SHARE] = d.action == "share"
                actions[j, UL.F_COMMENT] = d.action == "comment"
        n = len(decision.items)
        if leave_at < 0:
            if n < k and not decision.leave:
                raise LLMMalformedOutput(f"items: {n} decisions for a slate of {k} and no leave")
            if decision.leave:
                leave_at = min(n, k) - 1
        return actions, leave_at

    @property
    def usage(self) -> Usage:
        """LLM calls, tokens and cost so far (the model's running sum)."""
        return self.model.total

    def fallbacks(self, n: int) -> np.ndarray:
        """Per user of the last step: whether their decision fell back to the parametric model."""
        return np.array([x.fallback for x in self.last_records], dtype=bool)

    def echoed(self, n: int) -> np.ndarray:
        """(n,) whether each user's last answer quoted or followed an item's text (see :func:`echoes_items`)."""
        return np.array([x.echoed_item_text for x in self.last_records], dtype=bool)

    def decide(self, sim: "SimulationView", rows: np.ndarray, slates: np.ndarray) -> ForcedDecisions:
        """One structured call per user (bounded concurrency); failures fall back to the parametric decision."""
        b, k = slates.shape
        forced = ForcedDecisions.none(b, k)
        self.last_records = [LLMStepRecord(backend=self.kind) for _ in range(b)]
        self._parsed = [None] * b
        if self.exhausted:
            for rec in self.last_records:
                rec.fallback, rec.error = True, "LLMBudgetExceeded"
            return forced
        schema = slate_schema(k)
        requests = [(self.fitted_messages(sim, int(r), slates[i], schema), schema) for i, r in enumerate(rows)]
        results = run_requests(self.model, requests, self.max_in_flight)
        for i, result in enumerate(results):
            rec = self.last_records[i]
            rec.called = True
            try:
                if isinstance(result, Exception):
                    raise result
                actions, leave_at = self.to_actions(result.value, sim.catalog.duration[slates[i]])
            except LLMError as err:
                rec.fallback, rec.error = True, type(err).__name__
                if isinstance(err, LLMBudgetExceeded):
                    self.exhausted = True
                continue
            rec.usage = result.usage
            forced.forced[i] = True
            forced.actions[i] = actions
            forced.leave_at[i] = leave_at
            self._parsed[i] = result.value
            rec.reasons = [d.reason for d in result.value.items]
            rec.mindset = result.value.mindset
            rec.echoed_item_text = echoes_items(result.value, sim, slates[i])
        return forced

    def after_step(self, sim: "SimulationView", rows: np.ndarray, slates: np.ndarray, outcome: "StepOutcomeView") -> None:
        """Remember what happened; apply the instructions and session summaries the LLM gave."""
        labels = outcome.response.action_codes
        for i, r in enumerate(rows):
            row = int(r)
            mem = self.memory.setdefault(row, UserMemory())
            cat = sim.catalog
            for j, item in enumerate(slates[i]):
                code = labels[i, j]
                if code == UL.A_UNSEEN:
                    break
                topic = inert(cat.topic_names[cat.topic[item]], TOPIC_CHARS)
                mem.interactions.append(f"{OPEN} {inert(cat.title[item], 60)} ({topic}) {CLOSE}: {UL.ACTION_LABELS[code]}")
            del mem.interactions[: -self.memory_items]
            parsed = self._parsed[i] if i < len(self._parsed) else None
            if parsed is None:
                continue
            mem.mindset = parsed.mindset
            if parsed.session_summary and outcome.session_ended[i]:
                mem.summaries.append(quote(parsed.session_summary, 300))
            if parsed.instruction is not None and sim.users.instr_age[row] < 0 and not outcome.churned[i]:
                sim.tell(row, parsed.instruction.more_topic, parsed.instruction.less_topic, parsed.instruction.surprise,
                         parsed.instruction.text)
                outcome.response.per_user[i, WL.U_EMITTED] = 1.0


class HybridUserBackend:
    """Parametric decisions; the LLM writes the words of each instruction a user voices."""

    kind = "hybrid"

    def __init__(self, model: LanguageModel, max_in_flight: int = 16) -> None:
        self.model = model
        self.max_in_flight = max_in_flight
        self.exhausted = False
        self.last_records: list[LLMStepRecord] = []

    @property
    def usage(self) -> Usage:
        """LLM calls, tokens and cost so far (the model's running sum)."""
        return self.model.total

    def fallbacks(self, n: int) -> np.ndarray:
        """Per user of the last step: whether the instruction's words fell back to the template (the LLM call failed)."""
        return np.array([x.fallback for x in self.last_records], dtype=bool)

    def decide(self, sim: "SimulationView", rows: np.ndarray, slates: np.ndarray) -> None:
        """Nothing to decide: a hybrid user's actions are the parametric model's (None)."""
        self.last_records = [LLMStepRecord(backend=self.kind) for _ in range(len(rows))]
        return None

    def after_step(self, sim: "SimulationView", rows: np.ndarray, slates: np.ndarray, outcome: "StepOutcomeView") -> None:
        """Asks the LLM for the words of the instructions voiced in this step (their intent is the model's)."""
        emitted = np.flatnonzero(outcome.effects.emitted)
        if len(emitted) == 0 or self.exhausted:
            return
        requests = []
        for i in emitted:
            row = int(rows[i])
            instr = sim.instruction(row)
            profile = sim.profiles[row]
            requests.append(
                (
                    [
                        {"role": "system", "content": "You write what one app user says, in character. "
                         f"{DATA_RULE}\n\n" + quoted_profile(profile).text()},
                        {
                            "role": "user",
                            "content": f"They are losing interest and tell the app: {quoted_intent(instr.intent)}. "
                            f"Write it in their {profile.traits.tone} tone, one or two short sentences. "
                            f"Template: {quote(instr.text, 300)}",
                        },
                    ],
                    InstructionWords,
                )
            )
        for i, result in zip(emitted, run_requests(self.model, requests, self.max_in_flight)):
            rec = self.last_records[i]
            rec.called = True
            if isinstance(result, Exception):
                rec.fallback, rec.error = True, type(result).__name__
                self.exhausted |= isinstance(result, LLMBudgetExceeded)
                continue
            rec.usage = result.usage
            sim.set_instruction_text(int(rows[i]), result.value.text)


def make_user_backend(scenario: "Scenario", language_model: LanguageModel | None = None) -> UserBackend:
    """The scenario's user backend: parametric, or LLM / hybrid around ``language_model`` (default:
    built from ``scenario.llm`` with cache, retries, budget and accounting)."""
    kind = scenario.users.backend
    if kind == "parametric":
        return ParametricUserBackend()
    from recoworld.llm.config import build_language_model

    model = build_language_model(scenario.llm, inner=language_model)
    if kind == "llm":
        return LLMUserBackend(model, scenario.users.representation, max_in_flight=scenario.llm.max_in_flight)
    return HybridUserBackend(model, max_in_flight=scenario.llm.max_in_flight)


def echoes_items(decision: SlateDecision, sim: "SimulationView", slate: np.ndarray) -> bool:
    """Whether an answer's words (reasons, mood, instruction, summary) repeat an item's text of the slate:
    a schema-valid answer that obeys an injected instruction usually says so in its own words."""
    said = [d.reason for d in decision.items] + [decision.mindset, decision.session_summary or ""]
    if decision.instruction is not None:
        said.append(decision.instruction.text)
    texts = [str(sim.catalog.text(int(item))) for item in slate]
    return any(echoes(text, texts) for text in said if text)
