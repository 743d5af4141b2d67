"""Recommenders that misbehave, named as ``tests.tasks.policies_for_tests:Class`` by the task tests."""

from __future__ import annotations

import numpy as np

from recoworld.agents.baselines import GreedyRelevance
from recoworld.agents.protocol import SlateChoice, UserView


class OutOfRange(GreedyRelevance):
    """Greedy, except that the last slot points past the candidates."""

    name = "out_of_range"

    def slate(self, view: UserView) -> SlateChoice:
        choice = super().slate(view)
        choice.positions[:, -1] = view.candidates.shape[1] + 5
        return choice


class ShortSlate(GreedyRelevance):
    """One item fewer than the slate size."""

    name = "short_slate"

    def slate(self, view: UserView) -> SlateChoice:
        choice = super().slate(view)
        return SlateChoice(choice.positions[:, :-1], choice.propensities[:, :-1])


class ReturnsAList(GreedyRelevance):
    name = "returns_a_list"

    def slate(self, view: UserView):  # type: ignore[override]
        return [0] * view.slate_size


class Raises(GreedyRelevance):
    name = "raises"

    def slate(self, view: UserView) -> SlateChoice:
        raise KeyError("no such topic")


class NoSeed:
    """Not seedable: the registry refuses it."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
