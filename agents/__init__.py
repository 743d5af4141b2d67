"""Recommenders: the protocol, baselines and the registry."""

from recoworld.agents.baselines import (
    BaseRecommender,
    EpsilonGreedy,
    GreedyRelevance,
    InstructionFollowing,
    LinUCB,
    MMRDiversity,
    PopularRecommender,
    RandomRecommender,
)
from recoworld.agents.protocol import Recommendation, Recommender, SlateChoice, UserView
from recoworld.agents.registry import RECOMMENDERS, make_recommender, register

__all__ = [
    "BaseRecommender",
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
    "register",
]
