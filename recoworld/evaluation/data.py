"""A run folder's logs opened for evaluation, with what is missing said plainly.

The large tables (impressions, sessions, off-policy probabilities) stay on disk as :class:`LogTable`:
read in batches by Arrow's dataset scanner, never whole, so a report's memory does not grow with the
length of the logs. The small ones (creators, items, LLM usage, users, catalog) are pandas frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from recoworld.logs.folder import RunFolder, RunManifest, read_table

from recoworld.logs.records import TABLES
from recoworld.scenario import Scenario, load_scenario

LARGE = ("impressions", "sessions", "ope")  # read in batches from their day files
BATCH_ROWS = 1 << 20  # rows a batch holds at most
REQUIRED = {
    "impressions": ["arm", "day", "session", "step", "position", "user", "item", "creator", "topic", "action",
                    "clicked", "watch_seconds", "reward", "propensity"],
    "sessions": ["arm", "day", "session", "user", "slates", "reviewed", "clicks", "churned", "return_gap_days"],
}


class LogTable:
    """One large table of a run: its Parquet day files, read by Arrow's dataset scanner in batches of at most
    ``BATCH_ROWS`` rows in day order; or a frame, for logs built in memory (the same code reads both)."""

    def __init__(self, paths: Sequence[Path] = (), frame: pd.DataFrame | None = None, rows: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.frame = frame
        self._rows = rows
        self._dataset: ds.Dataset | None = None

    @classmethod
    def of(cls, table: "LogTable | pd.DataFrame | None") -> "LogTable":
        """A LogTable from a LogTable (itself), a DataFrame, or nothing (an empty table)."""
        if isinstance(table, LogTable):
            return table
        return cls(frame=table if table is not None else pd.DataFrame())

    @property
    def dataset(self) -> ds.Dataset:
        """The table as an Arrow dataset over its Parquet files (or its in-memory frame), read out of core."""
        if self._dataset is None:
            if self.frame is not None:
                self._dataset = ds.dataset(pa.Table.from_pandas(self.frame, preserve_index=False))
            else:
                schema = pa.unify_schemas([pq.read_schema(p) for p in self.paths], promote_options="permissive") \
                    if self.paths else pa.schema([])
                self._dataset = ds.dataset([str(p) for p in self.paths], schema=schema, format="parquet")
        return self._dataset

    @property
    def columns(self) -> list[str]:
        """The table's column names, from its schema (no row is read)."""
        return list(self.dataset.schema.names)

    def __len__(self) -> int:
        if self._rows is None:
            self._rows = len(self.frame) if self.frame is not None else self.dataset.count_rows()
        return self._rows

    @property
    def empty(self) -> bool:
        """True when the table has no row."""
        return len(self) == 0

    def batches(self, columns: Sequence[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The table's ``columns`` (those it has) batch by batch, in the order of the rows."""
        if not self.paths and self.frame is None:
            return
        have = [c for c in columns if c in self.columns]
        if self.frame is not None:
            yield from self.dataset.to_batches(columns=have, batch_size=batch_rows)
            return
        for path in self.paths:  # file by file, batch by batch: the dataset scanner's read-ahead holds far more
            with pq.ParquetFile(path) as reader:
                yield from reader.iter_batches(batch_size=batch_rows, columns=[c for c in have if c in reader.schema_arrow.names])

    def read(self, columns: Sequence[str] | None = None, where: Any = None) -> pd.DataFrame:
        """The rows matching ``where`` (a ``pyarrow.dataset`` expression) as a frame: for small selections only
        (the first slates the off-policy estimates use). Dictionary columns come back as categoricals."""
        if self.frame is not None and where is None:
            return self.frame[list(columns)] if columns is not None else self.frame
        if not self.paths and self.frame is None:
            return pd.DataFrame(columns=list(columns or []))
        return self.dataset.to_table(columns=None if columns is None else list(columns), filter=where).to_pandas()


@dataclass
class RunLogs:
    """One run's logs: the large tables (impressions, sessions, ope) as :class:`LogTable` (a frame given here is
    wrapped in one), the small ones as pandas frames with string columns as plain strings."""

    path: Path
    manifest: RunManifest
    scenario: Scenario
    impressions: LogTable
    sessions: LogTable
    creators: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    catalog: pd.DataFrame  # items at day 0
    llm: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # what is missing or partial, in words
    ope: LogTable = field(default_factory=LogTable)  # off-policy targets' probabilities (table ope)
    _embeddings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)  # figures computed once (recoworld.evaluation.metrics)

    def __post_init__(self) -> None:
        self.impressions, self.sessions, self.ope = (LogTable.of(t) for t in (self.impressions, self.sessions, self.ope))

    @property
    def name(self) -> str:
        """The run folder's name, which labels the run in a report."""
        return self.path.name

    @property
    def arms(self) -> list[str]:
        """The run's arms, in the order the scenario lists them."""
        return list(self.manifest.arms)

    @property
    def complete(self) -> bool:
        """Whether the run lived all its days (its manifest's status is complete)."""
        return self.manifest.status == "complete"

    @classmethod
    def load(cls, path: str | Path) -> "RunLogs":
        """Load a run folder; a missing folder, manifest or required column raises one-line ``ValueError``."""
        folder = RunFolder(path)
        if not folder.path.is_dir():
            raise ValueError(f"{folder.path}: no such run folder")
        manifest = folder.read_manifest()
        try:
            scenario = load_scenario(folder.path / "scenario.yaml")
        except ValueError as exc:
            raise ValueError(f"{folder.path}: scenario.yaml: {exc}") from None
        notes = []
        if manifest.status != "complete":
            notes.append(f"the run is still in progress or was stopped: {manifest.days_completed} of {manifest.days_total} days logged")
        if manifest.days_completed == 0:
            raise ValueError(f"{folder.path}: the run has no completed day yet")
        tables: dict[str, Any] = {}
        for table in TABLES:
            if table in LARGE:
                files = [f for f in manifest.files if f.table == table]
                paths = [folder.path / f.path for f in files]
                tables[table] = LogTable(paths, rows=sum(f.rows for f in files))
            else:
                tables[table] = _plain(read_table(folder.path, table))
        for table, columns in REQUIRED.items():
            missing = [c for c in columns if c not in tables[table].columns]
            if missing:
                raise ValueError(f"{folder.path}: table '{table}' lacks column '{missing[0]}'")
        if tables["impressions"].empty:
            raise ValueError(f"{folder.path}: no impressions were logged")
        extra = {}
        for name in ("users", "catalog"):
            p = folder.path / f"{name}.parquet"
            extra[name] = _plain(pd.read_parquet(p)) if p.exists() else pd.DataFrame()
            if not p.exists():
                notes.append(f"{name}.parquet is missing")
        if scenario.creators.count == 0:
            notes.append("no creators published in this run: creator health is not measured")
        return cls(folder.path, manifest, scenario, tables["impressions"], tables["sessions"], tables["creators"],
                   tables["items"], extra["users"], extra["catalog"], tables["llm"], notes, ope=tables["ope"])

    def world_of(self, arm: str) -> str:
        """The world an arm served in: itself when arms are copies, ``shared`` when they split users."""
        return arm if self.manifest.arms and self.scenario.run.assignment == "copies" else "shared"

    def published(self, arm: str) -> pd.DataFrame:
        """Items published in ``arm``'s world (item ids are unique within a world, not across copies)."""
        if self.items.empty:
            return self.items
        return self.items[self.items["arm"] == self.world_of(arm)]

    def embeddings(self, arm: str) -> dict[str, np.ndarray]:
        """Unit item embeddings by item id in ``arm``'s world, from the scenario's encoder (as the run computed them)."""
        world = self.world_of(arm)
        if world not in self._embeddings:
            from recoworld.world.catalog import Item
            from recoworld.world.simulation import build_catalog

            cat = build_catalog(self.scenario.catalog, self.scenario.seed)
            new = self.published(arm)
            if not new.empty:
                fields = [f for f in Item.model_fields if f in new.columns]
                cat = cat.extend([Item(**{**{k: row[k] for k in fields}, "tags": [str(t) for t in row.get("tags", [])]})
                                  for row in new.to_dict("records")])
            self._embeddings[world] = {str(i): cat.embeddings[k] for k, i in enumerate(cat.item_id)}
        return self._embeddings[world]


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical (dictionary-encoded) columns as plain strings, so frames from several runs combine."""
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame
