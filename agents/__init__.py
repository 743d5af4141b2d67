"""Recommenders: the protocol, baselines and the registry."""

from recoworld.agents.baselines import (
    BaseRecommender,
    EpsilonGreedy,
    GreedyRelevance,
    LinUCB,
    MMRDiversity,
    PopularRecommender,
    RandomRecommender,
)
from recoworld.agents.instruction_following import (
    Constraints,
    InstructionFollowing,
    parse_rules,
)
from recoworld.agents.protocol import Recommendation, Recommender, SlateChoice, UserView
from recoworld.agents.registry import RECOMMENDERS, make_recommender, register

__all__ = [
    "BaseRecommender",
    "Constraints",
    "EpsilonGreedy",
    "GreedyRelevance",
    "InstructionFollowing",
    "LinUCB",
    "MMRDiversity",
    "PopularRecommender",
    "RECOMMENDERS",
    "RandomRecommender",
    "Recommendation",
    "Recommender",
    "SlateChoice",
    "UserView",
    "make_recommender",
    "parse_rules",
    "register",
]
