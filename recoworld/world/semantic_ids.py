"""Semantic IDs: residual k-means codes over item embeddings (coarse-to-fine item tokens)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_CHUNK_ROWS = 32_768  # rows per distance block: bounds memory at chunk x k floats


@dataclass
class SemanticIds:
    """Codes (N, levels) and one codebook (k_l, D) per level; item ≈ sum of its codewords."""

    codes: np.ndarray
    codebooks: list[np.ndarray] = field(default_factory=list)

    @property
    def levels(self) -> int:
        """Levels of the residual codes (code length per item)."""
        return self.codes.shape[1]

    def reconstruct(self, codes: np.ndarray | None = None, depth: int | None = None) -> np.ndarray:
        """(N, D) sum of the codewords of ``codes`` (default: the fitted ones), over the first ``depth`` levels."""
        codes = self.codes if codes is None else np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.levels:
            raise ValueError(f"semantic_ids: codes must have shape (N, {self.levels}), got {codes.shape}")
        depth = self.levels if depth is None else depth
        out = np.zeros((codes.shape[0], self.codebooks[0].shape[1]), dtype=self.codebooks[0].dtype)
        for level in range(depth):
            out += self.codebooks[level][codes[:, level]]
        return out

    def prefix_strings(self, depth: int | None = None) -> list[str]:
        """Codes of the first ``depth`` levels as strings like ``"12-5-33"``."""
        depth = self.levels if depth is None else depth
        if not 1 <= depth <= self.levels:
            raise ValueError(f"semantic_ids: depth must be in [1, {self.levels}], got {depth}")
        cols = [self.codes[:, level].astype(str) for level in range(depth)]
        out = cols[0].astype(object)
        for col in cols[1:]:
            out = out + "-" + col.astype(object)
        return list(out)


def residual_kmeans(
    x: np.ndarray, levels: int = 3, codebook_size: int = 64, seed: int = 0, n_iter: int = 20
) -> SemanticIds:
    """Residual quantisation: k-means on ``x``, then on ``x - c1[code1]``, and so on per level.

    Each level uses ``k = min(codebook_size, distinct rows of its input)`` clusters, k-means++
    initialisation from ``np.random.default_rng(seed)``, at most ``n_iter`` Lloyd iterations and
    re-seeds empty clusters with the points farthest from their centre.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"semantic_ids: expected a non-empty (N, D) matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("semantic_ids: embeddings contain NaN or infinite values")
    if levels < 1 or codebook_size < 1 or n_iter < 0:
        raise ValueError("semantic_ids: levels and codebook_size must be >= 1, n_iter >= 0")
    rng = np.random.default_rng(seed)
    residual = x.copy()
    codes = np.empty((x.shape[0], levels), dtype=np.int64)
    codebooks: list[np.ndarray] = []
    for level in range(levels):
        k = min(codebook_size, _n_distinct_rows(residual))
        centers, labels = _kmeans(residual, k, rng, n_iter)
        codes[:, level] = labels
        codebooks.append(centers)
        residual -= centers[labels]
    return SemanticIds(codes=codes, codebooks=codebooks)


def semantic_id_collisions(codes: np.ndarray) -> float:
    """Share of items whose full code is shared with at least one other item."""
    codes = np.asarray(codes)
    if codes.shape[0] == 0:
        return 0.0
    _, inverse, counts = np.unique(codes.reshape(len(codes), -1), axis=0, return_inverse=True, return_counts=True)
    return float(np.mean(counts[inverse.ravel()] > 1))


# ----------------------------------------------------------------------- internals
def _n_distinct_rows(x: np.ndarray) -> int:
    rows = np.ascontiguousarray(x + 0.0)  # folds -0.0 into 0.0 so equal rows have equal bytes
    return len(np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()))


def _assign(x: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre and squared distance to it, via ||x||^2 - 2 x.c + ||c||^2 in float32 row blocks."""
    c = centers.astype(np.float32)
    neg2_ct = np.ascontiguousarray(-2.0 * c.T)
    c_sq = np.einsum("kd,kd->k", c, c)
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, len(x))
        d = x[start:stop] @ neg2_ct
        d += c_sq
        lab = np.argmin(d, axis=1)
        labels[start:stop] = lab
        dist[start:stop] = np.take_along_axis(d, lab[:, None], axis=1)[:, 0] + x_sq[start:stop]
    np.maximum(dist, 0.0, out=dist)
    return labels, dist


def _kmeans_pp(x: np.ndarray, x_sq: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: indices of k rows, each next one drawn with probability proportional to D(x)^2."""
    n = len(x)
    idx = [int(rng.integers(n))]
    # einsum matvecs (no BLAS threads): hundreds of tiny BLAS calls are slow on a busy machine
    d2 = np.maximum(x_sq - 2.0 * np.einsum("nd,d->n", x, x[idx[0]]) + x_sq[idx[0]], 0.0)
    for _ in range(1, k):
        cum = np.cumsum(d2, dtype=np.float64)
        if cum[-1] > 0:
            nxt = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), n - 1)
        else:  # every point coincides with a centre (only possible through rounding)
            nxt = int(rng.integers(n))
        idx.append(nxt)
        np.minimum(d2, np.maximum(x_sq - 2.0 * np.einsum("nd,d->n", x, x[nxt]) + x_sq[nxt], 0.0), out=d2)
    return np.asarray(idx)


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm from k-means++ seeds; returns centres (k, D) float64 and labels (N,).

    Distances are computed in float32 (BLAS speed), centre means are accumulated in float64.
    """
    if k == 1:
        return x.mean(axis=0, keepdims=True), np.zeros(len(x), dtype=np.int64)
    x32 = x.astype(np.float32)
    x_sq = np.einsum("nd,nd->n", x32, x32)
    centers = x[_kmeans_pp(x32, x_sq, k, rng)]
    x_cols = np.ascontiguousarray(x.T)  # one bincount per dimension sums the members of each cluster
    labels, dist = _assign(x32, x_sq, centers)
    for _ in range(n_iter):
        counts = np.bincount(labels, minlength=k)
        present = counts > 0
        sums = np.stack([np.bincount(labels, weights=col, minlength=k) for col in x_cols], axis=1)
        centers[present] = sums[present] / counts[present, None]
        empty = np.flatnonzero(~present)
        if len(empty):  # re-seed each empty cluster with one of the farthest points
            far = np.argpartition(dist, -len(empty))[-len(empty):]
            centers[empty] = x[far]
        new_labels, dist = _assign(x32, x_sq, centers)
        if len(empty) == 0 and np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return centers, labels
