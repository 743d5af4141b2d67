"""A run folder's logs loaded for evaluation, with what is missing said plainly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.runs.logs import TABLES, RunFolder, RunManifest, read_table
from recoworld.scenario import Scenario, load_scenario

LARGE = ("impressions", "ope")  # kept dictionary-encoded (categoricals): millions of rows, a few thousand distinct values
REQUIRED = {
    "impressions": ["arm", "day", "session", "step", "position", "user", "item", "creator", "topic", "action",
                    "clicked", "watch_seconds", "reward", "propensity"],
    "sessions": ["arm", "day", "session", "user", "slates", "reviewed", "clicks", "churned", "return_gap_days"],
}


@dataclass
class RunLogs:
    """Every table of one run as pandas frames: string columns as plain strings, except in the large
    ``impressions`` and ``ope`` tables, where they stay categoricals (as the Parquet dictionaries hold them)."""

    path: Path
    manifest: RunManifest
    scenario: Scenario
    impressions: pd.DataFrame
    sessions: pd.DataFrame
    creators: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    catalog: pd.DataFrame  # items at day 0
    llm: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # what is missing or partial, in words
    ope: pd.DataFrame = field(default_factory=pd.DataFrame)  # off-policy targets' probabilities (table ope)
    _embeddings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def arms(self) -> list[str]:
        return list(self.manifest.arms)

    @property
    def complete(self) -> bool:
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
        tables = {}
        for table in TABLES:
            frame = read_table(folder.path, table)
            tables[table] = frame if table in LARGE else _plain(frame)
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
