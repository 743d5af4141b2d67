"""A run's folder: its manifest (what it holds, rewritten after every completed day), its day tables,
and the checkpoint that lets a killed run resume; :func:`read_table` reads one table of every day.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from recoworld.logs.disk import room_for
from recoworld.logs.durable import (
    _replace_durably,
    atomic_write_bytes,
    stable_pickle,
    stable_unpickle,
    table_sha256,
    write_point,
)
from recoworld.logs.lock import LOCK_NAME
from recoworld.logs.records import TABLES


class DayFile(BaseModel):
    """One Parquet file of one table and day."""

    model_config = ConfigDict(extra="forbid")

    table: str
    day: int
    path: str = Field(description="Relative to the run folder.")
    rows: int
    sha256: str


class RunManifest(BaseModel):
    """What a run folder holds; rewritten after every completed day."""

    model_config = ConfigDict(extra="forbid")

    run: str
    scenario_sha256: str = Field(description="Hash of the resolved scenario; a resume must match it.")
    seed: int
    engine: str
    shards: int
    arms: list[str]
    days_total: int
    days_completed: int = 0
    status: Literal["running", "stopped", "complete"] = Field(
        "running", description="stopped: ended early by the LLM budget (see ``stopped``); --resume carries on."
    )
    stopped: str = Field("", description="Why the run stopped before its last day, if it did.")
    files: list[DayFile] = Field(default_factory=list)

    def paths(self, table: str) -> list[str]:
        """The day files of ``table``, in the order they were written."""
        return [f.path for f in self.files if f.table == table]


DAY_FILE = re.compile(r"^day=(\d{3,})\.parquet$")
CHECKPOINT_MAGIC = b"RWCKPT1\n"


# ------------------------------------------------------------------ the run folder
class RunFolder:
    """A run's output folder: day tables, manifest and the checkpoint that lets a killed run resume."""

    MARKER = "manifest.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        """The manifest file, whose presence marks a run folder."""
        return self.path / self.MARKER

    @property
    def checkpoint_path(self) -> Path:
        """The latest checkpoint (the run's state after its last finished day)."""
        return self.path / "checkpoint.pkl"

    def exists(self) -> bool:
        """Whether the folder holds a run (its manifest)."""
        return self.manifest_path.is_file()

    def is_blank(self) -> bool:
        """No folder, or one holding nothing but unfinished ``.tmp`` files (a run killed before its manifest)
        and the run lock."""
        return not self.path.is_dir() or all(p.name.endswith(".tmp") or p.name == LOCK_NAME for p in self.path.iterdir())

    def prepare_fresh(self) -> None:
        """Create the folder, or clear a previous run in it; a folder holding anything else is refused."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"run.output: '{self.path}' exists and is not a folder")
        if self.path.is_dir() and not self.is_blank() and not self.exists():
            raise ValueError(f"run.output: folder '{self.path}' is not empty and holds no RecoWorld run; choose another")
        self.path.mkdir(parents=True, exist_ok=True)
        for table in TABLES:
            shutil.rmtree(self.path / table, ignore_errors=True)
        for name in (self.MARKER, "checkpoint.pkl", "checkpoint.prev.pkl", "profiles.pkl", "scenario.yaml", "users.parquet", "catalog.parquet"):
            (self.path / name).unlink(missing_ok=True)
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink()

    def read_manifest(self) -> RunManifest:
        """The run's manifest, as last written."""
        try:
            return RunManifest.model_validate_json(self.manifest_path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{self.path}: no RecoWorld run here (no {self.MARKER})") from None
        except ValueError as exc:
            raise ValueError(f"{self.manifest_path}: not a valid manifest ({str(exc).splitlines()[0]})") from None

    def write_manifest(self, manifest: RunManifest) -> None:
        """Writes the manifest durably (a kill leaves the old one or the new one, never half of one)."""
        atomic_write_bytes(self.manifest_path, (manifest.model_dump_json(indent=2) + "\n").encode())

    def write_text(self, name: str, text: str) -> None:
        """Writes a text file into the folder durably."""
        atomic_write_bytes(self.path / name, text.encode())

    def write_table(self, name: str, table: pa.Table) -> None:
        """A whole-run table such as ``users.parquet``."""
        path = self.path / f"{name}.parquet"
        write_point(f"before {path.name}")
        tmp = self.path / f"{name}.parquet.tmp"
        with room_for(path, tmp):
            pq.write_table(table, tmp)
            _replace_durably(tmp, path)

    def write_day(self, table_name: str, day: int, table: pa.Table) -> DayFile:
        """Write one table's rows of one day; the file appears whole or not at all, and is on disk
        (fsync'd, folder too) before it is returned for the manifest to list."""
        folder = self.path / table_name
        folder.mkdir(exist_ok=True)
        rel = f"{table_name}/day={day:03d}.parquet"
        write_point(f"before {rel}")
        tmp = self.path / (rel + ".tmp")
        with room_for(self.path / rel, tmp):
            pq.write_table(table, tmp, compression="zstd")
            _replace_durably(tmp, self.path / rel)
        return DayFile(table=table_name, day=day, path=rel, rows=table.num_rows, sha256=table_sha256(self.path / rel))

    def drop_days_from(self, day: int) -> None:
        """Remove day files of ``day`` and later, and unfinished ``.tmp`` files (left by a run killed
        mid-day); other files (a stray ``day=x.parquet``) are left alone."""
        for table in TABLES:
            folder = self.path / table
            if folder.is_dir():
                for f in folder.iterdir():
                    match = DAY_FILE.match(f.name)
                    if f.name.endswith(".tmp") or (match is not None and int(match.group(1)) >= day):
                        f.unlink()

    def verify_days(self, manifest: RunManifest, before: int) -> None:
        """Every day file the manifest lists for days before ``before`` exists with its SHA-256;
        else a one-line ValueError naming the damaged file."""
        for f in manifest.files:
            if f.day >= before:
                continue
            path = self.path / f.path
            if not path.is_file():
                raise ValueError(f"--resume: {path} is missing (the manifest lists it); the run cannot resume")
            if table_sha256(path) != f.sha256:
                raise ValueError(f"--resume: {path} is damaged (its SHA-256 differs from the manifest's); "
                                 "the run cannot resume")

    @staticmethod
    def snapshot(state: Any) -> tuple[bytes, list[bytes]]:
        """``state`` pickled now, numpy arrays as out-of-band buffers copied out (the state may change next)."""
        buffers: list[pickle.PickleBuffer] = []
        try:
            head = pickle.dumps(state, protocol=5, buffer_callback=buffers.append)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ValueError(f"checkpoint: the run's state cannot be saved ({exc})") from None
        return head, [bytes(b.raw()) for b in buffers]

    @property
    def previous_checkpoint_path(self) -> Path:
        """The checkpoint before the latest, kept until the latest is safely written."""
        return self.path / "checkpoint.prev.pkl"

    def save_checkpoint(self, snapshot: tuple[bytes, list[bytes]]) -> None:
        """Write a :meth:`snapshot` with its SHA-256, fsync it and rename it into place (the one before
        is kept as ``checkpoint.prev.pkl``): survives the process being killed at any moment."""
        head, buffers = snapshot
        sizes = np.array([len(head), len(buffers), *(len(b) for b in buffers)], dtype=np.int64).tobytes()
        digest = hashlib.sha256(sizes)
        for part in (head, *buffers):
            digest.update(part)
        path = self.checkpoint_path
        write_point("before checkpoint.pkl")
        tmp = path.with_name("checkpoint.pkl.tmp")
        with room_for(path, tmp):
            with open(tmp, "wb") as fh:
                fh.write(CHECKPOINT_MAGIC + digest.digest())
                fh.write(sizes)
                fh.write(head)
                write_point("inside checkpoint.pkl")
                for b in buffers:
                    fh.write(b)
            if path.exists():
                os.replace(path, self.previous_checkpoint_path)
            _replace_durably(tmp, path)

    def remove_checkpoints(self) -> None:
        """A complete run's checkpoints and unfinished ``.tmp`` files go (also what a kill between its last
        manifest and this left behind: a resume of the complete run calls this again)."""
        self.checkpoint_path.unlink(missing_ok=True)
        write_point("removed checkpoint.pkl")
        self.previous_checkpoint_path.unlink(missing_ok=True)
        for tmp in [*self.path.glob("*.tmp"), *self.path.glob("*/*.tmp")]:
            tmp.unlink()

    def load_checkpoint(self) -> Any:
        """The newest checkpoint that passes its checksum (falling back to the one before); a
        ValueError naming the file when none does, ``FileNotFoundError`` when there is none."""
        candidates = [p for p in (self.checkpoint_path, self.previous_checkpoint_path) if p.is_file()]
        if not candidates:
            raise FileNotFoundError(f"{self.path}: no checkpoint")
        errors = []
        for path in candidates:
            try:
                return self._read_checkpoint(path)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] + ("" if len(errors) == 1 else "; the checkpoint before it too"))

    @staticmethod
    def _read_checkpoint(path: Path) -> Any:
        data = memoryview(path.read_bytes())
        damaged = ValueError(f"--resume: {path} is damaged (fails its checksum); the run cannot resume from it")
        header = len(CHECKPOINT_MAGIC) + 32
        if len(data) < header + 16 or bytes(data[: len(CHECKPOINT_MAGIC)]) != CHECKPOINT_MAGIC:
            raise damaged
        expected, body = bytes(data[len(CHECKPOINT_MAGIC) : header]), data[header:]
        if hashlib.sha256(body).digest() != expected:
            raise damaged
        n_head, n_buf = (int(v) for v in np.frombuffer(body[:16], dtype=np.int64))
        sizes = np.frombuffer(body[16 : 16 + 8 * n_buf], dtype=np.int64)
        at = 16 + 8 * n_buf
        head = body[at : at + n_head]
        at += n_head
        buffers = []
        for size in sizes:
            buffers.append(bytearray(body[at : at + int(size)]))  # writable: restored arrays are updated in place
            at += int(size)
        try:
            return pickle.loads(head, buffers=buffers)
        except Exception as exc:  # noqa: BLE001 - a checksum-valid file from another version of the code
            raise ValueError(f"--resume: {path} cannot be loaded ({type(exc).__name__}); the run cannot resume") from None

    def write_pickle(self, name: str, obj: Any) -> None:
        """Pickled with sets sorted: identical runs give identical bytes."""
        atomic_write_bytes(self.path / name, stable_pickle(obj))

    def read_pickle(self, name: str) -> Any:
        """The object pickled under ``name`` by :meth:`write_pickle`."""
        try:
            return stable_unpickle((self.path / name).read_bytes())
        except FileNotFoundError:
            raise ValueError(f"{self.path}: {name} is missing; the run cannot resume") from None
        except Exception as exc:  # noqa: BLE001 - truncated or damaged
            raise ValueError(f"--resume: {self.path / name} is damaged ({type(exc).__name__}); the run cannot resume") from None


def read_table(run_dir: str | Path, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """All days of one table of a run as one frame (dictionary columns come back as categoricals)."""
    folder = RunFolder(run_dir)
    manifest = folder.read_manifest()
    if table in ("users", "catalog"):
        return pd.read_parquet(folder.path / f"{table}.parquet", columns=columns)
    if table not in TABLES:
        raise ValueError(f"read_table: unknown table '{table}' (known: users, catalog, {', '.join(TABLES)})")
    paths = [folder.path / p for p in manifest.paths(table)]
    if not paths:
        return pd.DataFrame(columns=columns or [])
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths], promote_options="permissive").to_pandas()
