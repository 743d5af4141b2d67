"""Integer codes of the ids in the logs and sums that grow with them, for the one-pass scan (``.scan``).

Ids come as Parquet dictionaries: a batch's codes are its dictionary's codes looked up once, so no
string is hashed per row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa


class Keys:
    """Integer codes of string ids (arms, users, items, segments) in order of first appearance."""

    def __init__(self, first: Sequence[str] = ()) -> None:
        self.values: list[str] = []
        self._index = pd.Index([], dtype=object)
        self._add(list(dict.fromkeys(str(v) for v in first)))
        self._last: tuple[pa.Array, np.ndarray] | None = None  # the last dictionary seen and its codes

    def __len__(self) -> int:
        return len(self.values)

    def _add(self, new: list[str]) -> None:
        if new:
            self.values += new
            self._index = pd.Index(self.values, dtype=object)

    def codes(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """(n,) int64 code of each value (a null is the string 'None')."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        indices = column.indices
        indices = (indices.fill_null(0) if indices.null_count else indices).to_numpy(zero_copy_only=False)
        if self._last is not None and self._last[0].equals(column.dictionary):  # the batches of a file share it
            mapped = self._last[1]
        else:
            dictionary = np.asarray(column.dictionary.to_pylist(), dtype=object).astype(str)
            mapped = self._index.get_indexer(dictionary)
            if (mapped < 0).any():
                used = pd.unique(indices)  # the batch's dictionary entries in order of first appearance
                new = [int(d) for d in used if mapped[d] < 0 and dictionary[d] not in self._index]
                self._add(list(dict.fromkeys(str(dictionary[d]) for d in new)))
                mapped = self._index.get_indexer(dictionary)
                if (mapped < 0).any():  # entries this batch does not use: not cached, coded again when used
                    return mapped[indices].astype(np.int64)
            self._last = (column.dictionary, mapped.astype(np.int64))
            mapped = self._last[1]
        return mapped[indices] if len(indices) else np.zeros(0, dtype=np.int64)

    def index(self) -> pd.Index:
        """The keys in code order, as a pandas index."""
        return pd.Index(self.values, dtype=object)


class Grid:
    """Named float64 sums over (row, column) pairs of codes — (arm, user), (arm, item), (arm, day) — that grow
    as new codes appear."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.shape = (0, 0)

    def _fit(self, rows: int, cols: int) -> None:
        shape = (max(self.shape[0], rows), max(self.shape[1], cols))
        if shape != self.shape:
            for name, a in self.sums.items():
                grown = np.zeros(shape)
                grown[: a.shape[0], : a.shape[1]] = a
                self.sums[name] = grown
            self.shape = shape

    def add(self, name: str, row: np.ndarray, col: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add ``weights`` (1 each by default) into the cells ``(row, col)`` of the named sum, growing the grid as
        needed."""
        if len(row):
            self._fit(int(row.max()) + 1, int(col.max()) + 1)
        r, c = self.shape
        counts = np.bincount(row * c + col, weights, minlength=r * c).reshape(r, c)
        if name in self.sums:
            self.sums[name] += counts  # in place: a (arm, user) grid is large, and this runs for every batch
        else:
            self.sums[name] = counts.astype(np.float64)

    def get(self, name: str) -> np.ndarray:
        """The named sum (zeros of the grid's shape before anything was added)."""
        return self.sums.get(name, np.zeros(self.shape))


def numbers(batch: pa.RecordBatch, name: str, dtype: type, default: float = 0) -> np.ndarray:
    if name not in batch.schema.names:
        return np.full(batch.num_rows, default, dtype=dtype)
    column = batch.column(name)
    if pa.types.is_boolean(column.type) and not column.null_count:  # unpack the bits: far faster than to_numpy
        bits = np.frombuffer(column.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[column.offset:column.offset + len(column)].view(bool).astype(dtype)
    values = column.to_numpy(zero_copy_only=False)
    if batch.column(name).null_count:
        values = np.where(pd.isna(values), default, values)
    return values.astype(dtype)


def equals(batch: pa.RecordBatch, name: str, value: str) -> np.ndarray:
    """(n,) whether each row of a small-alphabet column (action) is ``value``, compared once per dictionary value."""
    column = batch.column(name)
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    values = np.asarray(column.dictionary.to_pylist(), dtype=object)
    return (values == value)[column.indices.fill_null(0).to_numpy(zero_copy_only=False)]
