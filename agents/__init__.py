"""Recommenders (import: ``recoworld.agents``).

What lives here: the recommender contract (``protocol``: UserView, Recommendation, SlateChoice,
Recommender), the registry of names (``registry``), classic baselines and shared scoring
(``baselines``, ``scoring``), matrix factorisation (``mf``), instruction following, ToolRec,
LERL and RL policies (``rl``, ``train``).

May import: ``recoworld.world`` (catalog, observation layout), ``recoworld.users`` protocol
types (instructions), ``recoworld.llm``; never ``recoworld.runs`` or ``recoworld.env`` at module
level. Names below are re-exported lazily: importing this package loads no submodule.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    "BaseRecommender": "baselines",
    "EpsilonGreedy": "baselines",
    "GreedyRelevance": "baselines",
    "LinUCB": "baselines",
    "MMRDiversity": "baselines",
    "PopularRecommender": "baselines",
    "RandomRecommender": "baselines",
    "Constraints": "instruction_following",
    "InstructionFollowing": "instruction_following",
    "parse_rules": "instruction_following",
    "Recommendation": "protocol",
    "Recommender": "protocol",
    "SlateChoice": "protocol",
    "UserView": "protocol",
    "RECOMMENDERS": "registry",
    "make_recommender": "registry",
    "register": "registry",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
