"""New users' tastes are computed in one compiled call with the bits of the numpy expressions it replaced: a
seeded world's users (and so every pinned trajectory) must not change."""

from __future__ import annotations

import numpy as np
import pytest

from recoworld.fixed_order import matmul
from recoworld.users import layout as UL
from recoworld.users.parametric import _pairwise_sum, _start_tastes


def numpy_start(topic_state: np.ndarray, centroids: np.ndarray, noise: np.ndarray, taste_noise: float,
                given: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The interests and tastes as numpy expressions compute them (what ``UserBatch._start`` did before)."""
    interest = topic_state[:, UL.INTEREST, :]
    interest /= np.maximum(interest.sum(1, keepdims=True), 1e-9)
    dim = centroids.shape[1]
    noise = noise.astype(np.float32) * taste_noise / np.sqrt(dim)
    taste = (matmul(interest, centroids) + noise).astype(np.float32)
    for r, vector in given.items():
        taste[r] = vector
    taste /= np.maximum(np.sqrt(np.add.reduce(taste * taste, axis=1, keepdims=True)), 1e-9)
    return topic_state, taste


@pytest.mark.parametrize("n", [1, 5, 8, 13, 16, 64, 127, 128, 129, 200, 300, 1000, 4099])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_sum_is_numpys_sum(n: int, dtype: type) -> None:
    rng = np.random.default_rng(n)
    for _ in range(50):
        a = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).astype(dtype)
        assert _pairwise_sum(a) == np.add.reduce(a)


@pytest.mark.parametrize("topics, dim", [(16, 64), (5, 3), (19, 32), (40, 130), (200, 384)])
def test_tastes_are_the_numpy_expressions_bits(topics: int, dim: int) -> None:
    rng = np.random.default_rng(topics * 1000 + dim)
    b = 300
    state = np.zeros((b, 5, topics))
    for r in range(b):  # a few interests each, some users with none
        k = rng.integers(0, min(topics, 6) + 1)
        state[r, UL.INTEREST, rng.choice(topics, k, replace=False)] = np.round(rng.dirichlet(np.ones(k)), 4) if k else 0
    state[:, UL.DISLIKE] = rng.random((b, topics)) < 0.1
    centroids = rng.standard_normal((topics, dim)).astype(np.float32)
    noise = rng.standard_normal((b, dim))
    given = {3: rng.standard_normal(dim).astype(np.float32), 17: rng.standard_normal(dim).astype(np.float32)}
    expected_state, expected_taste = numpy_start(state.copy(), centroids, noise, 0.35, given)
    taste = np.empty((b, dim), dtype=np.float32)
    _start_tastes(state, centroids, noise, 0.35, np.array(list(given)), np.array(list(given.values())), taste)
    assert np.array_equal(state, expected_state)
    assert taste.tobytes() == expected_taste.tobytes()
