"""From Gym actions to served slates, for RecoWorld-v0, the vector env and the SB3 VecEnv: the one check
of an action batch and the one rule for a slot that repeats an item.

A repeated slot is not refused: ``MultiDiscrete.sample()`` (and so SB3's exploration) draws repeated
positions (and two positions can hold one item when a catalog is smaller than M candidates). The
first slot with an item shows it; each later slot with the same item takes the next candidate, in
candidate order, whose item is not in the slate (deterministic; a slate without repeats is served
unchanged). The number of such slots is reported per env as ``info["duplicate_positions"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit


def check_actions(actions: Any, shape: tuple[int, ...], high: int, what: str, name: str) -> np.ndarray:
    """``actions`` as int64 of ``shape`` with every value in [0, high), or one ValueError naming
    ``name`` (``action``/``actions``) and what is wrong; values are reported as given (no int overflow)."""
    a = np.asarray(actions)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if a.dtype.kind not in "iu":
        if not (a.dtype.kind == "f" and np.all(a == np.round(a))):
            raise ValueError(f"{name}: expected integers, got dtype {a.dtype}")
        if not np.all(np.abs(a) < 2**53):  # inf, or too large to be an index: report the values as given
            raise ValueError(f"{name}: {what} must lie in [0, {high}), got {_range(a)}")
        a = a.astype(np.int64)
    if a.size <= 64:  # a few small ints: Python's min/max beat two numpy reductions
        values = a.ravel().tolist()
        lo, hi = min(values), max(values)
    else:
        lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi >= high:
        raise ValueError(f"{name}: {what} must lie in [0, {high}), got values from {lo} to {hi}")
    return a


def _range(a: np.ndarray) -> str:
    return str(a.ravel().tolist()) if a.size <= 16 else f"values from {a.min()} to {a.max()}"


def serve(candidates: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) catalog rows served for (N, K) candidate ``positions`` into (N, M) ``candidates``, with
    no item twice in a row where the candidates allow it, and the number of slots that repeated an
    earlier slot's item, per row (see the module docstring)."""
    slates = np.empty(positions.shape, dtype=np.int64)
    repeats = np.zeros(len(positions), dtype=np.int64)
    _serve(candidates, positions, slates, repeats)
    return slates, repeats


def serve_one(candidates: np.ndarray, action: Any, k: int, high: int) -> tuple[np.ndarray, int]:
    """One user's slate for ``action``, ``k`` candidate positions into the (M,) ``candidates``, checked as
    :func:`check_actions` checks it (named ``action``, values in [0, ``high``)), and how many of its slots repeated
    an earlier slot's item.
    An int64 array of shape (k,) (what ``MultiDiscrete.sample()`` and SB3 give) is checked and served in one
    compiled call; anything else, or a value out of range, goes through :func:`check_actions` and its error."""
    slate = np.empty(k, dtype=np.int64)
    if type(action) is np.ndarray and action.dtype == np.int64 and action.shape == (k,):
        repeats = _serve_checked(candidates, action, high, slate)
        if repeats >= 0:
            return slate, repeats
    positions = check_actions(action, (k,), high, "candidate positions", "action")
    return slate, _serve_checked(candidates, np.ascontiguousarray(positions, dtype=np.int64), high, slate)


@njit(cache=True)
def _serve_checked(candidates: np.ndarray, positions: np.ndarray, high: int, slate: np.ndarray) -> int:
    """:func:`_serve` of one row into ``slate``, after checking every position lies in [0, high): the slots that
    repeated an item, or -1 (nothing served) when a position is out of range."""
    for j in range(len(positions)):
        if positions[j] < 0 or positions[j] >= high:
            return -1
    return _serve_row(candidates, positions, slate, np.empty(len(positions), dtype=np.int64))


@njit(cache=True)
def _serve(candidates: np.ndarray, positions: np.ndarray, slates: np.ndarray, repeats: np.ndarray) -> None:
    """``slates[i, j] = candidates[i, positions[i, j]]``, then each slot that repeats an earlier slot's
    item takes the next candidate of row i whose item is not in the slate; ``repeats[i]`` counts those
    slots (a slot stays as it is when no candidate is left)."""
    asked = np.empty(positions.shape[1], dtype=np.int64)
    for i in range(positions.shape[0]):
        repeats[i] += _serve_row(candidates[i], positions[i], slates[i], asked)


@njit(cache=True, inline="always")
def _serve_row(candidates: np.ndarray, positions: np.ndarray, slate: np.ndarray, asked: np.ndarray) -> int:
    """One row of :func:`_serve` (``asked``: (K,) scratch); the number of slots that repeated an item."""
    k = len(positions)
    dup = False
    for j in range(k):
        item = candidates[positions[j]]
        slate[j] = item
        for jj in range(j):
            if slate[jj] == item:
                dup = True
    if not dup:
        return 0  # the common case: served as asked
    asked[:] = slate
    repeats, c = 0, 0
    for j in range(1, k):
        seen = False
        for jj in range(j):
            if slate[jj] == slate[j]:
                seen = True
                break
        if not seen:
            continue
        repeats += 1
        while c < len(candidates):
            fill = candidates[c]
            c += 1
            taken = False
            for jj in range(k):
                if asked[jj] == fill or (jj < j and slate[jj] == fill):
                    taken = True  # asked for in this slate, or an earlier fill (candidates repeat items)
                    break
            if not taken:
                slate[j] = fill
                break
    return repeats
