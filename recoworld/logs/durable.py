"""Durable writes into a run folder: each file written to a ``.tmp`` beside it, fsynced and renamed
(:func:`atomic_write_bytes`), a pickle whose bytes do not depend on set order (:func:`stable_pickle`),
a file's SHA-256, and the numbered write points a test can kill the process at (``KILL_ENV``).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import signal
from pathlib import Path
from typing import Any

from recoworld.logs.disk import room_for

def table_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


KILL_ENV = "RECOWORLD_KILL_AT"  # tests: SIGKILL this process at the N-th write point (1-based)
_write_points = 0
_write_labels: list[str] = []  # the labels of the points passed (while KILL_ENV is set)


def write_point(label: str) -> None:
    """A point where a kill is tested: before, inside and after every file the run folder writes.
    With ``RECOWORLD_KILL_AT=N`` in the environment the process kills itself (SIGKILL) at the N-th."""
    global _write_points
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    _write_points += 1
    _write_labels.append(label)
    if _write_points == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


def reset_write_points() -> None:
    global _write_points
    _write_points = 0
    _write_labels.clear()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it to ``path`` and fsync the folder: once this returns the file exists on disk."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    write_point(f"written {path.name}")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    write_point(f"renamed {path.name}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file (write, fsync, rename, fsync)."""
    write_point(f"before {path.name}")
    tmp = path.with_name(path.name + ".tmp")
    with room_for(path, tmp):
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
            write_point(f"inside {path.name}")
            fh.write(data[len(data) // 2 :])
        _replace_durably(tmp, path)


class _SortedSetPickler(pickle.Pickler):
    """The C pickler with every set written as its sorted items (a persistent id that
    :func:`stable_unpickle` turns back into the set), so equal objects give equal bytes whatever the
    hash seed; several times faster than a Python pickler that reorders sets."""

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is not set and kind is not frozenset:
            return None
        try:
            items = sorted(obj)
        except TypeError:
            items = list(obj)
        return kind.__name__, items


class _SortedSetUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        kind, items = pid
        if kind == "set":
            return set(items)
        if kind == "frozenset":
            return frozenset(items)
        raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")


def stable_pickle(obj: Any) -> bytes:
    """``pickle.dumps`` whose bytes do not depend on PYTHONHASHSEED (pydantic models hold sets); read
    them with :func:`stable_unpickle`."""
    out = io.BytesIO()
    _SortedSetPickler(out, protocol=5).dump(obj)
    return out.getvalue()


def stable_unpickle(data: bytes) -> Any:
    """The object :func:`stable_pickle` wrote (also reads plain pickles)."""
    return _SortedSetUnpickler(io.BytesIO(data)).load()
