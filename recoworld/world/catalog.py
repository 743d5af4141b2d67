"""Items and the columnar catalog every part of the world reads from."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from recoworld.world.embeddings import TextEncoder

ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "title",
    "description",
    "topic",
    "tags",
    "creator",
    "duration",
    "quality",
    "created_day",
    "popularity",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("item_id", "title", "topic")


class Item(BaseModel):
    """One piece of content, as a creator published it."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(description="Stable identifier of the item.")
    title: str = Field(description="Readable title.")
    description: str = Field("", description="A sentence or two about the item.")
    topic: str = Field(description="The item's category.")
    tags: list[str] = Field(default_factory=list, description="Free-form tags.")
    creator: str = Field("unknown", description="Who published it.")
    duration: float = Field(60.0, gt=0, description="Length in seconds.")
    quality: float = Field(0.5, ge=0, le=1, description="Production quality in [0, 1].")
    created_day: int = Field(0, description="Simulation day it was published (negative = before day 0).")
    popularity: float = Field(0.5, ge=0, le=1, description="Popularity prior in [0, 1] (a percentile).")

    def text(self) -> str:
        """The item's text representation: title, description and tags."""
        return item_text(self.title, self.description, self.tags)


def item_text(title: str, description: str, tags: Sequence[str]) -> str:
    """Title + description + tags, the text every encoder and prompt sees."""
    tag_part = " ".join(f"#{t}" for t in tags)
    return " ".join(p for p in (title, description, tag_part) if p)


class Catalog:
    """Items stored column-wise: numpy arrays indexed by the item's row.

    Topic and creator are integer codes into ``topic_names`` / ``creator_names``. Content
    representations (embeddings, semantic IDs) are computed lazily and cached.
    """

    def __init__(
        self,
        *,
        item_id: np.ndarray,
        title: np.ndarray,
        description: np.ndarray,
        topic: np.ndarray,
        topic_names: list[str],
        tags: np.ndarray,
        creator: np.ndarray,
        creator_names: list[str],
        duration: np.ndarray,
        quality: np.ndarray,
        created_day: np.ndarray,
        popularity: np.ndarray,
        encoder: "TextEncoder | None" = None,
        embeddings: np.ndarray | None = None,
    ) -> None:
        n = len(item_id)
        if n == 0:
            raise ValueError("catalog: no items")
        self.item_id = np.asarray(item_id, dtype=object)
        self.title = np.asarray(title, dtype=object)
        self.description = np.asarray(description, dtype=object)
        self.topic = np.asarray(topic, dtype=np.int32)
        self.topic_names = list(topic_names)
        self.tags = np.asarray(tags, dtype=object)
        self.creator = np.asarray(creator, dtype=np.int32)
        self.creator_names = list(creator_names)
        self.duration = np.asarray(duration, dtype=np.float32)
        self.quality = np.asarray(quality, dtype=np.float32)
        self.created_day = np.asarray(created_day, dtype=np.int32)
        self.popularity = np.asarray(popularity, dtype=np.float32)
        for name in ITEM_COLUMNS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"catalog: column '{name}' has {len(getattr(self, name))} rows, expected {n}")
        if self.topic.min() < 0 or self.topic.max() >= len(self.topic_names):
            raise ValueError("catalog: column 'topic' has codes outside topic_names")
        if not np.all(self.duration > 0):
            raise ValueError("catalog: column 'duration' must be > 0 seconds")
        for name in ("quality", "popularity"):
            col = getattr(self, name)
            if np.any((col < 0) | (col > 1)) or np.any(np.isnan(col)):
                raise ValueError(f"catalog: column '{name}' must lie in [0, 1]")
        self._encoder = encoder
        if embeddings is not None:
            self.__dict__["embeddings"] = unit_rows(np.asarray(embeddings, dtype=np.float32))

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.item_id)

    @property
    def n_topics(self) -> int:
        """Number of topics (the length of ``topic_names``)."""
        return len(self.topic_names)

    def item(self, index: int) -> Item:
        """Row ``index`` as an :class:`Item`."""
        return Item(
            item_id=str(self.item_id[index]),
            title=str(self.title[index]),
            description=str(self.description[index]),
            topic=self.topic_names[int(self.topic[index])],
            tags=list(self.tags[index]),
            creator=self.creator_names[int(self.creator[index])],
            duration=float(self.duration[index]),
            quality=float(self.quality[index]),
            created_day=int(self.created_day[index]),
            popularity=float(self.popularity[index]),
        )

    def text(self, index: int) -> str:
        """The item's text as encoders and prompts see it: title, description and tags."""
        return item_text(str(self.title[index]), str(self.description[index]), self.tags[index])

    @cached_property
    def texts(self) -> list[str]:
        """Text representation of every item (title, description, tags)."""
        return [item_text(t, d, g) for t, d, g in zip(self.title, self.description, self.tags)]

    @cached_property
    def duration_scaled(self) -> np.ndarray:
        """log(1 + duration) / log(1 + 2 h), clipped to [0, 1]: a model-friendly duration feature."""
        return np.clip(np.log1p(self.duration) / np.log1p(7200.0), 0.0, 1.0).astype(np.float32)

    @cached_property
    def index_of(self) -> dict[str, int]:
        """Map from item id to row."""
        return {str(i): k for k, i in enumerate(self.item_id)}

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of the given item ids (KeyError names the first unknown id)."""
        lookup = self.index_of
        out = np.empty(len(item_ids), dtype=np.int64)
        for k, i in enumerate(item_ids):
            try:
                out[k] = lookup[str(i)]
            except KeyError:
                raise KeyError(f"catalog: unknown item_id '{i}'") from None
        return out

    # ------------------------------------------------- content representations
    @cached_property
    def embeddings(self) -> np.ndarray:
        """Unit-norm item embeddings (N, D), from the catalog's text encoder."""
        from recoworld.world.embeddings import HashingEncoder

        encoder = self._encoder or HashingEncoder()
        return unit_rows(encoder.encode(self.texts))

    @cached_property
    def mean_embedding(self) -> np.ndarray:
        """(D,) mean item embedding: what every item shares, removed before measuring content similarity."""
        return self.embeddings.mean(0).astype(np.float32)

    @cached_property
    def topic_centroids(self) -> np.ndarray:
        """Unit-norm mean embedding per topic (T, D); zero rows for empty topics."""
        emb = self.embeddings
        sums = np.zeros((self.n_topics, emb.shape[1]), dtype=np.float64)
        np.add.at(sums, self.topic, emb)
        return unit_rows(sums.astype(np.float32))

    def semantic_ids(self, levels: int = 3, codebook_size: int = 64, seed: int = 0) -> np.ndarray:
        """Residual k-means codes (N, levels) over the embeddings; cached per arguments."""
        key = (levels, codebook_size, seed)
        cache = self.__dict__.setdefault("_semantic_ids", {})
        if key not in cache:
            from recoworld.world.semantic_ids import residual_kmeans

            cache[key] = residual_kmeans(self.embeddings, levels, codebook_size, seed).codes
        return cache[key]

    @cached_property
    def topic_members(self) -> list[np.ndarray]:
        """Rows of each topic's items."""
        order = np.argsort(self.topic, kind="stable")
        bounds = np.searchsorted(self.topic[order], np.arange(self.n_topics + 1))
        return [order[bounds[t] : bounds[t + 1]] for t in range(self.n_topics)]

    def extend(self, items: Sequence[Item]) -> "Catalog":
        """A new catalog: these items in the same rows, then ``items`` (published by creators).

        The new items' embeddings come from the same encoder; the topic centroids and mean
        embedding stay those of the original catalog (they define users' tastes). New creator
        names are appended; a topic outside ``topic_names`` is an error.
        """
        topic_index = {name: t for t, name in enumerate(self.topic_names)}
        creator_names = list(self.creator_names)
        creator_index = {name: c for c, name in enumerate(creator_names)}
        topics, creators = [], []
        for it in items:
            if it.topic not in topic_index:
                raise ValueError(f"item {it.item_id}: topic '{it.topic}' is not in the catalog")
            if it.creator not in creator_index:
                creator_index[it.creator] = len(creator_names)
                creator_names.append(it.creator)
            topics.append(topic_index[it.topic])
            creators.append(creator_index[it.creator])
        if items and any(str(it.item_id) in self.index_of for it in items):
            dup = next(it.item_id for it in items if str(it.item_id) in self.index_of)
            raise ValueError(f"item {dup}: item_id already in the catalog")

        def col(name: str, new: list) -> np.ndarray:
            old = getattr(self, name)
            return np.concatenate([old, np.asarray(new, dtype=old.dtype)]) if new else old.copy()

        def objects(name: str, new: list) -> np.ndarray:
            out = np.empty(len(self) + len(new), dtype=object)
            out[: len(self)] = getattr(self, name)
            out[len(self):] = new
            return out

        new_emb = self.embeddings
        if items:
            from recoworld.world.embeddings import HashingEncoder

            encoder = self._encoder or HashingEncoder()
            texts = [it.text() for it in items]
            new_emb = np.concatenate([self.embeddings, unit_rows(encoder.encode(texts))])
        out = Catalog(
            item_id=objects("item_id", [it.item_id for it in items]),
            title=objects("title", [it.title for it in items]),
            description=objects("description", [it.description for it in items]),
            topic=col("topic", topics),
            topic_names=self.topic_names,
            tags=objects("tags", [tuple(it.tags) for it in items]),
            creator=col("creator", creators),
            creator_names=creator_names,
            duration=col("duration", [it.duration for it in items]),
            quality=col("quality", [it.quality for it in items]),
            created_day=col("created_day", [it.created_day for it in items]),
            popularity=col("popularity", [it.popularity for it in items]),
            encoder=self._encoder,
            embeddings=new_emb,
        )
        out.__dict__["mean_embedding"] = self.mean_embedding
        out.__dict__["topic_centroids"] = self.topic_centroids
        return out

    # ------------------------------------------------------------ conversions
    def to_frame(self) -> pd.DataFrame:
        """A pandas view with readable topic and creator names."""
        return pd.DataFrame(
            {
                "item_id": self.item_id,
                "title": self.title,
                "description": self.description,
                "topic": np.asarray(self.topic_names, dtype=object)[self.topic],
                "tags": self.tags,
                "creator": np.asarray(self.creator_names, dtype=object)[self.creator],
                "duration": self.duration,
                "quality": self.quality,
                "created_day": self.created_day,
                "popularity": self.popularity,
            }
        )

    @classmethod
    def from_items(cls, items: Sequence[Item], encoder: "TextEncoder | None" = None) -> "Catalog":
        """A catalog from Item models (as :meth:`from_frame` builds one from their fields)."""
        return cls.from_frame(pd.DataFrame([it.model_dump() for it in items]), encoder=encoder)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, encoder: "TextEncoder | None" = None, source: str = "items"
    ) -> "Catalog":
        """Build a catalog from a frame with at least ``item_id``, ``title``, ``topic``.

        Missing optional columns get defaults; ``popularity`` defaults to nothing known (0.5).
        ``tags`` may be lists or ``|``-separated strings.
        """
        require_columns(frame, REQUIRED_COLUMNS, source)
        n = len(frame)
        if n == 0:
            raise ValueError(f"{source}: no items")
        if frame["item_id"].astype(str).duplicated().any():
            dup = frame["item_id"].astype(str)[frame["item_id"].astype(str).duplicated()].iloc[0]
            raise ValueError(f"{source}: duplicate item_id '{dup}'")
        topics = frame["topic"].astype(str)
        topic_names = sorted(topics.unique())
        topic_codes = pd.Categorical(topics, categories=topic_names).codes
        creators = frame["creator"].astype(str) if "creator" in frame else pd.Series(["unknown"] * n)
        creator_names = sorted(creators.unique())
        creator_codes = pd.Categorical(creators, categories=creator_names).codes

        def column(name: str, default: object, dtype: type) -> np.ndarray:
            if name not in frame:
                return np.full(n, default, dtype=dtype)
            values = pd.to_numeric(frame[name], errors="coerce")
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise ValueError(f"{source}: column '{name}' has a missing or non-numeric value at row {row}")
            return values.to_numpy(dtype=dtype)

        tags = frame["tags"] if "tags" in frame else pd.Series([[]] * n)
        tag_lists = np.empty(n, dtype=object)
        for k, t in enumerate(tags):
            if isinstance(t, str):
                tag_lists[k] = tuple(s for s in t.split("|") if s)
            elif t is None or (isinstance(t, float) and np.isnan(t)):
                tag_lists[k] = ()
            else:
                tag_lists[k] = tuple(str(s) for s in t)
        desc = frame["description"].fillna("").astype(str) if "description" in frame else pd.Series([""] * n)
        return cls(
            item_id=frame["item_id"].astype(str).to_numpy(dtype=object),
            title=frame["title"].fillna("").astype(str).to_numpy(dtype=object),
            description=desc.to_numpy(dtype=object),
            topic=topic_codes,
            topic_names=topic_names,
            tags=tag_lists,
            creator=creator_codes,
            creator_names=creator_names,
            duration=column("duration", 60.0, np.float32),
            quality=column("quality", 0.5, np.float32),
            created_day=column("created_day", 0, np.int32),
            popularity=column("popularity", 0.5, np.float32),
            encoder=encoder,
        )


def require_columns(frame: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Raise ``ValueError("<source>: missing required column '<name>'")`` for the first absent column."""
    for name in required:
        if name not in frame.columns:
            raise ValueError(f"{source}: missing required column '{name}'")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def popularity_percentile(counts: np.ndarray) -> np.ndarray:
    """Turn raw counts into a popularity prior in [0, 1] (average rank percentile)."""
    ranks = pd.Series(np.asarray(counts, dtype=float)).rank(method="average").to_numpy()
    if len(ranks) == 1:
        return np.array([0.5], dtype=np.float32)
    return ((ranks - 1) / (len(ranks) - 1)).astype(np.float32)
