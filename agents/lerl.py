"""LERL: an LLM (or heuristic) planner over an RL policy.

The high-level planner picks at least two categories for each decision. The LLM planner keeps a
memory of up to 200 short reflections written when sessions end, and sees three of them sampled
with probability ∝ exp(0.1 × the session's return). The low-level policy is an SB3 model trained on
:class:`PlannedEnv`: RecoWorld-v0 with the candidates outside the planned categories masked out of
both the observation and the action.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.protocol import SlateChoice, UserView
from recoworld.llm.base import LanguageModel, LLMError
from recoworld.llm.text import DATA_RULE, find_name, name_lookup, quote, quote_all
from recoworld.world.observation import CANDIDATE_FEATURES
from recoworld.users.instructions import NO_TOPIC

MIN_CATEGORIES = 2


class Planner(Protocol):
    """Chooses the categories the low-level policy may recommend from, for user ``i`` of ``view``."""

    name: str

    def plan(self, view: UserView, i: int) -> list[int]:
        """Categories (topic codes, at least two) user ``i`` of ``view`` is served from next."""

    def reflect(self, summary: str, session_return: float) -> None:
        """Learns from a finished session: its summary and how much it returned."""


def distinct_per_topic(view: UserView, i: int) -> np.ndarray:
    """How many distinct items user ``i``'s candidates hold per topic (candidates are drawn with replacement)."""
    _, first = np.unique(view.candidates[i], return_index=True)
    return np.bincount(view.candidate_topics[i][first], minlength=view.catalog.n_topics)


class HeuristicPlanner:
    """The user's best-engaged topic, plus their least-shown promising topic (and more topics while
    the chosen ones cannot fill a slate); instructions respected."""

    name = "heuristic"

    def __init__(self, n_categories: int = 2) -> None:
        self.n = max(MIN_CATEGORIES, n_categories)

    def plan(self, view: UserView, i: int) -> list[int]:
        """Topics for user ``i``'s next slate: the one asked for, then by smoothed click rate and taste affinity, fresh
        topics first, never the one to avoid, until ``n`` topics cover the slate."""
        clicks, shown = view.click_topics[i], view.shown_topics[i]
        cands = view.candidate_topics[i]
        present = np.bincount(cands, minlength=len(clicks)) > 0
        affinity = np.zeros(len(clicks))
        norm = np.linalg.norm(view.est_taste[i])
        if norm > 0:
            affinity = view.catalog.topic_centroids @ (view.est_taste[i] / norm)
        ctr = (clicks + 1.0) / (shown + 3.0)  # smoothed click rate per topic
        chosen: list[int] = []
        if view.instr_more[i] != NO_TOPIC:
            chosen.append(int(view.instr_more[i]))
        order = np.argsort(-(ctr + 0.5 * affinity))
        fresh = np.argsort(-(affinity - shown / max(shown.sum(), 1.0)))
        counts = distinct_per_topic(view, i)
        for t in [*order[:1], *fresh, *order[1:]]:
            t = int(t)
            enough = len(chosen) >= self.n and counts[chosen].sum() >= view.slate_size
            if enough:
                break
            if t not in chosen and t != view.instr_less[i] and present[t]:
                chosen.append(t)
        return chosen

    def top_up(self, view: UserView, i: int, chosen: list[int]) -> list[int]:
        """``chosen`` plus the heuristic's next categories until there are at least two and a full slate."""
        counts = distinct_per_topic(view, i)
        for t in self.plan(view, i):
            if len(chosen) >= MIN_CATEGORIES and counts[chosen].sum() >= view.slate_size:
                break
            if t not in chosen:
                chosen.append(t)
        return chosen

    def reflect(self, summary: str, session_return: float) -> None:
        """The heuristic keeps no memory."""


class Plan(BaseModel):
    """The planner's choice for the next slate."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(min_length=MIN_CATEGORIES, description=f"At least {MIN_CATEGORIES} topics to recommend from.")
    rationale: str = Field("", max_length=300)


@functools.lru_cache(maxsize=64)
def plan_schema(topics: tuple[str, ...]) -> type[Plan]:
    """Plan whose ``decoding_schema`` (used by constrained decoders: local models) allows only ``topics``."""

    def decoding_schema(cls: type[Plan]) -> dict:
        schema = cls.model_json_schema()
        schema["properties"]["categories"]["items"] = {"enum": list(topics)}
        return schema

    return type("Plan", (Plan,), {"__doc__": Plan.__doc__, "decoding_schema": classmethod(decoding_schema)})


@dataclass
class ReflectionMemory:
    """Up to ``size`` reflections with the return of the session they came from."""

    size: int = 200
    scale: float = 0.1
    items: deque = field(default_factory=deque)

    def add(self, text: str, session_return: float) -> None:
        """Keeps a reflection with its session's return, forgetting the oldest beyond ``size``."""
        self.items.append((text, float(session_return)))
        while len(self.items) > self.size:
            self.items.popleft()

    def sample(self, rng: np.random.Generator, k: int = 3) -> list[str]:
        """``k`` reflections drawn without replacement with probability ∝ exp(scale × return)."""
        if not self.items:
            return []
        returns = np.array([r for _, r in self.items])
        weights = np.exp(self.scale * (returns - returns.max()))
        picks = rng.choice(len(self.items), size=min(k, len(self.items)), replace=False, p=weights / weights.sum())
        return [self.items[j][0] for j in picks]


class LLMPlanner:
    """A language model picks the categories, reminded of three reflections on past sessions."""

    name = "llm"

    def __init__(self, model: LanguageModel, memory_size: int = 200, seed: int = 0, fallback: HeuristicPlanner | None = None) -> None:
        self.model = model
        self.memory = ReflectionMemory(size=memory_size)
        self.rng = np.random.default_rng(seed)
        self.fallback = fallback or HeuristicPlanner()
        self.fallbacks = 0
        self.calls = 0

    def plan(self, view: UserView, i: int) -> list[int]:
        """Topics for user ``i``'s next slate, chosen by the language model from the topics, the user's clicks, words
        and the lessons kept; an error or too few topics falls back to, or is topped up by, the heuristic planner."""
        names = view.catalog.topic_names
        index, lookup = {n: t for t, n in enumerate(names)}, name_lookup(names)
        clicks = view.click_topics[i]
        liked = [names[t] for t in np.argsort(-clicks)[:3] if clicks[t] > 0]
        instruction = view.instructions[i].text if i < len(view.instructions) and view.instructions[i] else None
        lines = [
            f"Topics: {quote_all(names)}.",
            f"The user engaged most with: {quote_all(liked) or 'nothing yet'}.",
            f"The user said: {quote(instruction, 300)}" if instruction else "The user has not asked for anything.",
        ]
        reflections = self.memory.sample(self.rng)
        if reflections:
            lines.append("Lessons from earlier sessions: " + " | ".join(reflections))
        lines.append(f"Pick at least {MIN_CATEGORIES} topics for the next slate, to keep the user coming back.")
        messages = [
            {"role": "system", "content": f"You plan a video recommender's next slate by choosing topics. {DATA_RULE}"},
            {"role": "user", "content": "\n".join(lines)},
        ]
        self.calls += 1
        try:
            plan = self.model.generate(messages, plan_schema(tuple(names))).value
        except LLMError:
            self.fallbacks += 1
            return self.fallback.plan(view, i)
        found = (find_name(lookup, c) for c in plan.categories)
        chosen = list(dict.fromkeys(index[name] for name in found if name is not None))
        if len(chosen) < MIN_CATEGORIES:
            self.fallbacks += 1
        return self.fallback.top_up(view, i, chosen)

    def reflect(self, summary: str, session_return: float) -> None:
        """Keep a finished session's summary with its return, as a lesson for later plans."""
        self.memory.add(summary, session_return)


def mask_candidates(obs: dict[str, np.ndarray], cand_topics: np.ndarray, allowed: list[int], n_topics: int) -> dict[str, np.ndarray]:
    """The observation with the candidates outside ``allowed`` zeroed (all kept if none is allowed)."""
    keep = np.isin(cand_topics, allowed)
    if not keep.any():
        return obs
    width = n_topics + len(CANDIDATE_FEATURES)
    cands = obs["candidates"].reshape(len(cand_topics), width).copy()
    cands[~keep] = 0.0
    return {**obs, "candidates": cands.reshape(-1)}


def project_action(
    action: np.ndarray, cand_topics: np.ndarray, allowed: list[int], fallback_scores: np.ndarray,
    cand_items: np.ndarray | None = None,
) -> np.ndarray:
    """Slots pointing at a masked (or repeated) candidate take the best allowed unused one instead. With
    ``cand_items`` (the candidates' catalog rows) a candidate is used once its item is in the slate
    (candidates are drawn with replacement)."""
    keep = np.isin(cand_topics, allowed)
    if not keep.any():
        return np.asarray(action)
    items = np.arange(len(keep)) if cand_items is None else np.asarray(cand_items)
    out = np.array(action, dtype=np.int64).copy()
    used: set[int] = set()
    order = [int(p) for p in np.argsort(-np.where(keep, fallback_scores, -np.inf)) if keep[p]]
    for j, pos in enumerate(out):
        if not keep[pos] or int(items[pos]) in used:
            spare = next((p for p in order if int(items[p]) not in used), None)
            if spare is None:
                spare = next((p for p in range(len(keep)) if int(items[p]) not in used), int(pos))
            out[j] = spare
        used.add(int(items[out[j]]))
    return out


class PlannedEnv(gym.Wrapper):
    """RecoWorld-v0 (slate mode) in which a planner restricts each decision to its categories.

    The low-level policy sees only the planned categories' candidates and its action is projected
    onto them. When a session ends the planner gets a reflection with the session's return.
    """

    def __init__(self, env: gym.Env, planner: Planner) -> None:
        super().__init__(env)
        if self.env.unwrapped.action_mode != "slate":
            raise ValueError("PlannedEnv: the low-level policy needs action_mode='slate'")
        self.planner = planner
        self._allowed: list[int] = []
        self._session_return = 0.0
        self._session_slates = 0

    def _plan(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        view = self.env.unwrapped.user_view()
        self._allowed = self.planner.plan(view, 0)
        self._view = view
        return mask_candidates(obs, view.candidate_topics[0], self._allowed, view.catalog.n_topics)

    def reset(self, **kwargs: Any):
        """Reset the env and plan the first slate's topics (``info['planned']``)."""
        obs, info = self.env.reset(**kwargs)
        self._session_return, self._session_slates = 0.0, 0
        return self._plan(obs), {**info, "planned": list(self._allowed)}

    def step(self, action: Any):
        """Play the action projected onto the planned topics; at a session's end reflect on it and plan again."""
        view = self._view
        action = project_action(action, view.candidate_topics[0], self._allowed, view.affinity()[0], view.candidates[0])
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._session_return += reward
        self._session_slates += 1
        names = view.catalog.topic_names
        info["planned"] = [names[t] for t in self._allowed]
        if info.get("session_ended"):
            summary = (
                f"Planning {quote_all(info['planned'])} gave a {self._session_slates}-slate session, "
                f"return {self._session_return:.1f}, {'churned' if terminated else 'came back'}."
            )
            self.planner.reflect(summary, self._session_return)
            self._session_return, self._session_slates = 0.0, 0
        if terminated or truncated:
            return obs, reward, terminated, truncated, info
        return self._plan(obs), reward, terminated, truncated, info


class LERLRecommender(BaseRecommender):
    """LERL as a recommender: the planner's categories, then the low-level SB3 policy's slate."""

    name = "lerl"
    needs_text = True
    needs_observation = True

    def __init__(self, planner: Planner | str = "heuristic", policy: Any = None, policy_path: str | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.planner = HeuristicPlanner() if planner == "heuristic" else planner
        if isinstance(self.planner, str):
            raise ValueError(f"lerl.planner: unknown planner '{planner}' (give 'heuristic' or a Planner object)")
        self.policy = policy
        self.policy_path = policy_path

    def _policy(self) -> Any:
        if self.policy is None:
            if self.policy_path is None:
                raise ValueError("lerl: give a trained low-level policy (policy=...) or policy_path")
            from stable_baselines3 import PPO

            self.policy = PPO.load(self.policy_path)
        return self.policy

    def slate(self, view: UserView) -> SlateChoice:
        """Per user: the planner's topics, the RL policy's action on the observation masked to them, projected onto the
        candidates; marks users whose plan fell back."""
        n_topics = view.catalog.n_topics
        allowed, fell_back = [], np.zeros(len(view), dtype=bool)
        for i in range(len(view)):
            before = getattr(self.planner, "fallbacks", 0)
            allowed.append(self.planner.plan(view, i))
            fell_back[i] = getattr(self.planner, "fallbacks", 0) > before
        obs = {k: v.copy() for k, v in view.observation.items()}
        for i, cats in enumerate(allowed):
            masked = mask_candidates({k: v[i] for k, v in obs.items()}, view.candidate_topics[i], cats, n_topics)
            obs["candidates"][i] = masked["candidates"]
        actions, _ = self._policy().predict(obs, deterministic=True)
        affinity = view.affinity()
        positions = np.stack(
            [project_action(actions[i], view.candidate_topics[i], allowed[i], affinity[i], view.candidates[i])
             for i in range(len(view))]
        )
        return SlateChoice(positions, np.ones(positions.shape, dtype=np.float32), fell_back)
