"""The calibration's configuration, its results, and the calibration file (users + items + fit).

A calibration file is one Parquet file: one row per calibrated user (taste vector and traits); the
fit, its fidelity and the learned item table (item id, vector, quality, popularity) travel in the
file's metadata. The item table is what makes a calibrated world: scenarios that load the users
(``users: {from_calibration: FILE}``) build their catalog with these item vectors as its embedding
space and this quality and popularity, the same scales the fit used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from recoworld.world.catalog import Catalog
from recoworld.users.profile import Traits, UserProfile

META_KEY = b"recoworld.calibration"
ITEMS_KEY = b"recoworld.calibration.items"
TRAITS = ("patience", "novelty_seeking", "conformity", "activity")


class CalibrationConfig(BaseModel):
    """How interactions become labels, how much is held out, and how the model is fitted."""

    model_config = ConfigDict(extra="forbid")

    label: Literal["auto", "click", "rating", "watch_ratio"] = Field(
        "auto", description="Engagement label: click column, rating >= rating_threshold, or watch_ratio >= watch_ratio_threshold."
    )
    rating_threshold: float = Field(4.0, description="Ratings at or above this count as engagement.")
    watch_ratio_threshold: float = Field(2.0, description="Watch ratios at or above this count as engagement (KuaiRec).")
    holdout: float = Field(0.2, gt=0, lt=1, description="Share of each user's latest interactions held out.")
    validation: float = Field(0.2, gt=0, lt=1, description="Share of each user's latest training rows used to tune factors and L2.")
    min_interactions: int = Field(10, ge=2, description="Users with fewer interactions are left out.")
    session_gap_minutes: float = Field(30.0, gt=0, description="A gap longer than this starts a new session.")
    factors: list[int] = Field([16, 32], min_length=1, description="Factor counts tried (MF baseline and simulator alike).")
    l2: list[float] = Field([0.03, 0.1, 0.3], min_length=1, description="L2 penalties tried (per occurrence of a user or item).")
    recency: list[float] = Field([0.0, 2.0], min_length=1, description="Recency weights tried: a training row weighs "
                                 "exp(r·(place in the user's history − 1)) (MF baseline and simulator alike).")
    epochs: int = Field(300, ge=1, description="Most passes over the rows of each logistic-MF fit, each a full-batch Adam "
                        "step (a fit stops sooner once its training objective stops improving).")
    warm_start: bool = Field(True, description="Tuning fits start where the previous grid fit ended (L2 from the largest "
                             "to the smallest for each factors and recency pair) and stop once their validation loss stops "
                             "moving, and the final fit starts from the chosen one; False: every fit from the seed's factors "
                             "until its training objective converges (slower; the rule before, same pick rule either way). The "
                             "selection stage tunes cold whatever this says (users.calibration.selection).")
    step_size: float = Field(0.1, gt=0, description="Adam's step size in the liking and MF-baseline fits (0.05 before; "
                             "0.1 takes about half the steps to the same validation loss on a million ratings); the "
                             "selection stage keeps 0.05 (users.calibration.selection).")
    seed: int = Field(0, description="Seed of the fits, the dynamics simulation and the replays.")
    users: int | None = Field(None, ge=10, description="Calibrate on this many users, drawn within activity strata "
                              "(users.calibration.data.sample_users); all users when unset.")
    replay_slate_size: int = Field(5, ge=1, description="Held-out interactions are replayed in slates of this size.")
    selection: bool = Field(True, description="Fit which items users pick to interact with (rated vs sampled unrated items) "
                            "and combine it with liking in the calibrated world (users.calibration.selection).")
    selection_negatives: int = Field(1, ge=1, description="Unrated items sampled per rated training item for the selection fit.")
    fit_dynamics: bool = Field(True, description="Fit leaving, return and churn by simulation against the training sessions.")
    dynamics_rounds: int = Field(2, ge=1, description="Coordinate-search rounds of the dynamics fit.")
    dynamics_users: int = Field(400, ge=10, description="Users simulated per evaluation of the dynamics fit.")


class FittedWeights(BaseModel):
    """The click model's coefficients: the MF scale and the kernel's terms, per unit of each feature."""

    model_config = ConfigDict(extra="forbid")

    taste_scale: float = Field(description="w_taste: the MF term's scale in the unit-vector embedding space.")
    quality_scale: float = Field(description="w_quality: item effects (bias + popularity) mapped onto quality in [0, 1].")
    conformity_popularity: float
    popularity: float
    novelty: float
    satiation: float
    fatigue: float
    item_quality: float = Field(description="Per unit of the item's (cross-fitted) average training rating, centred.")
    intercept: float
    factors: int
    l2: float
    recency: float


class SelectionWeights(BaseModel):
    """The selection stage (rated vs sampled unrated items): its popularity terms, intercept and tuning."""

    model_config = ConfigDict(extra="forbid")

    conformity_popularity: float
    popularity: float
    intercept: float
    factors: int
    l2: float
    negatives: int = Field(description="Unrated items sampled per rated item (sets the intercept's reference mix).")
    valid_log_loss: float


class Fidelity(BaseModel):
    """Held-out engagement prediction of the calibrated model next to the baselines (same rows)."""

    model_config = ConfigDict(extra="forbid")

    n_train: int
    n_test: int
    users: int
    positive_rate_train: float = Field(description="Engagement rate of the training rows.")
    positive_rate_test: float = Field(description="Engagement rate of the held-out rows.")
    auc: dict[str, float] = Field(description="Held-out AUC per model.")
    log_loss: dict[str, float]
    auc_interval: dict[str, list[float]] = Field(default_factory=dict, description="95% bootstrap interval over users.")
    log_loss_interval: dict[str, list[float]] = Field(default_factory=dict)
    calibration: list[dict[str, float]] = Field(description="Simulator: mean predicted vs observed per decile.")


class Replay(BaseModel):
    """A user backend served the held-out slates: its actions and sessions against the real ones."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    slates: int
    f1: float = Field(description="F1 of predicted engagement (click) against the real labels, per held-out item.")
    precision: float
    recall: float
    jsd: dict[str, float] = Field(description="Jensen–Shannon divergence (bits, 0..1) of session length, topic mix, activity per user.")
    session_length: dict[str, float] = Field(default_factory=dict, description="Mean items per session: real and simulated.")
    leave_rate: dict[str, float] = Field(default_factory=dict, description="Sessions ended per item reviewed: real and simulated.")


class DynamicsFit(BaseModel):
    """Session dynamics fitted by simulation: the parameters and how close simulated behaviour came."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, float] = Field(description="Fitted user_model (hazard_*, return_*) and env (churn_window_days) values.")
    jsd: dict[str, float] = Field(description="JSD of session length, inter-visit gap and activity: training period vs simulation.")
    real: dict[str, float] = Field(default_factory=dict, description="Means of the real training-period behaviour.")
    simulated: dict[str, float] = Field(default_factory=dict, description="Means of the simulated behaviour.")


class CalibrationResult(BaseModel):
    """What a calibration file carries besides the per-user tastes."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    catalog: dict = Field(default_factory=dict, description="The catalog config the items come from (scenario.catalog).")
    seed: int = Field(0, description="The catalog's seed (scenario.seed).")
    weights: FittedWeights
    selection: SelectionWeights | None = Field(None, description="The selection stage, combined with liking in the calibrated world.")
    user_model: dict[str, float] = Field(description="ParametricUserParams fields set by the fit.")
    env: dict[str, float] = Field(default_factory=dict, description="EnvConfig fields set by the fit (churn window).")
    fidelity: Fidelity
    dynamics: DynamicsFit | None = None
    replays: list[Replay] = Field(default_factory=list, description="Held-out replays by user backend.")
    suite: dict | None = Field(None, description="The fidelity suite's report (recoworld.fidelity.suite), when it ran.")


@dataclass
class ItemTable:
    """Learned item representation: ids, unit vectors (N, D), quality and popularity in [0, 1]."""

    item_id: np.ndarray
    vectors: np.ndarray
    quality: np.ndarray
    popularity: np.ndarray

    def to_bytes(self) -> bytes:
        """The table as an Arrow IPC stream (float32 vectors, quality and popularity), for the calibration file's
        metadata."""
        table = pa.table({"item_id": self.item_id.astype(str), "vector": list(self.vectors.astype(np.float32)),
                          "quality": self.quality.astype(np.float32), "popularity": self.popularity.astype(np.float32)})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ItemTable":
        """The table read back from :meth:`to_bytes`' stream."""
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        return cls(np.asarray(table["item_id"].to_pylist(), dtype=object), np.asarray(table["vector"].to_pylist(), dtype=np.float32),
                   table["quality"].to_numpy(), table["popularity"].to_numpy())

    def apply(self, catalog: Catalog) -> Catalog:
        """``catalog`` with these vectors as its embeddings and this quality and popularity (items the fit
        never saw get the mean vector, neutral quality and popularity 0)."""
        rows = catalog.rows(self.item_id) if len(self.item_id) else np.zeros(0, dtype=np.int64)
        emb = np.tile(self.vectors.mean(0), (len(catalog), 1)).astype(np.float32)
        quality = np.full(len(catalog), 0.5, dtype=np.float32)
        popularity = np.zeros(len(catalog), dtype=np.float32)
        emb[rows], quality[rows], popularity[rows] = self.vectors, self.quality, self.popularity
        text = catalog.embeddings.astype(np.float64)
        ridge = np.linalg.solve(text.T @ text + np.eye(text.shape[1]), text.T @ emb.astype(np.float64))
        return Catalog(
            item_id=catalog.item_id, title=catalog.title, description=catalog.description, topic=catalog.topic,
            topic_names=catalog.topic_names, tags=catalog.tags, creator=catalog.creator, creator_names=catalog.creator_names,
            duration=catalog.duration, quality=quality, created_day=catalog.created_day, popularity=popularity,
            encoder=ProjectedEncoder(catalog._encoder, ridge), embeddings=emb,
        )


class ProjectedEncoder:
    """Text → the learned item space: the catalog's text encoder followed by a ridge map fitted on the
    calibrated items (how items published during a run get vectors in that space)."""

    def __init__(self, base, projection: np.ndarray) -> None:
        from recoworld.world.embeddings import HashingEncoder

        self.base = base or HashingEncoder(dim=projection.shape[0])
        self.projection = projection.astype(np.float32)

    def encode(self, texts) -> np.ndarray:
        """Unit vectors in the learned item space: the base encoder's unit rows times the ridge map, normalised again."""
        from recoworld.world.catalog import unit_rows

        return unit_rows(unit_rows(self.base.encode(texts)) @ self.projection)


@dataclass
class Calibration:
    """Calibrated users (profiles with taste and traits), population parameters and the item table."""

    result: CalibrationResult
    profiles: list[UserProfile]
    items: ItemTable | None = None

    def save(self, path: str | Path) -> Path:
        """A Parquet file: one row per user (taste as a list); fit, fidelity and item table in the metadata."""
        path = Path(path)
        table = pa.table({
            "user_id": [p.user_id for p in self.profiles],
            "segment": [p.segment for p in self.profiles],
            "interests": [json.dumps(p.interests) for p in self.profiles],
            "topic_history": [json.dumps(p.topic_history) for p in self.profiles],
            "taste": [p.taste for p in self.profiles],
            **{name: [getattr(p.traits, name) for p in self.profiles] for name in TRAITS},
        })
        meta = {META_KEY: self.result.model_dump_json().encode()}
        if self.items is not None:
            meta[ITEMS_KEY] = self.items.to_bytes()
        table = table.replace_schema_metadata(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path


def _metadata(path: str | Path) -> dict[bytes, bytes]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"calibration file '{path}' does not exist")
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise ValueError(f"{path.name}: not a Parquet file ({exc})") from None
    if META_KEY not in meta:
        raise ValueError(f"{path.name}: not a RecoWorld calibration (no calibration metadata)")
    return meta


def calibration_result(path: str | Path) -> CalibrationResult:
    """The fit and fidelity stored in a calibration file (reads only the file's metadata)."""
    return CalibrationResult.model_validate_json(_metadata(path)[META_KEY])


def calibration_items(path: str | Path) -> ItemTable | None:
    """The learned item table of a calibration file (None for files without one)."""
    data = _metadata(path).get(ITEMS_KEY)
    return ItemTable.from_bytes(data) if data else None


def world_sha256(path: str | Path) -> str:
    """SHA-256 of what a world built from the calibration file at ``path`` reads: the users' rows, the item table,
    the fitted ``user_model`` and ``env`` values, the seed and the catalog settings (without the data's folder,
    so copies of the same data anywhere give the same digest). Fidelity figures and the file's encoding are left out."""
    import hashlib

    meta = _metadata(path)
    result = CalibrationResult.model_validate_json(meta[META_KEY])
    catalog = {k: v for k, v in (result.catalog or {}).items() if k != "path"}
    digest = hashlib.sha256(json.dumps({"user_model": result.user_model, "env": result.env, "seed": result.seed,
                                        "catalog": catalog}, sort_keys=True).encode())
    table = pq.read_table(path).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table.combine_chunks())
    digest.update(sink.getvalue().to_pybytes())
    digest.update(meta.get(ITEMS_KEY, b""))
    return digest.hexdigest()


def load_calibration(path: str | Path) -> Calibration:
    """Read a file written by :meth:`Calibration.save` (one-line ``ValueError`` if it is not one)."""
    meta = _metadata(path)
    frame = pq.read_table(path).to_pandas()
    profiles = [
        UserProfile(
            user_id=str(row["user_id"]), segment=str(row["segment"]), interests=json.loads(row["interests"]) or {"unknown": 1.0},
            topic_history=json.loads(row.get("topic_history") or "{}"),
            taste=[float(v) for v in row["taste"]], traits=Traits(**{name: row[name] for name in TRAITS}),
        )
        for row in frame.to_dict("records")
    ]
    items = ItemTable.from_bytes(meta[ITEMS_KEY]) if ITEMS_KEY in meta else None
    return Calibration(CalibrationResult.model_validate_json(meta[META_KEY]), profiles, items)


class ProfilePool:
    """Draws users from a fixed list (extracted or calibrated): without replacement while it lasts."""

    def __init__(self, profiles: list[UserProfile]) -> None:
        if not profiles:
            raise ValueError("users: no profiles to draw from")
        self.profiles = profiles

    def sample(self, n: int, rng: np.random.Generator) -> list[UserProfile]:
        """``n`` of the pool's profiles (without replacement while they last; repeats get a ``#2``, ``#3`` suffix)."""
        from recoworld.users.population import draw_profiles

        return draw_profiles(self.profiles, n, rng)
