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


def serve_one(candidates: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`serve` for one user: (M,) candidates, (K,) positions; a slate without repeats is checked
    in Python (faster than the compiled call for one row)."""
    slate = candidates[positions]
    if len(set(slate.tolist())) == len(slate):
        return slate, 0
    slates, repeats = serve(candidates[None], positions[None])
    return slates[0], int(repeats[0])


@njit(cache=True)
def _serve(candidates: np.ndarray, positions: np.ndarray, slates: np.ndarray, repeats: np.ndarray) -> None:
    """``slates[i, j] = candidates[i, positions[i, j]]``, then each slot that repeats an earlier slot's
    item takes the next candidate of row i whose item is not in the slate; ``repeats[i]`` counts those
    slots (a slot stays as it is when no candidate is left)."""
    n, k = positions.shape
    asked = np.empty(k, dtype=np.int64)
    for i in range(n):
        dup = False
        for j in range(k):
            item = candidates[i, positions[i, j]]
            slates[i, j] = item
            for jj in range(j):
                if slates[i, jj] == item:
                    dup = True
        if not dup:
            continue  # the common case: served as asked
        asked[:] = slates[i]
        c = 0
        for j in range(1, k):
            seen = False
            for jj in range(j):
                if slates[i, jj] == slates[i, j]:
                    seen = True
                    break
            if not seen:
                continue
            repeats[i] += 1
            while c < candidates.shape[1]:
                fill = candidates[i, c]
                c += 1
                taken = False
                for jj in range(k):
                    if asked[jj] == fill or (jj < j and slates[i, jj] == fill):
                        taken = True  # asked for in this slate, or an earlier fill (candidates repeat items)
                        break
                if not taken:
                    slates[i, j] = fill
                    break
