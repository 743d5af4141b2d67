"""Simulation samples from logged feedback: a user (profile and recent history) facing an exposure
list, and the item they really chose.

Two sources:

* **rating / interaction data** (any frame the readers read: ``user_id``, ``item_id``,
  ``timestamp``): every interaction is a choice; the N-1 other candidates are drawn from the
  catalog by training popularity among items the user had not rated at or before the choice time;
* **RecoWorld run logs** (``impressions``): every clicked item of a slate is a choice; the other
  candidates are the items shown in the same slate that were not clicked.

Each user's latest ``holdout`` share of choices (by time) is the held-out split; a sample's history
holds only the user's choices strictly before its time. The construction follows the Mirroring
Users paper (arXiv 2508.18142) and its public UserMirrorer code (MIT), which samples exposure lists
around logged interactions and inserts the ground-truth item at a random position; the code here is
written for RecoWorld's data, not copied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recoworld.world.catalog import unit_rows
from recoworld.users.calibration.data import latest_share
from recoworld.world.readers import bayesian_quality, read_atomic

Split = Literal["train", "test"]


class SampleConfig(BaseModel):
    """How choices become exposure-list samples."""

    model_config = ConfigDict(extra="forbid")

    n_candidates: int = Field(10, ge=2, le=26, description="Items per exposure list, the chosen one included (letters A..).")
    history: int = Field(10, ge=1, description="Recent choices shown in the prompt.")
    keep_history: int = Field(50, ge=1, description="Earlier choices kept per sample (for the user's taste).")
    min_history: int = Field(5, ge=0, description="Choices with fewer earlier choices are not samples.")
    holdout: float = Field(0.2, gt=0, lt=1, description="Share of each user's latest choices held out.")
    max_train: int | None = Field(None, ge=1, description="Training samples kept (seeded draw); all if None.")
    max_test: int | None = Field(None, ge=1, description="Held-out samples kept (seeded draw); all if None.")
    seed: int = Field(0, description="Seed of the draws (subsets, negatives, candidate order).")
    item_facts: bool = Field(True, description="Show each candidate's mean rating and rating count (training ratings only).")


class ChoiceSample(BaseModel):
    """One decision: the candidates the user faced and which one they chose."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    user_id: str
    timestamp: int = Field(description="Time of the choice (seconds, or a run's day/session/step order).")
    split: Split
    source: Literal["catalog", "exposures"] = Field(description="Where the unchosen candidates came from.")
    profile: str = Field(description="The user's profile as text (facts and tastes from earlier choices).")
    history: list[str] = Field(description="Item ids chosen strictly before, oldest first (at most keep_history).")
    candidates: list[str] = Field(description="Item ids of the exposure list, in display order.")
    chosen: int = Field(ge=0, description="Index of the really chosen item in candidates.")

    @property
    def chosen_item(self) -> str:
        """The id of the candidate the user chose."""
        return self.candidates[self.chosen]

    def reordered(self, order: np.ndarray | list[int]) -> "ChoiceSample":
        """The same decision with the candidates shown in ``order`` (a permutation of their indices)."""
        order = [int(k) for k in order]
        if sorted(order) != list(range(len(self.candidates))):
            raise ValueError(f"{self.sample_id}: order {order} is not a permutation of {len(self.candidates)} candidates")
        return self.model_copy(update={"candidates": [self.candidates[k] for k in order], "chosen": order.index(self.chosen)})


@dataclass
class ItemTable:
    """Item ids with a title, genres/tags, a unit embedding (multi-hot tags unless given) and optional facts
    (e.g. "avg 3.9 from 120 ratings", from training data only) that the prompt shows after each candidate."""

    item_id: np.ndarray
    title: list[str]
    tags: list[list[str]]
    embeddings: np.ndarray | None = None
    facts: list[str] | None = None
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.item_id = np.asarray(self.item_id).astype(str)
        self.index = {item: i for i, item in enumerate(self.item_id)}
        if len(self.index) != len(self.item_id):
            raise ValueError("items: item_id has duplicates")
        if self.embeddings is None:
            vocab = sorted({t for tags in self.tags for t in tags})
            col = {t: j for j, t in enumerate(vocab)}
            hot = np.zeros((len(self.item_id), max(len(vocab), 1)), dtype=np.float32)
            for i, tags in enumerate(self.tags):
                hot[i, [col[t] for t in tags]] = 1.0
            self.embeddings = unit_rows(hot)

    def __len__(self) -> int:
        return len(self.item_id)

    def rows(self, ids: list[str]) -> np.ndarray:
        """The table's row of each item id (a KeyError for an unknown id)."""
        return np.array([self.index[i] for i in ids], dtype=np.int64)

    def label(self, item: str) -> str:
        """Title and tags: "Babe (1995) [Children's, Comedy, Drama]"."""
        i = self.index[item]
        tags = ", ".join(self.tags[i])
        return f"{self.title[i]} [{tags}]" if tags else self.title[i]

    def text(self, item: str) -> str:
        """The label, then the item's facts when the table has them."""
        fact = self.facts[self.index[item]] if self.facts is not None else ""
        return f"{self.label(item)}; {fact}" if fact else self.label(item)

    def with_rating_facts(self, ratings: np.ndarray, rows: np.ndarray) -> "ItemTable":
        """A copy whose facts give each item's mean rating and rating count in ``ratings`` (at item ``rows``)."""
        counts = np.bincount(rows, minlength=len(self)).astype(np.int64)
        sums = np.bincount(rows, weights=ratings, minlength=len(self))
        facts = [f"avg {sums[i] / c:.1f} from {c} ratings" if c else "no ratings yet" for i, c in enumerate(counts)]
        return replace(self, facts=facts)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> "ItemTable":
        """Columns ``item_id``, ``title`` and ``tags`` (lists or ``|``-strings) or ``topic``."""
        for col in ("item_id", "title"):
            if col not in frame.columns:
                raise ValueError(f"items: missing column '{col}'")
        if "tags" in frame.columns:
            tags = [list(t) if not isinstance(t, str) else [s for s in t.split("|") if s] for t in frame["tags"]]
        elif "topic" in frame.columns:
            tags = [[str(t)] for t in frame["topic"]]
        else:
            tags = [[] for _ in range(len(frame))]
        return cls(frame["item_id"].astype(str).to_numpy(), frame["title"].astype(str).tolist(), tags, embeddings)

    @classmethod
    def from_atomic(cls, path: str | Path) -> "ItemTable":
        """A RecBole ``.item`` file: title from ``movie_title``/``title`` (+ ``release_year``), tags from ``class``/``genre``."""
        raw = read_atomic(path)
        title_col = next((c for c in ("movie_title", "title", "name") if c in raw.columns), None)
        if title_col is None or "item_id" not in raw.columns:
            raise ValueError(f"{Path(path).name}: needs item_id and a title column (movie_title, title or name)")
        titles = [" ".join(t) if isinstance(t, list) else str(t) for t in raw[title_col]]
        if "release_year" in raw.columns:
            titles = [f"{t} ({y})" if isinstance(y, str) and y else t for t, y in zip(titles, raw["release_year"])]
        tag_col = next((c for c in ("class", "genre", "tags", "categories") if c in raw.columns), None)
        tags = [list(t) if isinstance(t, list) else [] for t in raw[tag_col]] if tag_col else [[] for _ in titles]
        return cls(raw["item_id"].astype(str).to_numpy(), titles, tags)


@dataclass
class SampleSet:
    """Samples of both splits, the item table and training popularity (choice counts)."""

    samples: list[ChoiceSample]
    items: ItemTable
    popularity: np.ndarray  # (n_items,) training choices per item
    config: SampleConfig
    quality: np.ndarray | None = None  # (n_items,) in [0, 1] from training ratings; None when there are none

    def split(self, name: Split) -> list[ChoiceSample]:
        """The samples of split ``name`` (train, validation or test), in order."""
        return [s for s in self.samples if s.split == name]


def user_facts(users: pd.DataFrame | None) -> dict[str, str]:
    """``user_id`` -> "24, M, technician": the values of the users frame's attribute columns (zip codes left out)."""
    if users is None or "user_id" not in users.columns:
        return {}
    cols = [c for c in users.columns if c != "user_id" and "zip" not in c.lower()]
    out = {}
    for row in users.itertuples(index=False):
        d = row._asdict()
        out[str(d["user_id"])] = ", ".join(str(d[c]) for c in cols if pd.notna(d[c]) and str(d[c]) not in ("", "[]"))
    return out


def profile_text(facts: str, history_rows: np.ndarray, items: ItemTable) -> str:
    """Facts plus the genres most frequent among the user's earlier choices."""
    counts = Counter(t for r in history_rows for t in items.tags[r])
    top = ", ".join(t for t, _ in counts.most_common(3))
    parts = [facts] if facts else []
    parts.append(f"{len(history_rows)} past picks" + (f", mostly {top}" if top else ""))
    return "; ".join(parts) + "."


def _pick(candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return candidates if len(candidates) <= k else rng.choice(candidates, size=k, replace=False)


def _draw_negatives(p: np.ndarray, exclude: set[int], k: int, rng: np.random.Generator) -> list[int]:
    """k distinct item rows drawn with probabilities p, none in ``exclude``."""
    out: list[int] = []
    while len(out) < k:
        for r in rng.choice(len(p), size=4 * k, p=p):
            if int(r) not in exclude:
                exclude.add(int(r))
                out.append(int(r))
                if len(out) == k:
                    break
    return out


def _assemble(chosen_row: int, others: list[int], rng: np.random.Generator, items: ItemTable) -> tuple[list[str], int]:
    order = [chosen_row, *others]
    perm = rng.permutation(len(order))
    cands = [items.item_id[order[j]] for j in perm]
    return cands, int(np.flatnonzero(perm == 0)[0])


def rating_samples(interactions: pd.DataFrame, items: ItemTable, users: pd.DataFrame | None = None,
                   config: SampleConfig | None = None) -> SampleSet:
    """Exposure-list samples from interaction data without exposures (negatives by popularity)."""
    config = config or SampleConfig()
    frame, rows = _choices(interactions, items, ["timestamp"])
    test = latest_share(frame, config.holdout)
    popularity = np.bincount(rows[~test], minlength=len(items)).astype(np.float64)
    if len(items) < 2 * config.n_candidates:
        raise ValueError(f"items: {len(items)} items are too few for {config.n_candidates} candidates per list")
    p = (popularity + 1.0) / (popularity + 1.0).sum()
    quality = None
    if "rating" in frame.columns:
        ratings = frame["rating"].to_numpy(dtype=np.float64)[~test]
        quality = rating_quality(ratings, rows[~test], len(items))
        items = items.with_rating_facts(ratings, rows[~test]) if config.item_facts else items
    rng = np.random.default_rng(config.seed)
    facts = user_facts(users)
    times = frame["timestamp"].to_numpy(dtype=np.int64)
    uids = frame["user_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]])
    bounds = dict(zip(uids[starts], zip(starts, np.r_[starts[1:], len(uids)])))
    samples = []
    for j in _selected(frame, test, times, bounds, config, rng):
        lo, hi = bounds[uids[j]]
        before = lo + int(np.searchsorted(times[lo:hi], times[j], side="left"))
        upto = lo + int(np.searchsorted(times[lo:hi], times[j], side="right"))
        hist = rows[max(lo, before - config.keep_history):before]
        exclude = set(rows[lo:upto].tolist()) | {int(rows[j])}
        if len(items) - len(exclude) < 2 * config.n_candidates:
            continue  # the user has rated nearly the whole catalog: too few unrated items to draw from
        negs = _draw_negatives(p, exclude, config.n_candidates - 1, rng)
        cands, chosen = _assemble(int(rows[j]), negs, rng, items)
        samples.append(ChoiceSample(
            sample_id=f"{uids[j]}:{times[j]}:{items.item_id[rows[j]]}", user_id=str(uids[j]), timestamp=int(times[j]),
            split="test" if test[j] else "train", source="catalog",
            profile=profile_text(facts.get(str(uids[j]), ""), rows[lo:before], items),
            history=[items.item_id[r] for r in hist], candidates=cands, chosen=chosen))
    return SampleSet(samples, items, popularity, config, quality)


def rating_quality(ratings: np.ndarray, rows: np.ndarray, n_items: int) -> np.ndarray:
    """(n_items,) Bayesian-average rating scaled to [0, 1] by the rating range (``readers.bayesian_quality``)."""
    counts = np.bincount(rows, minlength=n_items).astype(np.float64)
    sums = np.bincount(rows, weights=ratings, minlength=n_items)
    mean = float(ratings.mean()) if len(ratings) else 0.0
    lo, hi = (float(ratings.min()), float(ratings.max())) if len(ratings) else (0.0, 1.0)
    return bayesian_quality(sums, counts, mean, lo, hi)


def _choices(interactions: pd.DataFrame, items: ItemTable, order: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of known items sorted by user and ``order`` columns, and their item rows."""
    for col in ("user_id", "item_id", *order):
        if col not in interactions.columns:
            raise ValueError(f"interactions: missing column '{col}'")
    known = interactions["item_id"].astype(str).isin(items.index).to_numpy()
    if not known.any():
        raise ValueError("interactions: none of the items is in the item table")
    frame = interactions[known].assign(user_id=lambda f: f["user_id"].astype(str), item_id=lambda f: f["item_id"].astype(str))
    frame = frame.sort_values(["user_id", *order], kind="stable").reset_index(drop=True)
    return frame, items.rows(frame["item_id"].tolist())


def _selected(frame: pd.DataFrame, test: np.ndarray, times: np.ndarray, bounds: dict, config: SampleConfig,
              rng: np.random.Generator) -> np.ndarray:
    """Indices of choices with enough strictly earlier history, subsampled per split."""
    n_before = np.empty(len(frame), dtype=np.int64)
    for a, b in bounds.values():
        n_before[a:b] = np.searchsorted(times[a:b], times[a:b], side="left")
    ok = n_before >= config.min_history
    chosen = []
    for mask, cap in ((ok & ~test, config.max_train), (ok & test, config.max_test)):
        idx = np.flatnonzero(mask)
        chosen.append(np.sort(_pick(idx, cap, rng)) if cap else idx)
    return np.concatenate(chosen)


def exposure_samples(impressions: pd.DataFrame, items: ItemTable, config: SampleConfig | None = None) -> SampleSet:
    """Samples from RecoWorld run logs: each click of a slate against the slate's unclicked items."""
    config = config or SampleConfig()
    need = ("user", "item", "day", "session", "step", "clicked")
    missing = [c for c in need if c not in impressions.columns]
    if missing:
        raise ValueError(f"impressions: missing column(s) {', '.join(missing)}")
    imp = impressions.rename(columns={"user": "user_id", "item": "item_id"})
    imp = imp.assign(timestamp=imp["day"].astype(np.int64) * 1_000_000 + imp["session"].astype(np.int64) * 1_000
                     + imp["step"].astype(np.int64))
    frame, rows = _choices(imp, items, ["timestamp", "position"] if "position" in imp.columns else ["timestamp"])
    clicked = frame["clicked"].to_numpy(dtype=bool)
    clicks = frame[clicked].reset_index(drop=True)
    click_rows = rows[clicked]
    test = latest_share(clicks, config.holdout)
    popularity = np.bincount(click_rows[~test], minlength=len(items)).astype(np.float64)
    rng = np.random.default_rng(config.seed)
    slates = {k: np.asarray(v) for k, v in frame.groupby(["user_id", "timestamp"], sort=False).indices.items()}
    times = clicks["timestamp"].to_numpy(dtype=np.int64)
    uids = clicks["user_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if len(uids) else np.array([], dtype=np.int64)
    bounds = dict(zip(uids[starts], zip(starts, np.r_[starts[1:], len(uids)])))
    samples = []
    for j in _selected(clicks, test, times, bounds, config, rng):
        lo, _ = bounds[uids[j]]
        before = lo + int(np.searchsorted(times[lo:bounds[uids[j]][1]], times[j], side="left"))
        slate = slates[(uids[j], times[j])]
        shown = np.unique(rows[slate[~clicked[slate]]])
        if len(shown) == 0:
            continue
        others = _pick(shown, config.n_candidates - 1, rng).tolist()
        cands, chosen = _assemble(int(click_rows[j]), others, rng, items)
        hist = click_rows[max(lo, before - config.keep_history):before]
        samples.append(ChoiceSample(
            sample_id=f"{uids[j]}:{times[j]}:{items.item_id[click_rows[j]]}", user_id=str(uids[j]), timestamp=int(times[j]),
            split="test" if test[j] else "train", source="exposures", profile=profile_text("", click_rows[lo:before], items),
            history=[items.item_id[r] for r in hist], candidates=cands, chosen=chosen))
    return SampleSet(samples, items, popularity, config)
