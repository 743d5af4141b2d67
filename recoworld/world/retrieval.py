"""The world's random draws and candidate retrieval (compiled parts of the world step).

Each user's uniforms for a step come from a splitmix64 stream seeded by one raw 64-bit draw of
the world's numpy Generator: seeded, independent per user (safe across threads), ~1 ns a number.
Layout of the stream, named by the offsets below: two per slot for the normal of the utility noise,
five per slot for the slot's decisions, one to speak up, one for the session's end, then M candidates.

Imports: numpy, numba, ``recoworld.users.jit``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from recoworld.users.jit import FASTMATH

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


NOISE_DRAWS = 2  # per slot: the two uniforms of the utility noise's normal (Box-Muller)
DECISION_DRAWS = 5  # per slot: click, like, share, comment, leave (recoworld.users.layout R_* order)
SLOT_DRAWS = NOISE_DRAWS + DECISION_DRAWS


@njit(cache=True, inline="always")
def noise_draw(j: int) -> int:
    """Offset of slot ``j``'s two noise uniforms."""
    return NOISE_DRAWS * j


@njit(cache=True, inline="always")
def decision_draws(k: int, j: int) -> int:
    """Offset of slot ``j``'s DECISION_DRAWS uniforms, after the noise of all ``k`` slots."""
    return NOISE_DRAWS * k + DECISION_DRAWS * j


@njit(cache=True, inline="always")
def speak_draw(k: int) -> int:
    """Offset of the uniform that decides whether the user speaks up after a slate of ``k``."""
    return SLOT_DRAWS * k


@njit(cache=True, inline="always")
def session_end_draw(k: int) -> int:
    """Offset of the uniform that decides the session's end (return gap or churn)."""
    return SLOT_DRAWS * k + 1


@njit(cache=True, inline="always")
def candidate_draws(k: int) -> int:
    """Offset of the M uniforms that draw the next candidates."""
    return SLOT_DRAWS * k + 2


@njit(cache=True, inline="always")
def draw_width(k: int, m: int) -> int:
    """Uniforms per user and step: the slots' draws, the two user draws, M candidates."""
    return candidate_draws(k) + m


@njit(cache=True, inline="always", fastmath=FASTMATH)
def fill_uniforms(seed, out) -> None:
    """``out`` filled with uniforms in [0, 1) from the splitmix64 stream of ``seed``."""
    state = seed
    for q in range(len(out)):
        state += _GOLDEN
        z = state
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        out[q] = (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def probe_table(m: int) -> np.ndarray:
    """Scratch for :func:`candidates_from`: an open-addressing set of at least 2M slots (a power of two)."""
    bits, x = 0, 2 * m - 1
    while x > 0:
        x >>= 1
        bits += 1
    return np.empty(1 << max(4, bits), dtype=np.int64)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def candidates_from(r, uni, offset: int, candidates, n_items: int, table) -> None:
    """User ``r``'s M candidates: distinct uniform catalog rows from ``uni[offset:]`` (a row already drawn
    moves to the next row not yet drawn, wrapping around), or rows with repeats when M > n_items.
    ``table`` is scratch from :func:`probe_table` (the rows drawn so far, by linear probing)."""
    m = candidates.shape[1]
    distinct = m <= n_items
    table[:] = -1
    mask = len(table) - 1
    for c in range(m):
        item = min(int(uni[offset + c] * n_items), n_items - 1)
        while distinct:
            h = (item * 40503) & mask
            while table[h] != -1 and table[h] != item:
                h = (h + 1) & mask
            if table[h] == -1:
                table[h] = item
                break
            item = item + 1 if item + 1 < n_items else 0
        candidates[r, c] = item


@njit(cache=True, fastmath=FASTMATH)
def retrieve_kernel(rows, seeds, candidates, n_items: int) -> None:
    """Fresh candidates for users ``rows`` (one seed each)."""
    uni = np.empty(candidates.shape[1])
    table = probe_table(candidates.shape[1])
    for i in range(len(rows)):
        fill_uniforms(seeds[i], uni)
        candidates_from(rows[i], uni, 0, candidates, n_items, table)

