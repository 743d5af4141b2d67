"""Text encoders: a fast hashing/random-projection default and an optional sentence-transformers one."""

from __future__ import annotations

import re
import zlib
from typing import Protocol, Sequence

import numpy as np

from recoworld.fixed_order import matmul

_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an and are as at be by for from has have how i in is it its of on or that the this to was were "
    "what when where which who why will with you your we our my me about into over than then so".split()
)


class TextEncoder(Protocol):
    """Turns texts into an (n, dim) float32 matrix."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, one row per text, the same text giving the same row."""
        ...


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stopwords."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS and len(t) > 1]


class HashingEncoder:
    """Bag of words projected onto random Gaussian token vectors (no model, no download).

    Each token's vector is drawn from a generator seeded by ``crc32(token) ^ seed``, so a
    token always maps to the same vector across catalogs and processes. A document is the
    sublinear-tf weighted sum of its token vectors. Texts sharing words get similar vectors,
    which is what makes topic structure visible in the embedding space.
    """

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        if dim < 2:
            raise ValueError("embedding dim must be >= 2")
        self.dim = dim
        self.seed = seed
        self._vectors: dict[str, np.ndarray] = {}

    def _vector(self, token: str) -> np.ndarray:
        vec = self._vectors.get(token)
        if vec is None:
            rng = np.random.default_rng((zlib.crc32(token.encode()) << 16) ^ self.seed)
            vec = rng.standard_normal(self.dim).astype(np.float32)
            self._vectors[token] = vec
        return vec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Per text: the sum of its tokens' random vectors (each seeded by the token and ``seed``), weighted 1 +
        log(count); zeros for a text without tokens."""
        docs = [tokenize(t) for t in texts]
        vocab: dict[str, int] = {}
        cols = np.fromiter((vocab.setdefault(tok, len(vocab)) for doc in docs for tok in doc), dtype=np.int64)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not vocab:
            return out
        rows = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
        table = np.stack([self._vector(t) for t in vocab])
        v = len(vocab)
        chunk = max(1, 4_000_000 // v)  # bound the dense count block to ~16 MB
        for start in range(0, len(docs), chunk):
            stop = min(start + chunk, len(docs))
            sel = slice(*np.searchsorted(rows, [start, stop]))
            counts = np.bincount((rows[sel] - start) * v + cols[sel], minlength=(stop - start) * v)
            counts = counts.reshape(stop - start, v).astype(np.float32)
            weights = np.where(counts > 0, 1.0 + np.log(np.maximum(counts, 1.0)), 0.0).astype(np.float32)
            out[start:stop] = matmul(weights, table)  # not BLAS: the same bits on every CPU
        return out


class SentenceTransformerEncoder:
    """A sentence-transformers model, used when the package and the model are installed locally."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", batch_size: int = 256) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                "embeddings: type 'sentence-transformers' needs `pip install recoworld[embeddings]`"
            ) from exc
        self._model = SentenceTransformer(model)
        self.batch_size = batch_size
        self.dim = int(self._model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The sentence-transformers model's embeddings of ``texts``, as float32."""
        vecs = self._model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def make_encoder(kind: str = "hashing", dim: int = 64, seed: int = 0, model: str | None = None) -> TextEncoder:
    """Build an encoder by name: ``hashing`` (default) or ``sentence-transformers``."""
    if kind == "hashing":
        return HashingEncoder(dim=dim, seed=seed)
    if kind == "sentence-transformers":
        return SentenceTransformerEncoder(model or "all-MiniLM-L6-v2")
    raise ValueError(f"embedding.type: unknown encoder '{kind}' (expected 'hashing' or 'sentence-transformers')")
