"""Compile settings and the small numerics every compiled part of the world step shares."""

import math

from numba import njit

# reassociation lets loops over embedding dimensions vectorise; NaN and inf semantics are kept
FASTMATH = {"reassoc", "contract", "nsz", "arcp", "afn"}  # no nnan / ninf: NaN and inf stay meaningful
PARALLEL_USERS = 256  # batched kernels over users: smaller batches run on one thread


@njit(cache=True, inline="always", fastmath=FASTMATH)
def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always", fastmath=FASTMATH)
def decay(x: float, factor: float) -> float:
    """``x * factor``, flushed to zero before it turns denormal (denormal arithmetic is ~100x slower)."""
    y = x * factor
    return y if abs(y) > 1e-20 else 0.0


@njit(cache=True, inline="always", fastmath=FASTMATH)
def normal(u1: float, u2: float) -> float:
    """Box-Muller: a standard normal from two uniforms in [0, 1)."""
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True, inline="always")
def has_consumed(bits, r: int, item: int) -> bool:
    """Did user ``r`` click ``item`` before? (``bits`` is the (B, ceil(N / 8)) uint8 bitset.)"""
    return (bits[r, item >> 3] >> (item & 7)) & 1 == 1
