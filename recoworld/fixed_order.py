"""Matrix products whose rounding is the same on every machine: the world's seeded runs stay bit for bit.

A BLAS product (``a @ b``) picks its kernel by CPU at run time, and kernels sum in different orders: the
same seed gave different user tastes, and so different trajectories and logs, on an AVX2 and an AVX-512
machine (OpenBLAS's Haswell, Zen and SkylakeX kernels). Every product that feeds a seeded world goes
through :func:`matmul` instead: each entry is summed over ``k`` in ascending order in float64, in
compiled code without fast-math (no reassociation, no fused multiply-add), so a row's result also does
not depend on the other rows of the batch.

Imports: numpy, numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = a @ b`` for 2-D arrays, summed as :func:`matmul` sums (also callable from compiled code)."""
    for i in range(a.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 0.0
        for k in range(a.shape[1]):
            w = np.float64(a[i, k])
            if w != 0.0:  # sparse rows (interests, token counts) skip their zeros
                for j in range(b.shape[1]):
                    out[i, j] += w * np.float64(b[k, j])


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D ``a`` (n, k) and ``b`` (k, m) or 1-D ``b`` (k,), in float64, summed in a fixed order
    (the module docstring says why): the same bits on every CPU and for any batch of rows."""
    a = np.ascontiguousarray(a)
    if a.ndim != 2 or b.ndim not in (1, 2) or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not multiply")
    b2 = np.ascontiguousarray(b if b.ndim == 2 else b[:, None])
    out = np.empty((a.shape[0], b2.shape[1]), dtype=np.float64)
    matmul_into(a, b2, out)
    return out if b.ndim == 2 else out[:, 0]


_FEW = 24  # fewer values than this are rounded one by one (quicker than the array operations)
_SURE = 1e-6  # a scaled value this far from a half rounds the same from its float product as from its exact value


def round_as_python(x: np.ndarray, ndigits: int) -> np.ndarray:
    """``[round(v, ndigits) for v in x]`` as a float64 array, bit for bit, without a Python call per value.

    Python rounds each float's exact decimal value (half to even) and reads the result back as the nearest
    float. ``rint(x * 10**ndigits) / 10**ndigits`` is that wherever the scaled product lies clearly off a half
    (the product's own rounding error is far smaller than ``_SURE``, and the division is correctly rounded);
    the rare values near a half, and huge or non-finite ones, go through ``round`` itself."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < _FEW:
        return np.array([round(v, ndigits) for v in x.ravel().tolist()], dtype=np.float64).reshape(x.shape)
    scale = 10.0**ndigits
    p = x * scale
    out = np.rint(p) / scale
    with np.errstate(invalid="ignore"):
        unsure = ~(np.abs(p) < 1e9) | (np.abs(np.abs(p - np.floor(p)) - 0.5) < _SURE)
    for i in np.flatnonzero(unsure).tolist():
        out.flat[i] = round(float(x.flat[i]), ndigits)
    return out
