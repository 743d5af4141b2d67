"""The fidelity baselines, fitted on one time split's training rows: popularity by like-rate and by count, the
biased logistic MF (the calibration's MF without side features), and any registered baseline.

A baseline is a factory ``split -> scorer``, a scorer ``(user codes, catalog rows) -> engagement probability``.
Others plug in through the registry: :func:`register_baseline` adds a factory, :func:`use_baseline` adds one
of the named plug-ins (``PLUGINS``: ``"package.module:factory"``, imported on first use, so that SASRec,
built on a recommender, needs no import of the recommenders here).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

import numpy as np

from recoworld.progress import stage

if TYPE_CHECKING:
    from recoworld.users.calibration.mf import LogisticMF
    from recoworld.world.catalog import Catalog

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (user codes, catalog rows) -> probability
BUILT_IN = ("simulator", "mf", "popularity_rate", "popularity_count")
PLUGINS = {"sasrec": "recoworld.agents.sasrec_fidelity:sasrec_baseline"}


class Split(Protocol):
    """What a baseline reads of a time split (``recoworld.users.calibration.fit.Prepared``), one entry per row."""

    catalog: Catalog
    users: np.ndarray  # user code
    user_ids: Any  # user id per code
    rows: np.ndarray  # catalog row
    y: np.ndarray  # engagement label
    train: np.ndarray  # in the training period
    valid: np.ndarray  # in the training period's validation share
    popularity: np.ndarray  # per catalog row, from training rows


BaselineFactory = Callable[[Split], Scorer]
BASELINES: dict[str, BaselineFactory] = {}


def register_baseline(name: str, factory: BaselineFactory) -> None:
    """Add a fidelity baseline: ``factory(split)`` fits on the training rows only and returns a scorer
    ``(user codes, catalog rows) -> engagement probability``."""
    if name in BASELINES or name in BUILT_IN:
        raise ValueError(f"baseline '{name}' is already registered")
    BASELINES[name] = factory


def use_baseline(name: str, **params: Any) -> None:
    """Register the plug-in ``name`` of ``PLUGINS`` (its factory maker called with ``params``), once per process;
    raises ImportError when the plug-in's dependencies are not installed."""
    if name in BASELINES:
        return
    module, _, attribute = PLUGINS[name].partition(":")
    register_baseline(name, getattr(importlib.import_module(module), attribute)(**params))


def popularity_baselines(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Per catalog row: engagement probability of popularity by like-rate (Bayesian average, m = 10) and by
    count (logistic fit of the training label on the count percentile), from training rows only."""
    # imported here: the calibration package's __init__ imports its fit, which imports this module
    from recoworld.users.calibration.mf import platt

    t, n = split.train, len(split.catalog)
    seen = np.bincount(split.rows[t], minlength=n).astype(float)
    liked = np.bincount(split.rows[t], weights=split.y[t], minlength=n)
    base = float(split.y[t].mean())
    rate = (liked + 10 * base) / (seen + 10)
    a, b = platt(split.popularity[split.rows][t], split.y[t], l2=1e-9 / max(int(t.sum()), 1))
    return rate, 1 / (1 + np.exp(-(a * split.popularity + b)))


def baseline_scorers(split: Split, mf: LogisticMF, registered: Iterable[str] | None = None) -> dict[str, Scorer]:
    """The baselines fitted on ``split``'s training rows: the MF ``mf``, popularity by like-rate and by count, and
    the registered baselines (those named in ``registered``; all by default)."""
    rate, count = popularity_baselines(split)
    scorers: dict[str, Scorer] = {"mf": mf.predict, "popularity_rate": lambda u, i: rate[i], "popularity_count": lambda u, i: count[i]}
    for name, factory in BASELINES.items():
        if registered is None or name in registered:
            with stage(f"fitting the {name} baseline"):
                scorers[name] = factory(split)
    return scorers
