"""Rollouts of a language agent in the world: decision states and groups of forked futures.

A decision state is a user of the training seeds at the moment they have just spoken (played there by
the rule-parsing instruction follower, so states do not depend on the policy being trained). A group is
G copies of that world, forked with the same random state (common random numbers: the futures differ
only by the plan), each served by the agent with its own sampled plan for those words, until the
session ends (the step that ends it carries the return or churn outcome). A later instruction in the
same session is read by the current policy (its most probable plan). The group's returns are GRPO's
group baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.agents.baselines import GreedyRelevance
from recoworld.agents.instruction_following import InstructionFollowing
from recoworld.agents.language.agent import LanguageAgent
from recoworld.agents.language.observe import WORDS_CHARS
from recoworld.agents.language.plan import Plan, plan_messages
from recoworld.env.single import RecoWorldEnv
from recoworld.llm.text import quote

MAX_STEPS = 400  # a session longer than this many slates is cut (none is, at the bundled scenarios)


@dataclass
class DecisionState:
    """A world paused where a user has just spoken, before the slate that answers them."""

    seed: int
    env: RecoWorldEnv
    words: str  # quoted, as the agent's prompt shows them
    topics: list[str]

    @property
    def messages(self) -> list[dict[str, str]]:
        """The planning prompt of this decision: the user's words and the topics."""
        return plan_messages(self.words, self.topics)


def find_decision(env: RecoWorldEnv, seed: int, max_steps: int = MAX_STEPS) -> DecisionState | None:
    """Seed ``seed``'s user served by the rule follower until they speak; None if they never do within ``max_steps``."""
    env.reset(seed=seed)
    guide = InstructionFollowing(GreedyRelevance(seed=seed), parser="rules", seed=seed)
    for _ in range(max_steps):
        view = env.sim.view(slice(None), with_text=True)
        spoken = view.instructions[0] if view.instructions else None
        if spoken is not None:
            topics = list(view.catalog.topic_names)
            return DecisionState(seed, env.fork(), quote(spoken.text, WORDS_CHARS), topics)
        _obs, _r, terminated, truncated, _info = env.step(guide.slate(view).positions[0])
        if terminated or truncated:
            return None
    return None


def play_session(env: RecoWorldEnv, agent: LanguageAgent) -> float:
    """The scenario's reward from now until the user's session ends (or the episode does)."""
    total = 0.0
    for _ in range(MAX_STEPS):
        view = env.sim.view(slice(None), with_text=True)
        _obs, reward, terminated, truncated, info = env.step(agent.slate(view).positions[0])
        total += float(reward)
        if info["session_ended"] or terminated or truncated:
            break
    return total


def group_returns(state: DecisionState, plans: list[Plan], policy) -> list[float]:
    """Each plan's return from ``state``: the session played on its own fork of the world."""
    user = state.env.sim.user_ids[0]
    out = []
    for plan in plans:
        agent = LanguageAgent(policy=policy, seed=state.seed)
        agent.forced[str(user)] = plan
        out.append(play_session(state.env.fork(), agent))
    return out


def decision_states(scenario: str, seeds: range, config: dict | None = None) -> list[DecisionState]:
    """The decision state of every seed whose user speaks."""
    env = RecoWorldEnv(scenario=scenario, config=config)
    states = [find_decision(env, s) for s in seeds]
    return [s for s in states if s is not None]


def rng_for(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])
