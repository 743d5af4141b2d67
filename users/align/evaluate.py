"""Held-out choice accuracy of user models on exposure lists: position debiasing and bootstrap intervals.

A small LLM picking from a lettered list has a position (letter) prior of its own. Two fair ways to
take it out, applied to every LLM row alike:

* :func:`rotation_probs`: score each list under all N cyclic rotations of the candidate order and
  average each item's probability (N forward passes per list);
* :func:`prior_debiased`: divide each distribution by the model's mean letter distribution over the
  evaluated lists and renormalise (label-free: the real choice's position is uniform by construction;
  one pass per list; after PriDe, Zheng et al. 2023, "Large Language Models Are Not Robust Multiple
  Choice Selectors", which estimates the prior from rotations of a few lists).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.stats import mean_interval
from recoworld.users.align.samples import ChoiceSample


def rotation_probs(score: Callable[[list[ChoiceSample]], list[np.ndarray]], samples: list[ChoiceSample]) -> list[np.ndarray]:
    """Each sample's choice distribution (in its own candidate order) averaged over all cyclic rotations of the
    list; ``score`` maps samples to distributions over their shown order (one batch for all rotations)."""
    shown, orders = [], []
    for s in samples:
        n = len(s.candidates)
        for r in range(n):
            order = np.roll(np.arange(n), -r)
            shown.append(s.reordered(order))
            orders.append(order)
    probs = score(shown)
    out, k = [], 0
    for s in samples:
        acc = np.zeros(len(s.candidates))
        for _ in range(len(s.candidates)):
            acc[orders[k]] += probs[k]  # position j showed candidate orders[k][j]
            k += 1
        out.append(acc / len(s.candidates))
    return out


def prior_debiased(probs: list[np.ndarray]) -> list[np.ndarray]:
    """Distributions divided by the mean distribution over lists of the same length, renormalised."""
    out = []
    priors = {n: np.mean([p for p in probs if len(p) == n], axis=0) for n in {len(p) for p in probs}}
    for p in probs:
        q = np.asarray(p, dtype=np.float64) / np.maximum(priors[len(p)], 1e-12)
        out.append(q / q.sum())
    return out


def hits(probs: list[np.ndarray], chosen: np.ndarray) -> np.ndarray:
    """1.0 where the most probable candidate is the real choice."""
    return np.array([float(np.argmax(p) == c) for p, c in zip(probs, chosen, strict=True)])


def pick_shares(probs: list[np.ndarray]) -> np.ndarray:
    """Share of top picks at each position (a model without position bias picks each about 1/N of the time)."""
    n = max(len(p) for p in probs)
    return np.bincount([int(np.argmax(p)) for p in probs], minlength=n) / len(probs)


@contextlib.contextmanager
def without_tuning(model) -> Iterator:
    """The same ``TransformersModel`` as its base model while inside: no choice head, LoRA adapters disabled."""
    head, model.head = model.head, None
    try:
        with model.net.disable_adapter() if hasattr(model.net, "disable_adapter") else contextlib.nullcontext():
            yield model
    finally:
        model.head = head


class Accuracy(BaseModel):
    """Held-out accuracy with its bootstrap 95% interval (paired, for a difference)."""

    model_config = ConfigDict(extra="forbid")

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray, rng: np.random.Generator) -> "Accuracy":
        """Mean of the 0/1 ``values`` with its bootstrap 95% interval (resampled with ``rng``)."""
        return cls(value=float(np.mean(values)), **dict(zip(("low", "high"), mean_interval(values, rng))))


class HeldOutAccuracy(BaseModel):
    """How often each user model's top pick is the real choice on the held-out lists."""

    model_config = ConfigDict(extra="forbid")

    lists: int
    chance: float = Field(description="Mean 1/N over the lists.")
    parametric: Accuracy
    base: Accuracy
    aligned: Accuracy
    aligned_minus_base: Accuracy


def held_out_accuracy(truth: np.ndarray, parametric: list[np.ndarray], base: list[np.ndarray],
                      aligned: list[np.ndarray], seed: int = 0) -> HeldOutAccuracy:
    """Accuracies of the three models' distributions on the same lists, with bootstrap intervals."""
    rng = np.random.default_rng(seed)
    hb, ha = hits(base, truth), hits(aligned, truth)
    return HeldOutAccuracy(lists=len(truth), chance=float(np.mean([1 / len(p) for p in base])),
                           parametric=Accuracy.of(hits(parametric, truth), rng), base=Accuracy.of(hb, rng),
                           aligned=Accuracy.of(ha, rng), aligned_minus_base=Accuracy.of(ha - hb, rng))
