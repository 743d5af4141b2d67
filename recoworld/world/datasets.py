"""Real data sets in the layouts they are distributed in, as one catalog + interactions + users.

:func:`load_dataset` recognises a path and reads it:

* a MovieLens folder (``ml-latest-small`` CSV or ``ml-1m`` ``.dat``; see :func:`readers.load_movielens`);
* MovieLens-100K's own files: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item``
  (``|``-separated, latin-1, 19 genre flags) and optional ``u.user``;
* RecBole atomic files: a folder holding ``NAME.inter`` (and optional ``NAME.item`` / ``NAME.user``),
  or the ``.inter`` path itself; any data set in that format (``user_id``, ``item_id``, ``rating``,
  ``timestamp`` columns; the item file's title and genre/class/categories columns when present);
* KuaiRec / KuaiRand CSV: ``small_matrix.csv`` / ``big_matrix.csv`` with ``item_categories.csv``, or
  ``log_*.csv`` with ``video_features_basic*.csv`` (a folder, or the interactions file itself);
* Amazon-reviews JSONL (2018 ``reviewerID``/``asin``/``overall``/``unixReviewTime`` or 2023
  ``user_id``/``parent_asin``/``rating``/``timestamp`` in ms), optionally with a ``meta_*.jsonl`` file
  beside it (``title``, ``categories`` / ``category`` / ``main_category``);
* a generic interactions CSV/Parquet file with an ``items`` file (:func:`readers.load_interactions`).

Interactions come out as ``user_id``, ``item_id`` (strings), ``timestamp`` (int64 seconds) plus
whichever of ``rating``, ``click``, ``watch_ratio`` the data has; items as a :class:`Catalog` whose
``popularity`` is the percentile of interaction counts and ``quality`` the Bayesian-average rating
(or engagement rate) scaled to [0, 1]. Bad files raise one line naming the file and the column.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recoworld.world import readers as L
from recoworld.world.catalog import Catalog, popularity_percentile

if TYPE_CHECKING:
    from recoworld.world.embeddings import TextEncoder

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                 "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
TITLE_COLUMNS = ("title", "movie_title", "item_name", "name", "video_name")
TOPIC_COLUMNS = ("genre", "genres", "class", "categories", "category", "main_category", "topic", "feat", "video_type")
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


@dataclass
class Dataset:
    """A data set as the world reads it: items, interactions and (when the data has them) user attributes."""

    catalog: Catalog
    interactions: pd.DataFrame
    users: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"user_id": pd.Series(dtype=object)}))
    layout: str = "generic"


def detect_layout(path: str | Path) -> str:
    """``movielens``, ``ml100k``, ``atomic``, ``kuairec``, ``amazon`` or ``interactions`` (a generic file)."""
    p = L._existing(path)
    name = p.name.lower()
    if p.is_file():
        if name.endswith(".inter"):
            return "atomic"
        if name.endswith(JSONL_SUFFIXES):
            return "amazon"
        if name == "u.data":
            return "ml100k"
        if name in ("small_matrix.csv", "big_matrix.csv") or name.startswith("log_"):
            return "kuairec"
        return "interactions"
    if (p / "u.data").is_file():
        return "ml100k"
    if any(p.glob("*.inter")):
        return "atomic"
    if any((p / f).is_file() for f in ("small_matrix.csv", "big_matrix.csv")) or any(p.glob("log_*.csv")):
        return "kuairec"
    if any(f.name.lower().endswith(JSONL_SUFFIXES) for f in p.iterdir()):
        return "amazon"
    return "movielens"


def load_dataset(path: str | Path, items: str | Path | None = None, encoder: "TextEncoder | None" = None) -> Dataset:
    """Read the data set at ``path`` in whichever supported layout it is (``items`` for a generic file)."""
    layout = detect_layout(path)
    if layout == "movielens":
        catalog, inter = L.load_movielens(path, encoder=encoder)
        return Dataset(catalog, inter, layout=layout)
    if layout == "interactions":
        if items is None:
            raise ValueError(f"{Path(path).name}: an interactions file needs an items file (--items)")
        catalog = L.load_items(items, encoder=encoder)
        return Dataset(catalog, L.load_interactions(path, catalog), layout=layout)
    reader = {"ml100k": _ml100k, "atomic": _atomic, "kuairec": _kuairec, "amazon": _amazon}[layout]
    items_frame, inter, users, source = reader(L._existing(path))
    return Dataset(catalog_from(items_frame, inter, source, encoder), _known(inter, items_frame), users, layout)


def load_dataset_catalog(path: str | Path, encoder: "TextEncoder | None" = None) -> Catalog:
    """The catalog of :func:`load_dataset` (a scenario's ``catalog.source: dataset``)."""
    return load_dataset(path, encoder=encoder).catalog


def load_catalog(source: str, path: str | Path, encoder: "TextEncoder | None" = None) -> Catalog:
    """The catalog of a ``movielens`` folder, an ``items`` file or any ``dataset`` layout."""
    if source == "movielens":
        return L.load_movielens(path, encoder=encoder)[0]
    if source == "items":
        return L.load_items(path, encoder=encoder)
    if source == "dataset":
        return load_dataset_catalog(path, encoder=encoder)
    raise ValueError(f"catalog.source: unknown source '{source}' (expected 'movielens', 'items' or 'dataset')")


# ------------------------------------------------------------------ shared
def catalog_from(items: pd.DataFrame, inter: pd.DataFrame, source: str, encoder: "TextEncoder | None") -> Catalog:
    """A catalog from item rows (``item_id``, ``title``, ``topic``, ``tags``) and the interactions:
    popularity = percentile of counts; quality = Bayesian-average rating (or engagement) in [0, 1]."""
    inter = _known(inter, items)
    ids = items["item_id"]
    counts = inter.groupby("item_id", sort=False).size().reindex(ids).fillna(0).to_numpy(dtype=float)
    popularity = popularity_percentile(counts)
    popularity[counts == 0] = 0.0
    value = next((c for c in ("rating", "click", "watch_ratio") if c in inter.columns), None)
    quality = np.full(len(items), 0.5)
    if value is not None and len(inter):
        v = inter[value].astype(float)
        lo, hi = (float(v.min()), float(v.max())) if value != "watch_ratio" else (0.0, max(float(v.quantile(0.99)), 1e-9))
        v = v.clip(lo, hi)
        sums = v.groupby(inter["item_id"].to_numpy()).sum().reindex(ids).fillna(0).to_numpy(dtype=float)
        quality = L.bayesian_quality(sums, counts, float(v.mean()), lo, hi)
    frame = items.assign(quality=quality, popularity=popularity)
    if "description" not in frame:
        frame["description"] = [f"A {'|'.join(t) or 'untagged'} item" for t in frame["tags"]]
    return Catalog.from_frame(frame, encoder=encoder, source=source)


def _known(inter: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    known = inter["item_id"].isin(set(items["item_id"])).to_numpy()
    out = inter[known].reset_index(drop=True)
    out.attrs["dropped_unknown_items"] = int((~known).sum())
    return out


def _item_rows(ids: pd.Series, titles: list[str], topic_lists: list[list[str]], source: str) -> pd.DataFrame:
    frame = pd.DataFrame({"item_id": ids.to_numpy(dtype=object), "title": titles,
                          "topic": [t[0] if t else "unknown" for t in topic_lists], "tags": [list(t) for t in topic_lists]})
    dup = frame["item_id"].duplicated()
    if dup.any():
        raise ValueError(f"{source}: column 'item_id' repeats '{frame['item_id'][dup].iloc[0]}'")
    return frame


def _interactions(raw: pd.DataFrame, source: str, user: str, item: str, time: str, time_unit: float = 1.0,
                  values: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename and type the interaction columns; ``time_unit`` converts the time column to seconds."""
    L.require_columns(raw, (user, item, time, *(values or {}).values()), source)
    out = pd.DataFrame({"user_id": L._ids(raw, user, source), "item_id": L._ids(raw, item, source)})
    stamps = L._timestamps(raw, time, source)
    out["timestamp"] = stamps if time_unit == 1.0 else (stamps * time_unit).astype(np.int64)
    for name, column in (values or {}).items():
        out[name] = L._numeric(raw, column, source, float)
    if "rating" in out and "click" not in out:
        out["click"] = (out["rating"].to_numpy() >= 4.0).astype(np.int64)
    return out


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path.name}: cannot read file ({L._one_line(exc)})") from None


# ------------------------------------------------------------------ MovieLens-100K (u.data, u.item, u.user)
def _ml100k(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    folder = path.parent if path.is_file() else path
    for name in ("u.data", "u.item"):
        if not (folder / name).is_file():
            raise ValueError(f"{name}: not found in {folder} (MovieLens-100K needs u.data and u.item)")
    raw = _read_csv(folder / "u.data", sep="\t", header=None, names=["user", "item", "rating", "timestamp"], dtype=str)
    inter = _interactions(raw, "u.data", "user", "item", "timestamp", values={"rating": "rating"})
    names = ["item_id", "title", "release", "video_release", "url", *ML100K_GENRES]
    movies = _read_csv(folder / "u.item", sep="|", header=None, names=names, dtype=str, encoding="latin-1", quoting=3)
    ids = L._ids(movies, "item_id", "u.item")
    flags = np.stack([L._numeric(movies, g, "u.item", int) for g in ML100K_GENRES], axis=1)
    genres = [[g for g, f in zip(ML100K_GENRES, row) if f and g != "unknown"] for row in flags]
    items = _item_rows(ids, movies["title"].fillna("").astype(str).tolist(), genres, "u.item").assign(duration=L.MOVIE_DURATION_S)
    users = pd.DataFrame({"user_id": pd.Series(dtype=object)})
    if (folder / "u.user").is_file():
        u = _read_csv(folder / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip_code"], dtype=str)
        users = u.assign(user_id=L._ids(u, "user_id", "u.user"))
    return items, inter, users, "u.item"


# ------------------------------------------------------------------ RecBole atomic files
def _atomic(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    if path.is_dir():
        found = sorted(path.glob("*.inter"))
        if len(found) != 1:
            raise ValueError(f"{path.name}: expected one .inter file, found {len(found)}")
        path = found[0]
    stem = path.name[: -len(".inter")]
    raw = L.read_atomic(path)
    time = "timestamp" if "timestamp" in raw else None
    if time is None:  # some data sets are unordered: keep the file's order
        raw["timestamp"], time = np.arange(len(raw), dtype=np.int64), "timestamp"
    values = {k: k for k in ("rating", "click", "watch_ratio", "label") if k in raw}
    inter = _interactions(raw, path.name, "user_id", "item_id", time, values=values)
    if "label" in inter and "click" not in values:
        inter["click"] = (inter.pop("label").to_numpy() > 0).astype(np.int64)
    item_file, user_file = path.with_name(stem + ".item"), path.with_name(stem + ".user")
    if item_file.is_file():
        meta = L.read_atomic(item_file)
        L.require_columns(meta, ("item_id",), item_file.name)
        ids = L._ids(meta, "item_id", item_file.name)
        title_col = next((c for c in TITLE_COLUMNS if c in meta), None)
        titles = [_text(v) for v in meta[title_col]] if title_col else ids.tolist()
        topic_col = next((c for c in TOPIC_COLUMNS if c in meta), None)
        topics = [_tokens(v) for v in meta[topic_col]] if topic_col else [[] for _ in ids]
        items = _item_rows(ids, titles, topics, item_file.name)
        items = pd.concat([items, _unlisted(inter, items)], ignore_index=True)
    else:
        items = _unlisted(inter, pd.DataFrame({"item_id": []}))
    users = pd.DataFrame({"user_id": pd.Series(dtype=object)})
    if user_file.is_file():
        users = L.read_atomic(user_file)
        L.require_columns(users, ("user_id",), user_file.name)
        users["user_id"] = L._ids(users, "user_id", user_file.name)
    return items, inter, users, item_file.name if item_file.is_file() else path.name


def _unlisted(inter: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Rows for items that interactions name but the item file lacks (id as title, topic unknown)."""
    missing = pd.Series(pd.unique(inter.loc[~inter["item_id"].isin(set(items["item_id"])), "item_id"]), dtype=object)
    return _item_rows(missing, missing.tolist(), [[] for _ in missing], "items")


def _text(value) -> str:
    return " ".join(value) if isinstance(value, list) else ("" if pd.isna(value) else str(value))


def _tokens(value) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    text = str(value).strip().strip("[]")
    return [t.strip().strip("'\"") for t in text.replace("|", ",").split(",") if t.strip().strip("'\"")]


# ------------------------------------------------------------------ KuaiRec / KuaiRand
def _kuairec(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    folder = path.parent if path.is_file() else path
    if path.is_file():
        inter_file = path
    else:
        found = [folder / f for f in ("small_matrix.csv", "big_matrix.csv") if (folder / f).is_file()] or sorted(folder.glob("log_*.csv"))
        inter_file = found[0]
    raw = _read_csv(inter_file, dtype={"user_id": str, "video_id": str})
    if "watch_ratio" in raw:  # KuaiRec: timestamp in seconds (float), watch_ratio = play / duration
        time = "timestamp" if "timestamp" in raw else "time"
        raw = raw.dropna(subset=[time])
        inter = _interactions(raw.reset_index(drop=True), inter_file.name, "user_id", "video_id", time,
                              values={"watch_ratio": "watch_ratio"})
    else:  # KuaiRand: time_ms, is_click
        inter = _interactions(raw, inter_file.name, "user_id", "video_id", "time_ms", 1e-3, values={"click": "is_click"})
        if "is_like" in raw:
            inter["like"] = L._numeric(raw, "is_like", inter_file.name, int)
    cats, kind = folder / "item_categories.csv", "feat"
    if not cats.is_file():
        cats = next(iter(sorted(folder.glob("video_features_basic*.csv"))), cats)
        kind = "tag"
    if cats.is_file():
        meta = _read_csv(cats, dtype={"video_id": str, kind: str})
        L.require_columns(meta, ("video_id", kind), cats.name)
        ids = L._ids(meta, "video_id", cats.name)
        topics = [[f"{kind}_{t}" for t in _tokens(v)] for v in meta[kind]]
        items = _item_rows(ids, [f"video {i}" for i in ids], topics, cats.name)
        items = pd.concat([items, _unlisted(inter, items)], ignore_index=True)
    else:
        items = _unlisted(inter, pd.DataFrame({"item_id": []}))
    return items, inter, pd.DataFrame({"user_id": pd.Series(dtype=object)}), cats.name if cats.is_file() else inter_file.name


# ------------------------------------------------------------------ Amazon reviews (JSONL)
def _read_jsonl(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path.name}: line {number} is not JSON ({exc.msg})") from None
    if not rows:
        raise ValueError(f"{path.name}: empty file")
    return pd.DataFrame(rows)


def _amazon(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.name.lower().endswith(JSONL_SUFFIXES))
    reviews = [f for f in files if not f.name.lower().startswith("meta")]
    metas = [f for f in (files if path.is_dir() else path.parent.iterdir()) if f.name.lower().startswith("meta")
             and f.name.lower().endswith(JSONL_SUFFIXES)]
    if not reviews:
        raise ValueError(f"{path.name}: no reviews file (.jsonl) besides meta files")
    raw = _read_jsonl(reviews[0])
    name = reviews[0].name
    if "reviewerID" in raw:  # 2018 layout
        inter = _interactions(raw, name, "reviewerID", "asin", "unixReviewTime", values={"rating": "overall"})
    else:  # 2023 layout: ms timestamps; parent_asin groups variants
        item = "parent_asin" if "parent_asin" in raw else "asin"
        inter = _interactions(raw, name, "user_id", item, "timestamp", 1e-3, values={"rating": "rating"})
    if metas:
        meta = _read_jsonl(metas[0])
        key = "parent_asin" if "parent_asin" in meta else "asin"
        L.require_columns(meta, (key,), metas[0].name)
        meta = meta.drop_duplicates(key)
        ids = L._ids(meta, key, metas[0].name)
        titles = [_text(v) for v in meta["title"]] if "title" in meta else ids.tolist()
        col = next((c for c in ("categories", "category", "main_category", "main_cat") if c in meta), None)
        topics = [_tokens(v)[-1:] + _tokens(v)[:-1] if col != "main_category" else _tokens(v) for v in meta[col]] if col else [[] for _ in ids]
        items = _item_rows(ids, titles, topics, metas[0].name)
        items = pd.concat([items, _unlisted(inter, items)], ignore_index=True)
    else:
        items = _unlisted(inter, pd.DataFrame({"item_id": []}))
    return items, inter, pd.DataFrame({"user_id": pd.Series(dtype=object)}), metas[0].name if metas else name
