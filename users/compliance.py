"""Instruction compliance, written once: how well a slate follows what its user asked for.

The compiled step scores every slate with :func:`slate_compliance` (inlined into the fused
kernel); recommenders and tests use the same functions through the batched wrappers below, so
there is no second (numpy) copy of the rule to drift.

Imports: numpy, numba, ``recoworld.users.instructions`` (NO_TOPIC) and ``recoworld.users.jit``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from recoworld.users.instructions import NO_TOPIC
from recoworld.users.jit import FASTMATH

MORE_SHARE = 0.3  # share of the slate in the wanted topic that earns full compliance
FAMILIAR_TOP = 3  # a user's most-shown topics count as familiar for 'surprise me'


@njit(cache=True, inline="always", fastmath=FASTMATH)
def familiar_mask(exposure: np.ndarray, out: np.ndarray, top: int = FAMILIAR_TOP) -> None:
    """Mark the ``top`` most exposed topics (with exposure > 0) in ``out``; ties go to the lower topic."""
    out[:] = False
    for _ in range(min(top, len(exposure))):
        best, best_v = -1, 0.0
        for t in range(len(exposure)):
            if not out[t] and exposure[t] > best_v:
                best, best_v = t, exposure[t]
        if best < 0:
            break
        out[best] = True


@njit(cache=True, inline="always", fastmath=FASTMATH)
def slate_compliance(slate_topics: np.ndarray, more: int, less: int, surprise: bool, familiar: np.ndarray) -> float:
    """Score in [0, 1]: the mean of the parts the instruction asks for.

    ``more``: share of slate items in the wanted topic, full marks at ``MORE_SHARE``;
    ``less``: full marks with no item of the unwanted topic, falling to 0 at a third of the slate;
    ``surprise``: share of items outside the user's familiar topics, full marks at half the slate.
    Nothing asked: 1."""
    k = len(slate_topics)
    n_more = n_less = n_new = 0
    for j in range(k):
        t = slate_topics[j]
        n_more += t == more
        n_less += t == less
        n_new += not familiar[t]
    total, parts = 0.0, 0
    if more != NO_TOPIC:
        total += min(1.0, n_more / k / MORE_SHARE)
        parts += 1
    if less != NO_TOPIC:
        total += max(0.0, 1.0 - 3.0 * n_less / k)
        parts += 1
    if surprise:
        total += min(1.0, n_new / k / 0.5)
        parts += 1
    return total / parts if parts else 1.0


@njit(cache=True, fastmath=FASTMATH)
def _familiar_rows(exposure, top, out):
    for i in range(exposure.shape[0]):
        familiar_mask(exposure[i], out[i], top)


@njit(cache=True, fastmath=FASTMATH)
def _compliance_rows(slate_topics, more, less, surprise, familiar, out):
    for i in range(slate_topics.shape[0]):
        out[i] = slate_compliance(slate_topics[i], more[i], less[i], surprise[i], familiar[i])


def familiar_topics(exposure: np.ndarray, top: int = FAMILIAR_TOP) -> np.ndarray:
    """(b, T) bool: each user's ``top`` most-shown topics (what 'something different' is measured against)."""
    exposure = np.ascontiguousarray(exposure, dtype=np.float64)
    out = np.zeros(exposure.shape, dtype=np.bool_)
    _familiar_rows(exposure, int(top), out)
    return out


def compliance(slate_topics: np.ndarray, more: np.ndarray, less: np.ndarray, surprise: np.ndarray, familiar: np.ndarray) -> np.ndarray:
    """(b,) :func:`slate_compliance` of each row's slate (topics (b, K)) with its user's instruction."""
    slate_topics = np.ascontiguousarray(slate_topics, dtype=np.int64)
    out = np.empty(len(slate_topics))
    _compliance_rows(slate_topics, np.asarray(more, dtype=np.int64), np.asarray(less, dtype=np.int64),
                     np.asarray(surprise, dtype=np.bool_), np.ascontiguousarray(familiar, dtype=np.bool_), out)
    return out
