"""Recommenders by name, so scenarios and the CLI can ask for them with plain data."""

from __future__ import annotations

from typing import Any, Callable

from recoworld.agents.baselines import (
    BaseRecommender,
    EpsilonGreedy,
    GreedyRelevance,
    LinUCB,
    MMRDiversity,
    PopularRecommender,
    RandomRecommender,
)
from recoworld.agents.instruction_following import InstructionFollowing
from recoworld.agents.lerl import LERLRecommender
from recoworld.agents.mf import MatrixFactorization
from recoworld.agents.toolrec import ToolRec

RECOMMENDERS: dict[str, Callable[..., BaseRecommender]] = {
    "random": RandomRecommender,
    "popular": PopularRecommender,
    "greedy": GreedyRelevance,
    "mmr": MMRDiversity,
    "egreedy": EpsilonGreedy,
    "linucb": LinUCB,
    "toolrec": ToolRec,
    "lerl": LERLRecommender,
    "mf": MatrixFactorization,
}


def _sb3(seed: int = 0, **params: Any) -> BaseRecommender:
    from recoworld.agents.rl import SB3Recommender  # imports torch: only when asked for

    return SB3Recommender(seed=seed, **params)


def _sasrec(seed: int = 0, **params: Any) -> BaseRecommender:
    from recoworld.agents.sasrec_arm import SASRecRecommender  # imports torch: only when asked for

    return SASRecRecommender(seed=seed, **params)


RECOMMENDERS["sb3"] = _sb3
RECOMMENDERS["sasrec"] = _sasrec


def make_recommender(name: str, params: dict[str, Any] | None = None, seed: int = 0) -> BaseRecommender:
    """Build a registered recommender; ``instruction_following`` wraps ``params['base']`` (default greedy)."""
    params = dict(params or {})
    if name == "instruction_following":
        base_name = params.pop("base", "greedy")
        base_params = params.pop("base_params", {})
        return InstructionFollowing(make_recommender(base_name, base_params, seed), seed=seed, **params)
    if name not in RECOMMENDERS:
        known = ", ".join(sorted([*RECOMMENDERS, "instruction_following"]))
        raise ValueError(f"recommender: unknown name '{name}' (known: {known})")
    try:
        return RECOMMENDERS[name](seed=seed, **params)
    except TypeError as exc:
        raise ValueError(f"recommender '{name}': bad parameters {sorted(params)} ({exc})") from None


def known_recommenders() -> set[str]:
    """Every name :func:`make_recommender` accepts."""
    return {*RECOMMENDERS, "instruction_following"}


def register(name: str, factory: Callable[..., BaseRecommender]) -> None:
    """Add a recommender factory under ``name`` (it must accept ``seed=``)."""
    RECOMMENDERS[name] = factory
