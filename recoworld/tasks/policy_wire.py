"""What travels between ``recoworld evaluate URL`` and ``recoworld serve-policy``: pydantic at the boundary.

An ``/act`` request carries, per user, the language-agent observation (:class:`AgentObservation`, the protocol
any agent can answer from) and, for a RecoWorld recommender, the numeric :class:`UserView` it ranks from
(:class:`ViewPayload`: every array byte for byte, so the served policy ranks exactly as it would in process).
The catalog the view indexes travels once per evaluation (:class:`CatalogPayload`, named by its sha256).
The reply is one :class:`AgentAction` (candidate ids, in display order) per user.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.language.protocol import AgentAction, AgentObservation
from recoworld.agents.protocol import UserView
from recoworld.users.instructions import Instruction
from recoworld.world.catalog import Catalog

DTYPES = ("bool", "int8", "int16", "int32", "int64", "float32", "float64")
SESSION = r"^[A-Za-z0-9_.-]{1,64}$"
_VIEW_ARRAYS = tuple(f.name for f in dataclasses.fields(UserView)
                     if f.name not in ("catalog", "slate_size", "user_ids", "instructions", "observation"))


class Array(BaseModel):
    """A numpy array, exactly: its dtype, shape and raw bytes (base64)."""

    model_config = ConfigDict(extra="forbid")

    dtype: str = Field(pattern="^(" + "|".join(DTYPES) + ")$")
    shape: list[int] = Field(max_length=4)
    data: str = Field(description="The array's C-order bytes, base64.")

    @classmethod
    def of(cls, a: np.ndarray) -> Array:
        """``a`` as base64 bytes with its dtype and shape, for a dtype that may travel."""
        a = np.ascontiguousarray(a)
        if a.dtype.name not in DTYPES:
            raise ValueError(f"array of dtype {a.dtype.name} cannot travel (one of {', '.join(DTYPES)})")
        return cls(dtype=a.dtype.name, shape=list(a.shape), data=base64.b64encode(a.tobytes()).decode("ascii"))

    def numpy(self) -> np.ndarray:
        """The array back, refusing bytes that do not make its shape and dtype."""
        raw = base64.b64decode(self.data, validate=True)
        if any(n < 0 for n in self.shape) or len(raw) != int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize:
            raise ValueError(f"array: {len(raw)} bytes do not make shape {self.shape} of {self.dtype}")
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.shape).copy()


class CatalogPayload(BaseModel):
    """Every column of a :class:`Catalog` and its embeddings (the rows a view's candidates index)."""

    model_config = ConfigDict(extra="forbid")

    item_id: list[str]
    title: list[str]
    description: list[str]
    tags: list[list[str]]
    topic_names: list[str]
    creator_names: list[str]
    numeric: dict[str, Array] = Field(description="topic, creator, duration, quality, created_day, popularity, embeddings.")

    @classmethod
    def of(cls, cat: Catalog) -> CatalogPayload:
        """The catalog's texts and numeric columns, ready to send."""
        numeric = {k: Array.of(getattr(cat, k)) for k in ("topic", "creator", "duration", "quality", "created_day",
                                                           "popularity", "embeddings")}
        return cls(item_id=[str(i) for i in cat.item_id], title=[str(t) for t in cat.title],
                   description=[str(d) for d in cat.description], tags=[[str(t) for t in g] for g in cat.tags],
                   topic_names=list(cat.topic_names), creator_names=list(cat.creator_names), numeric=numeric)

    def digest(self) -> str:
        """SHA-256 of the payload's JSON: the name under which the server keeps the catalog."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def catalog(self) -> Catalog:
        """The catalog, its embeddings as sent (not normalised again: the same bits as the client's)."""
        cols = {k: a.numpy() for k, a in self.numeric.items()}
        missing = {"topic", "creator", "duration", "quality", "created_day", "popularity", "embeddings"} - set(cols)
        if missing:
            raise ValueError(f"catalog: missing column(s) {sorted(missing)}")
        tags = np.empty(len(self.tags), dtype=object)
        for k, g in enumerate(self.tags):
            tags[k] = tuple(g)
        emb = cols.pop("embeddings")
        cat = Catalog(item_id=np.array(self.item_id, dtype=object), title=np.array(self.title, dtype=object),
                      description=np.array(self.description, dtype=object), tags=tags, topic_names=self.topic_names,
                      creator_names=self.creator_names, **cols)
        if emb.ndim != 2 or len(emb) != len(cat):
            raise ValueError(f"catalog: embeddings of shape {list(emb.shape)} for {len(cat)} items")
        cat.__dict__["embeddings"] = emb
        return cat


class ViewPayload(BaseModel):
    """A :class:`UserView` of b users without its catalog (named by ``catalog``, its sha256)."""

    model_config = ConfigDict(extra="forbid")

    catalog: str = Field(pattern="^[0-9a-f]{64}$")
    slate_size: int = Field(ge=1)
    user_ids: list[str]
    arrays: dict[str, Array]
    instructions: list[Instruction | None] = Field(default_factory=list)
    observation: dict[str, Array] | None = None

    @classmethod
    def of(cls, view: UserView, digest: str) -> ViewPayload:
        """What a recommender sees of a batch of users (``view``'s arrays, instructions and observation), over the
        catalog named by ``digest``."""
        return cls(catalog=digest, slate_size=view.slate_size, user_ids=list(view.user_ids),
                   arrays={k: Array.of(getattr(view, k)) for k in _VIEW_ARRAYS}, instructions=list(view.instructions),
                   observation=None if view.observation is None else {k: Array.of(v) for k, v in view.observation.items()})

    def view(self, catalog: Catalog) -> UserView:
        """The view again, over ``catalog`` (one line naming what does not fit)."""
        missing = set(_VIEW_ARRAYS) - set(self.arrays)
        if missing:
            raise ValueError(f"view: missing array(s) {sorted(missing)}")
        arrays = {k: self.arrays[k].numpy() for k in _VIEW_ARRAYS}
        b = len(self.user_ids)
        for k, a in arrays.items():
            if a.ndim == 0 or len(a) != b:
                raise ValueError(f"view: {k} has shape {list(a.shape)}, expected {b} user row(s)")
        cands, hist = arrays["candidates"], arrays["history_items"]
        if cands.ndim != 2 or hist.ndim != 2 or self.slate_size > cands.shape[1]:
            raise ValueError(f"view: slate_size {self.slate_size} for candidates of shape {list(cands.shape)} "
                             f"and history of shape {list(hist.shape)}")
        if cands.size and (cands.min() < 0 or cands.max() >= len(catalog)) or hist.size and (
                hist.min() < -1 or hist.max() >= len(catalog)):
            raise ValueError(f"view: item rows outside the catalog's {len(catalog)} items")
        want = {"candidates": cands.shape, "history_items": hist.shape, "history_engagement": hist.shape,
                "consumed": cands.shape, "est_taste": (b, catalog.embeddings.shape[1]),
                "click_topics": (b, catalog.n_topics), "shown_topics": (b, catalog.n_topics)}
        for k, a in arrays.items():  # every shape the recommenders' kernels index without checking
            if a.shape != want.get(k, (b,)):
                raise ValueError(f"view: {k} has shape {list(a.shape)}, expected {list(want.get(k, (b,)))}")
        obs = None if self.observation is None else {k: a.numpy() for k, a in self.observation.items()}
        return UserView(catalog=catalog, slate_size=self.slate_size, user_ids=list(self.user_ids),
                        instructions=list(self.instructions), observation=obs, **arrays)


class ActRequest(BaseModel):
    """One decision for b users of one evaluation session."""

    model_config = ConfigDict(extra="forbid")

    session: str = Field(pattern=SESSION, description="The client's evaluation; state is kept per session and user.")
    observations: list[AgentObservation] = Field(min_length=1, max_length=10_000)
    view: ViewPayload | None = Field(None, description="The numeric view (a RecoWorld recommender needs it).")
    feedback: Feedback | None = Field(None, description="What the users did with the session's previous slates.")


class Feedback(BaseModel):
    """The previous slates (b, K) of the session: positions, clicked, reviewed (a recommender's ``observe``)."""

    model_config = ConfigDict(extra="forbid")

    positions: Array
    clicks: Array
    reviewed: Array


class ActReply(BaseModel):
    """One action per user, in the request's order."""

    actions: list[AgentAction]


class SessionRequest(BaseModel):
    """Names a session (``/feedback``, ``/close``), with its pending feedback if any."""

    model_config = ConfigDict(extra="forbid")

    session: str = Field(pattern=SESSION)
    feedback: Feedback | None = None


class RetrainRequest(BaseModel):
    """Impression logs (columns of equal length) for a recommender that learns from logs."""

    model_config = ConfigDict(extra="forbid")

    session: str = Field(pattern=SESSION)
    columns: dict[str, list[Any]]


class PolicyInfo(BaseModel):
    """``GET /info``: what the server serves and what it needs from its clients."""

    name: str
    kind: str
    spec: str
    needs_view: bool = Field(description="Requests must carry the numeric view (a RecoWorld recommender).")
    needs_observation: bool = Field(False, description="The view must carry RecoWorld-v0's observation arrays.")
    observes: bool = Field(description="The policy learns from feedback (send it).")
    learns_from_logs: bool = Field(description="The policy retrains on impression logs (POST /retrain).")
    sessions: int = 0
    max_sessions: int = 0


ActRequest.model_rebuild()
