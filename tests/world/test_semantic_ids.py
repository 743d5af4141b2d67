"""Semantic IDs: residual k-means codes over item embeddings."""

from __future__ import annotations


import numpy as np
import pytest

from recoworld.world.catalog import Catalog
from recoworld.world.semantic_ids import SemanticIds, residual_kmeans, semantic_id_collisions
from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return generate_catalog(SyntheticCatalogConfig(n_items=3000, n_topics=12), seed=3)


def mse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.sum((x - y) ** 2, axis=1)))


def test_reconstruction_error_decreases_per_level(catalog: Catalog) -> None:
    x = catalog.embeddings
    sid = residual_kmeans(x, levels=4, codebook_size=32, seed=0)
    assert isinstance(sid, SemanticIds)
    assert sid.codes.shape == (len(x), 4)
    assert len(sid.codebooks) == 4 and all(cb.shape == (32, x.shape[1]) for cb in sid.codebooks)
    errors = [mse(x, np.zeros_like(x))] + [mse(x, sid.reconstruct(depth=d)) for d in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.6 * errors[0]
    np.testing.assert_allclose(sid.reconstruct(), sid.reconstruct(sid.codes))
    # reconstruct of other codes: the codewords of the given rows
    np.testing.assert_allclose(sid.reconstruct(sid.codes[:5]), sid.reconstruct()[:5])


def test_codes_in_range_and_prefix_strings(catalog: Catalog) -> None:
    sid = residual_kmeans(catalog.embeddings, levels=3, codebook_size=16, seed=1)
    assert sid.codes.dtype.kind == "i"
    assert sid.codes.min() >= 0 and sid.codes.max() < 16
    for level in range(3):
        assert len(np.unique(sid.codes[:, level])) > 8  # codebooks are actually used
    full = sid.prefix_strings(3)
    assert full[0] == "-".join(str(c) for c in sid.codes[0])
    assert sid.prefix_strings(1)[7] == str(sid.codes[7, 0])
    assert all(f.startswith(p + "-") for f, p in zip(full, sid.prefix_strings(2)))
    with pytest.raises(ValueError):
        sid.prefix_strings(4)


def test_deterministic_for_a_seed(catalog: Catalog) -> None:
    x = catalog.embeddings
    a = residual_kmeans(x, seed=5)
    b = residual_kmeans(x, seed=5)
    np.testing.assert_array_equal(a.codes, b.codes)
    for ca, cb in zip(a.codebooks, b.codebooks):
        np.testing.assert_array_equal(ca, cb)
    assert not np.array_equal(a.codes, residual_kmeans(x, seed=6).codes)


def test_same_topic_items_share_first_level_codes(catalog: Catalog) -> None:
    codes = residual_kmeans(catalog.embeddings, levels=2, codebook_size=32, seed=0).codes[:, 0]
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(catalog), size=(2, 100_000))
    keep = i != j
    i, j = i[keep], j[keep]
    same_topic = catalog.topic[i] == catalog.topic[j]
    agree_same = np.mean(codes[i][same_topic] == codes[j][same_topic])
    agree_other = np.mean(codes[i][~same_topic] == codes[j][~same_topic])
    chance = np.sum((np.bincount(codes) / len(codes)) ** 2)
    assert agree_same > 5 * chance, (agree_same, chance)
    assert agree_same > 5 * agree_other, (agree_same, agree_other)


def test_small_inputs_and_duplicates() -> None:
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 distinct rows, 12 items
    sid = residual_kmeans(x, levels=2, codebook_size=64, seed=0)
    assert sid.codebooks[0].shape == (3, 3)  # k = number of distinct rows
    assert len(np.unique(sid.codes[:, 0])) == 3
    np.testing.assert_allclose(sid.reconstruct(depth=1), x, atol=1e-6)
    assert sid.codebooks[1].shape[0] == 1  # residuals are all zero
    assert semantic_id_collisions(sid.codes) == 1.0
    one = residual_kmeans(np.ones((1, 4)), levels=3)
    assert one.codes.tolist() == [[0, 0, 0]]
    with pytest.raises(ValueError):
        residual_kmeans(np.zeros((0, 4)))
    with pytest.raises(ValueError):
        residual_kmeans(np.array([[np.nan, 1.0]]))


def test_collisions() -> None:
    codes = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 4], [0, 0, 0]])
    assert semantic_id_collisions(codes) == 0.5
    assert semantic_id_collisions(np.arange(6).reshape(3, 2)) == 0.0


def test_catalog_semantic_ids_are_cached(catalog: Catalog) -> None:
    codes = catalog.semantic_ids(levels=2, codebook_size=8, seed=0)
    assert codes.shape == (len(catalog), 2) and codes.max() < 8
    assert catalog.semantic_ids(levels=2, codebook_size=8, seed=0) is codes
    np.testing.assert_array_equal(codes, residual_kmeans(catalog.embeddings, 2, 8, 0).codes)
    assert catalog.semantic_ids(levels=3, codebook_size=8, seed=0).shape == (len(catalog), 3)


