"""``round_as_python`` rounds an array exactly as Python's ``round`` rounds each value (profiles state their
interest weights with ``round``; a reset builds the same weights from arrays and must match to the bit)."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.fixed_order import round_as_python


def halves(ndigits: int) -> np.ndarray:
    """Floats at, just above and just below the decimal halves of the last kept digit: where a float product's
    rounding could pick the other neighbour."""
    mid = (np.arange(20_000) + 0.5) / 10.0**ndigits
    return np.concatenate([mid, np.nextafter(mid, 2.0), np.nextafter(mid, -2.0), -mid])


@pytest.mark.parametrize("ndigits", [0, 2, 4, 6])
def test_every_value_rounds_to_pythons_bits(ndigits: int) -> None:
    rng = np.random.default_rng(ndigits)
    xs = np.concatenate([[0.123456789] * 3,
        rng.random(200_000), rng.dirichlet(np.full(5, 0.3), 20_000).ravel(), -rng.random(1_000) * 50, halves(ndigits),
        [0.0, -0.0, 1e12, -3e15, np.inf, -np.inf, np.nan, 5e-5, 1.5e-4, 2.5e-4, 0.125, 2.675],
    ])
    got = round_as_python(xs, ndigits)
    want = np.array([round(v, ndigits) for v in xs.tolist()])
    differ = ~((got.view(np.int64) == want.view(np.int64)) | (np.isnan(got) & np.isnan(want)))
    assert not differ.any(), f"{differ.sum()} values differ, first {xs[differ][:5]}: {got[differ][:5]} vs {want[differ][:5]}"


def test_a_few_values_round_alike() -> None:
    xs = np.array([[0.12345, 2.5e-5], [0.99995, 1.0]])
    assert round_as_python(xs, 4).tolist() == [[round(v, 4) for v in row] for row in xs.tolist()]
