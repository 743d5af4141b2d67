"""USP-style diverse population sampling: profile vectors, kNN density, density-aware draws.

Profiles are embedded as their interests over the topics plus the ten trait values, each column
standardised. The density of a profile is 1 / (mean Euclidean distance to its k nearest
neighbours). Populations are then drawn towards the crowded middle (``majority``), towards the
sparse edges (``minority``), so that every density level is equally represented (``flattened``:
each profile weighted by the inverse size of its log-density bin, so the sample's density
histogram is flat), or uniformly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from recoworld.users.profile import TRAIT_NAMES, UserProfile

SampleMode = Literal["majority", "minority", "flattened", "uniform"]
MODES: tuple[str, ...] = ("majority", "minority", "flattened", "uniform")
FLATTEN_BINS = 10  # density levels that "flattened" sampling makes equally likely
_BLOCK_FLOATS = 4_000_000  # distance block of about 32 MB (float64) per chunk


def profile_vectors(profiles: Sequence[UserProfile], topic_names: Sequence[str]) -> np.ndarray:
    """(n, T + 10) float64: interest weights over ``topic_names`` then the traits in ``TRAIT_NAMES``
    order, each column standardised (zero mean, unit variance; constant columns become 0).
    Interests in topics outside ``topic_names`` are ignored."""
    index = {name: k for k, name in enumerate(topic_names)}
    t_count = len(index)
    x = np.zeros((len(profiles), t_count + len(TRAIT_NAMES)), dtype=np.float64)
    for r, prof in enumerate(profiles):
        for topic, w in prof.interests.items():
            k = index.get(topic)
            if k is not None:
                x[r, k] = w
        x[r, t_count:] = [getattr(prof.traits, name) for name in TRAIT_NAMES]
    if len(profiles) == 0:
        return x
    mean = x.mean(0)
    std = x.std(0)
    return (x - mean) / np.where(std > 1e-12, std, 1.0)


def density(vectors: np.ndarray, k: int = 10, *, chunk_rows: int | None = None) -> np.ndarray:
    """1 / mean Euclidean distance to the ``k`` nearest other rows (k capped at n - 1).

    Exact brute force in row chunks, so the memory is O(chunk_rows × n): 20k profiles use about
    32 MB at a time. A single row gets density 1; coincident rows get a large finite density.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("density: vectors must be a 2-d array (n, d)")
    if k < 1:
        raise ValueError("density: k must be >= 1")
    n = len(x)
    if n <= 1:
        return np.ones(n)
    k = min(int(k), n - 1)
    sq = np.einsum("ij,ij->i", x, x)
    step = chunk_rows or max(1, _BLOCK_FLOATS // n)
    mean_dist = np.empty(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not your own neighbour
        nearest = np.partition(d2, k - 1, axis=1)[:, :k]
        mean_dist[start:stop] = np.sqrt(nearest).mean(1)
    return 1.0 / np.maximum(mean_dist, 1e-9)


def sampling_weights(dens: np.ndarray, mode: SampleMode) -> np.ndarray:
    """Draw probabilities (summing to 1) of each profile for a sampling ``mode``."""
    if mode not in MODES:
        raise ValueError(f"sample_population: unknown mode '{mode}' (expected one of {', '.join(MODES)})")
    d = np.asarray(dens, dtype=np.float64)
    if mode == "uniform":
        w = np.ones_like(d)
    elif mode == "majority":
        w = d.copy()
    elif mode == "minority":
        w = 1.0 / d
    else:  # flattened: every density level equally likely (inverse count of the profile's density bin)
        log_d = np.log(d)
        edges = np.linspace(log_d.min(), log_d.max() + 1e-12, FLATTEN_BINS + 1)
        bins = np.clip(np.searchsorted(edges, log_d, side="right") - 1, 0, FLATTEN_BINS - 1)
        w = 1.0 / np.bincount(bins, minlength=FLATTEN_BINS)[bins]
    return w / w.sum()


def sample_population(
    profiles: Sequence[UserProfile],
    n: int,
    mode: SampleMode,
    rng: np.random.Generator,
    k: int = 10,
) -> list[UserProfile]:
    """``n`` profiles drawn by density (see the module docstring), seeded by ``rng`` only.

    Without replacement when ``n <= len(profiles)`` (weighted draws in sequence, so the order is
    the draw order), else with replacement; a profile drawn again is a copy whose ``user_id``
    gets a ``#2``, ``#3``, ... suffix so ids stay unique.
    """
    if mode not in MODES:
        raise ValueError(f"sample_population: unknown mode '{mode}' (expected one of {', '.join(MODES)})")
    if n < 0:
        raise ValueError("sample_population: n must be >= 0")
    if n == 0:
        return []
    if not profiles:
        raise ValueError("sample_population: no profiles to sample from")
    topics = sorted({t for p in profiles for t in p.interests})
    return draw_profiles(profiles, n, rng, sampling_weights(density(profile_vectors(profiles, topics), k), mode))


def draw_profiles(profiles: Sequence[UserProfile], n: int, rng: np.random.Generator, p: np.ndarray | None = None) -> list[UserProfile]:
    """``n`` of ``profiles`` drawn with probabilities ``p`` (uniform when None): without replacement while
    they last, else with replacement, a repeat getting a ``#2``, ``#3``, ... suffix on its ``user_id``."""
    if not profiles:
        raise ValueError("users: no profiles to draw from")
    m = len(profiles)
    if n <= m:
        if p is None:
            picks = rng.choice(m, n, replace=False)
        else:  # Efraimidis-Spirakis: the n smallest Exp(1)/p keys are a weighted draw without replacement
            picks = np.argsort(rng.exponential(size=m) / p, kind="stable")[:n]
        return [profiles[i] for i in picks]
    picks = rng.choice(m, size=n, replace=True, p=p)
    seen: dict[int, int] = {}
    out: list[UserProfile] = []
    for i in picks.tolist():
        seen[i] = seen.get(i, 0) + 1
        prof = profiles[i]
        out.append(prof if seen[i] == 1 else prof.model_copy(update={"user_id": f"{prof.user_id}#{seen[i]}"}))
    return out
