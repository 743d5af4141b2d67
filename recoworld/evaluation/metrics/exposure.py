"""Exposure: what each arm's users reviewed of the items and creators of its world."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from recoworld.evaluation.metrics.scan import figures

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs


def world_items(logs: RunLogs, arm: str) -> pd.DataFrame:
    """The arm's world catalog: day-0 items plus items published in its world (item_id, creator, topic)."""
    cols = ["item_id", "creator", "topic"]
    parts = [f[cols] for f in (logs.catalog, logs.published(arm)) if not f.empty and set(cols) <= set(f.columns)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.concat(parts, ignore_index=True).astype(object)
    return out.drop_duplicates("item_id", ignore_index=True)


def item_counts(logs: RunLogs, arm: str, name: str) -> pd.Series:
    """Per item code of the scan (index: item id): ``reviewed`` or ``shown`` impressions of ``arm``, or ``clickers``."""
    fig = figures(logs)
    items = fig.items.index()
    a = fig.arm_code(arm)
    table = fig.impressions.clickers() if name == "clickers" else fig.impressions.item_sums.get(name)
    row = table[a] if a < table.shape[0] else np.zeros(0)
    values = np.zeros(len(items), dtype=np.int64)
    values[: len(row)] = np.round(row[: len(items)]).astype(np.int64)
    return pd.Series(values, index=items)


def exposure_of(logs: RunLogs, arm: str, by: Literal["item", "creator"] = "item") -> pd.Series:
    """Reviewed-impression counts of ``arm`` over every item (or creator) of its world, zeros included.

    Creators of a world: owners of its catalog items and every creator agent logged in it. Without a
    catalog the population falls back to what the arm showed.
    """
    counts = item_counts(logs, arm, "reviewed")
    world = world_items(logs, arm)
    if world.empty:
        counts = counts[item_counts(logs, arm, "shown").to_numpy() > 0]
        if by == "item":
            return counts
        fig = figures(logs).impressions
        codes = fig.items.index().get_indexer(counts.index)
        names = np.asarray((fig.creators.values if fig.creators is not None else []) + [None], dtype=object)
        owner = fig.item_creator[codes] if len(fig.item_creator) else np.full(len(codes), -1)
        return counts.groupby(names[owner]).sum()
    per_item = counts.reindex(world["item_id"].to_numpy(), fill_value=0)
    if by == "item":
        return per_item
    per_creator = pd.Series(per_item.to_numpy(), index=world["creator"].to_numpy()).groupby(level=0).sum()
    if not logs.creators.empty:
        agents = logs.creators.loc[logs.creators["arm"] == logs.world_of(arm), "creator"].unique()
        per_creator = per_creator.reindex(per_creator.index.union(pd.Index(agents, dtype=object)), fill_value=0)
    return per_creator
