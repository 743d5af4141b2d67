"""Every figure the report takes from the large logs, in one pass over them.

A run of 100,000 users × 30 days × 3 arms logs 136M impressions and 3.3M sessions: too many to hold as
frames. Arrow reads them from the Parquet day files batch by batch (:meth:`LogTable.batches`); each batch is
reduced with ``np.bincount`` into arrays indexed by (arm, user), (arm, item), (arm, day) or arm, so
memory is set by the population and the catalog, not by the length of the logs. Ids become integer
codes through the Parquet dictionaries (no string is hashed per row).

Hand-written on purpose, for two reasons: one sequential pass adds numbers in a fixed order, so the
same logs give the same figures bit for bit (a parallel SQL engine sums floats in an order that
depends on its threads); and the per-slate definitions (NDCG, compliance, the ILD sample) are the
same numpy code the in-memory report used, so its figures carry over to the printed digit.

A slate (one arm, user, day and step) is contiguous in the logs; a slate cut by a batch boundary is
carried into the next batch whole. Modules: ``codes`` (ids as codes, growing sums), ``sessions``
(the sessions' sums), this one (the impressions' sums, the ILD sample, the pass).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from recoworld.evaluation.metrics.base import ILD_SLATES, slate_ndcg
from recoworld.evaluation.metrics.codes import Grid, Keys, equals, numbers
from recoworld.evaluation.metrics.sessions import SESSION_COLUMNS, SessionFigures
from recoworld.progress import stage

if TYPE_CHECKING:
    from recoworld.evaluation.data import RunLogs

IMPRESSION_COLUMNS = ["arm", "user", "item", "day", "step", "position", "action", "clicked", "liked", "shared",
                      "commented", "compliance", "user_fallback", "user_echoed_item_text"]


# ------------------------------------------------------------------ impressions
def slates_of(rows: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) slate id per row, 0.. in order of first appearance: one per (arm, user, day, step)."""
    if not len(rows["arm"]):
        return np.zeros(0, dtype=np.int64)
    dims = [int(rows[c].max()) + 1 for c in ("user", "day", "step")]
    key = ((rows["arm"] * dims[0] + rows["user"]) * dims[1] + rows["day"]) * dims[2] + rows["step"]
    change = np.empty(len(key), dtype=bool)
    change[0], change[1:] = True, key[1:] != key[:-1]
    starts = np.sort(key[change])
    if (starts[1:] != starts[:-1]).all():  # each slate's rows together (as a run writes them)
        return np.cumsum(change, dtype=np.int64) - 1  # the order of first appearance, without hashing every row
    return pd.factorize(key, sort=False)[0].astype(np.int64)


Rows = dict[str, np.ndarray]  # decoded columns of a batch, one array each


def split_last_slate(rows: Rows) -> tuple[Rows, Rows, np.ndarray | None]:
    """(the rows before the batch's last slate, that slate's rows, the slate ids of the former or None if empty).
    Logs written by a run hold each slate's rows together, so the last slate is a suffix: views, no copy."""
    slate = slates_of(rows)
    last = slate[-1]
    other = slate[::-1] != last
    start = len(slate) - int(np.argmax(other)) if other.any() else 0
    if last == slate[:start].max(initial=-1) + 1:  # a suffix and the newest slate: the ids before stay 0..last-1
        head, tail = ({k: v[:start] for k, v in rows.items()}, {k: v[start:] for k, v in rows.items()})
        return head, tail, (slate[:start] if start else None)
    mine = slate == last  # rows of one slate apart from each other (logs built by hand)
    head = {k: v[~mine] for k, v in rows.items()}
    return head, {k: v[mine] for k, v in rows.items()}, (slates_of(head) if len(head["arm"]) else None)


class SlateSample:
    """The slates ILD is measured on: of the ``counts[a]`` slates of arm ``a`` (numbered in order of first appearance
    in the logs), ``size`` drawn by ``np.random.default_rng([seed, a]).choice``, all when there are fewer; keeps the
    items of the rows of those slates, in log order."""

    def __init__(self, counts: Sequence[int], seed: int, size: int) -> None:
        self.counts, self.seed, self.size = [int(c) for c in counts], seed, size
        self.chosen = []
        for a, n in enumerate(self.counts):
            mask = np.zeros(n, dtype=bool)
            if n > size:
                mask[np.random.default_rng([seed, a]).choice(n, size=size, replace=False)] = True
            else:
                mask[:] = True
            self.chosen.append(mask)
        self.seen = np.zeros(len(self.counts), dtype=np.int64)
        self.overflow = False  # more slates than counted: the sample must be drawn again with the true counts
        self.rows: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, slate_arm: np.ndarray, slate: np.ndarray, item: np.ndarray) -> None:
        """``slate_arm`` (per slate of the batch, in order of first appearance), ``slate`` and ``item`` (per row)."""
        take = np.zeros(len(slate_arm), dtype=bool)
        number = np.full(len(slate_arm), -1, dtype=np.int64)
        for a in np.unique(slate_arm):
            ids = np.flatnonzero(slate_arm == a)
            if a >= len(self.counts):
                self.overflow = True
                continue
            ordinal = self.seen[a] + np.arange(len(ids))
            self.seen[a] += len(ids)
            inside = ordinal < self.counts[a]
            self.overflow |= not inside.all()
            pick = ids[inside][self.chosen[a][ordinal[inside]]]
            take[pick] = True
            number[ids] = ordinal
        rows = np.flatnonzero(take[slate])
        if not len(rows):
            return
        rows = rows[np.argsort(slate[rows], kind="stable")]
        for a in np.unique(slate_arm[slate[rows]]):
            mine = rows[slate_arm[slate[rows]] == a]
            self.rows.setdefault(int(a), []).append((number[slate[mine]], item[mine]))

    def complete(self, counts: Sequence[int]) -> bool:
        """True when the sample holds every slate of each arm (``counts`` per arm), none left out by the cap."""
        return not self.overflow and list(self.seen) == [int(c) for c in counts] + [0] * (len(self.seen) - len(counts))

    def of(self, arm: int) -> tuple[np.ndarray, np.ndarray]:
        """(slate number, item code) of the sampled rows of ``arm``, grouped by slate in log order."""
        parts = self.rows.get(arm, [])
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class ImpressionFigures:
    """Per (arm, user): ``slates``, ``ndcg`` (sum over slates), ``compliance_sum`` and ``compliance_n`` (over slates
    with a pending instruction); per (arm, item): ``reviewed`` and ``shown`` impressions and ``clickers`` (distinct
    users who clicked); per (arm, day): compliance sums; per arm: reviewed rows, ``echoed`` slates, rows and
    ``user_fallbacks``; the ILD slate sample."""

    def __init__(self, arms: Keys, users: Keys, items: Keys, sample: SlateSample | None, creators: Keys | None = None) -> None:
        self.arms, self.users, self.items, self.sample = arms, users, items, sample
        self.creators = creators  # read only when the run's catalog is missing: then the creator of each item shown
        self.item_creator = np.zeros(0, dtype=np.int64)
        self.user_sums, self.item_sums, self.day_sums, self.arm_sums = Grid(), Grid(), Grid(), Grid()
        self._clicked = np.zeros((0, 0, 0), dtype=np.uint8)  # (arm, item, user bits)
        self._carry: dict[str, np.ndarray] | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        """Reduce a batch of impression rows; the last slate, which may go on in the next batch, is carried over."""
        rows = self._decode(batch)
        if self._carry is not None:
            rows = {k: np.concatenate([self._carry[k], v]) for k, v in rows.items()}
        self._carry = None
        rows, self._carry, slate = split_last_slate(rows)  # the last slate may go on in the next batch
        if slate is not None:
            self._reduce(rows, slate)

    def finish(self) -> None:
        """Reduce the slate still carried over (call once, after the last batch)."""
        if self._carry is not None and len(self._carry["arm"]):
            self._reduce(self._carry, slates_of(self._carry))
        self._carry = None

    def _decode(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        n = batch.num_rows
        if self.creators is not None and "creator" in batch.schema.names:
            item, creator = self.items.codes(batch.column("item")), self.creators.codes(batch.column("creator"))
            self.item_creator = np.concatenate([self.item_creator, np.full(len(self.items) - len(self.item_creator), -1)])
            self.item_creator[item] = creator
        flags = {c: numbers(batch, c, bool) for c in ("clicked", "liked", "shared", "commented", "user_fallback",
                                                        "user_echoed_item_text")}
        return {
            "arm": self.arms.codes(batch.column("arm")), "user": self.users.codes(batch.column("user")),
            "item": self.items.codes(batch.column("item")), "day": numbers(batch, "day", np.int64),
            "step": numbers(batch, "step", np.int64), "position": numbers(batch, "position", np.int64),
            "reviewed": ~equals(batch, "action", "unseen"), **flags,
            "compliance": numbers(batch, "compliance", np.float64, np.nan) if "compliance" in batch.schema.names
            else np.full(n, np.nan),
        }

    def _reduce(self, rows: dict[str, np.ndarray], slate: np.ndarray) -> None:
        n_slates = int(slate.max()) + 1
        first = np.empty(n_slates, dtype=np.int64)
        first[slate[::-1]] = np.arange(len(slate))[::-1]
        arm, user, day = rows["arm"][first], rows["user"][first], rows["day"][first]
        clicked = rows["clicked"]
        gain = np.where(rows["shared"], 3, np.where(rows["liked"] | rows["commented"], 2, np.where(clicked, 1, 0)))
        ndcg = slate_ndcg(slate, rows["position"].astype(np.float64), gain, n_slates)
        comp = rows["compliance"]
        scored = ~np.isnan(comp)
        c_sum = np.bincount(slate[scored], comp[scored], n_slates)
        c_n = np.bincount(slate[scored], minlength=n_slates)
        compliance = np.divide(c_sum, c_n, out=np.full(n_slates, np.nan), where=c_n > 0)
        has = ~np.isnan(compliance)
        self.user_sums.add("slates", arm, user)
        self.user_sums.add("ndcg", arm, user, ndcg)
        self.user_sums.add("compliance_sum", arm[has], user[has], compliance[has])
        self.user_sums.add("compliance_n", arm[has], user[has])
        self.day_sums.add("compliance_sum", arm[has], day[has], compliance[has])
        self.day_sums.add("compliance_n", arm[has], day[has])
        row_arm, item, seen = rows["arm"], rows["item"], rows["reviewed"]
        self.item_sums.add("shown", row_arm, item)
        self.item_sums.add("reviewed", row_arm[seen], item[seen])
        zero = np.zeros(len(row_arm), dtype=np.int64)
        self.arm_sums.add("rows", row_arm, zero)
        self.arm_sums.add("user_fallbacks", row_arm, zero, rows["user_fallback"].astype(np.float64))
        echoed = (rows["position"] == 0) & rows["user_echoed_item_text"]
        self.arm_sums.add("echoed", row_arm[echoed], zero[echoed])
        self._click(row_arm[clicked], item[clicked], rows["user"][clicked])
        if self.sample is not None:
            self.sample.add(arm, slate, item)

    def _click(self, arm: np.ndarray, item: np.ndarray, user: np.ndarray) -> None:
        """Mark (arm, item, user) clicked in a bit set (exact distinct clickers in one bit per pair)."""
        if not len(arm):
            return
        need = (max(self._clicked.shape[0], int(arm.max()) + 1), max(self._clicked.shape[1], len(self.items)),
                max(self._clicked.shape[2], (len(self.users) + 7) // 8))
        if need != self._clicked.shape:
            if need[1] > self._clicked.shape[1] > 0:  # a growing catalog: room for more items than today's
                need = (need[0], need[1] + need[1] // 4, need[2])
            grown = np.zeros(need, dtype=np.uint8)
            a, i, u = self._clicked.shape
            grown[:a, :i, :u] = self._clicked
            self._clicked = grown
        np.bitwise_or.at(self._clicked, (arm, item, user >> 3), (1 << (user & 7)).astype(np.uint8))

    def clickers(self) -> np.ndarray:
        """(arms, items) distinct users who clicked each item."""
        out = np.zeros((len(self.arms), len(self.items)), dtype=np.int64)
        for a in range(self._clicked.shape[0]):
            counts = np.bitwise_count(self._clicked[a, : len(self.items)]).sum(axis=1, dtype=np.int64)
            out[a, : len(counts)] = counts
        return out


# ------------------------------------------------------------------ the pass
@dataclass
class Figures:
    """What :func:`scan` found: the codes and the figures of sessions and impressions."""

    arms: Keys
    users: Keys
    items: Keys
    sessions: SessionFigures
    impressions: ImpressionFigures
    sample: SlateSample

    def arm_code(self, arm: str) -> int:
        """The code of arm ``arm`` (its row in every per-arm array)."""
        return self.arms.values.index(arm)

    def slate_counts(self) -> list[int]:
        """Slates served per arm, in arm-code order."""
        return [int(v) for v in self.impressions.user_sums.get("slates").sum(axis=1)]


def _batches(table, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The table's batches; the next one is read in a thread while this one is reduced (Arrow's Parquet
    decoding releases the GIL, so the two cores share the work)."""
    batches = iter(table.batches([c for c in columns if c in table.columns]))
    with ThreadPoolExecutor(1, thread_name_prefix="recoworld-log-reader") as pool:
        ahead = pool.submit(next, batches, None)
        while (batch := ahead.result()) is not None:
            ahead = pool.submit(next, batches, None)
            yield batch


def sample_slates(logs: RunLogs, counts: Sequence[int], seed: int, size: int, arms: Keys, items: Keys) -> SlateSample:
    """A pass over the impressions that only draws the ILD sample (a seed or size other than the scan's)."""
    sample = SlateSample(counts, seed, size)
    figures = ImpressionFigures(arms, Keys(), items, None)
    carry: dict[str, np.ndarray] | None = None
    for batch in _batches(logs.impressions, ["arm", "user", "item", "day", "step"]):
        rows = {"arm": arms.codes(batch.column("arm")), "user": figures.users.codes(batch.column("user")),
                "item": items.codes(batch.column("item")), "day": numbers(batch, "day", np.int64),
                "step": numbers(batch, "step", np.int64)}
        if carry is not None:
            rows = {k: np.concatenate([carry[k], v]) for k, v in rows.items()}
        rows, carry, slate = split_last_slate(rows)
        if slate is not None:
            _sample_rows(sample, rows, slate)
    if carry is not None and len(carry["arm"]):
        _sample_rows(sample, carry, slates_of(carry))
    return sample


def _sample_rows(sample: SlateSample, rows: dict[str, np.ndarray], slate: np.ndarray) -> None:
    first = np.empty(int(slate.max()) + 1, dtype=np.int64)
    first[slate[::-1]] = np.arange(len(slate))[::-1]
    sample.add(rows["arm"][first], slate, rows["item"])


def scan(logs: RunLogs, seed: int = 0, ild_slates: int = ILD_SLATES) -> Figures:
    """One pass over the sessions, then one over the impressions (a second one only if the sessions counted other
    slates than the impressions hold, to draw the ILD sample from the true counts)."""
    arms = Keys(logs.arms)
    users = Keys(logs.users["user"].astype(str) if "user" in logs.users.columns else ())
    items = Keys()
    sessions = SessionFigures(arms, users)
    with stage("reading the sessions", total=len(logs.sessions)) as progress:
        for batch in _batches(logs.sessions, SESSION_COLUMNS):
            sessions.add(batch)
            progress.advance(batch.num_rows)
    counted = [int(v) for v in sessions.user_sums.get("slates").sum(axis=1)] if sessions.first else []
    sample = SlateSample(counted, seed, ild_slates)
    no_catalog = logs.catalog.empty or "item_id" not in logs.catalog.columns
    impressions = ImpressionFigures(arms, users, items, sample, Keys() if no_catalog else None)
    with stage("reading the impressions", total=len(logs.impressions)) as progress:
        for batch in _batches(logs.impressions, [*IMPRESSION_COLUMNS, *(["creator"] if no_catalog else [])]):
            if batch.num_rows:
                impressions.add(batch)
            progress.advance(batch.num_rows)
    impressions.finish()
    figures = Figures(arms, users, items, sessions, impressions, sample)
    if not sample.complete(figures.slate_counts()):
        figures.sample = sample_slates(logs, figures.slate_counts(), seed, ild_slates, arms, items)
    return figures


def figures(logs: RunLogs) -> Figures:
    """:func:`scan` of ``logs``, once per RunLogs."""
    if "figures" not in logs._cache:
        logs._cache["figures"] = scan(logs)
    return logs._cache["figures"]
