"""The sections of a scenario file: catalog (with its embedding), env, users (with logged users),
recommender specs and the run; :class:`recoworld.scenario.Scenario` puts them together."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recoworld.users.population import SegmentConfig
from recoworld.world.synthetic import SyntheticCatalogConfig


class EmbeddingConfig(BaseModel):
    """How item text becomes vectors."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["hashing", "sentence-transformers"] = "hashing"
    dim: int = Field(64, ge=2, description="Dimension of the hashing encoder.")
    model: str | None = Field(None, description="sentence-transformers model name or local path.")


class CatalogConfig(BaseModel):
    """Where items come from."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["synthetic", "movielens", "items", "dataset"] = Field(
        "synthetic", description="synthetic generator, a MovieLens folder, a generic items CSV/Parquet file, or a data set in any "
        "layout recoworld.world.datasets reads (ML-100K u.data, RecBole atomic files, KuaiRec/KuaiRand CSV, Amazon JSONL)."
    )
    synthetic: SyntheticCatalogConfig = Field(default_factory=SyntheticCatalogConfig)
    path: str | None = Field(None, description="Dataset folder or file for non-synthetic sources.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    item_vectors: str | None = Field(
        None, description="A calibration file whose learned item vectors, quality and popularity replace the catalog's "
        "(set from users.from_calibration: the calibrated world's embedding space)."
    )

    @model_validator(mode="after")
    def _dataset_exists(self) -> "CatalogConfig":
        if self.source != "synthetic":
            if self.path is None:
                raise ValueError(f"path: required for source '{self.source}'")
            if not Path(self.path).exists():
                raise ValueError(f"path: '{self.path}' does not exist")
            self.path = str(Path(self.path).absolute())  # the same data from any directory the scenario is read in
        return self


class EnvConfig(BaseModel):
    """Shape of each decision and of a user's life on the platform."""

    model_config = ConfigDict(extra="forbid")

    num_candidates: int = Field(100, ge=1, description="M: candidates retrieved per request.")
    slate_size: int = Field(10, ge=1, description="K: items per slate.")
    horizon_days: int = Field(30, ge=1, description="Days simulated; an episode is truncated after this.")
    max_slates_per_session: int = Field(20, ge=1, description="A session ends after this many slates at the latest.")
    churn_window_days: int = Field(7, ge=1, description="A user who does not return within this many days has churned.")
    action_mode: Literal["slate", "topic"] = Field("slate", description="Pick K candidates, or a topic per slot.")
    history_length: int = Field(30, ge=1, description="Items of history the platform keeps per user for recommenders.")
    observe_text: bool = Field(False, description="Add item titles to info.")

    @model_validator(mode="after")
    def _slate_fits(self) -> "EnvConfig":
        if self.slate_size > self.num_candidates:
            raise ValueError(f"slate_size {self.slate_size} is larger than num_candidates {self.num_candidates}")
        return self


class LoggedUsersConfig(BaseModel):
    """Profiles extracted from an interaction log, then sampled by density (users.source = logs)."""

    model_config = ConfigDict(extra="forbid")

    interactions: str | None = Field(
        None, description="Interactions CSV/Parquet (user_id, item_id, timestamp, ...); default: the ratings of a movielens catalog."
    )
    min_interactions: int = Field(5, ge=1, description="Users with fewer rows are left out.")
    sampling: Literal["majority", "minority", "flattened", "uniform"] = Field(
        "uniform", description="How extracted profiles are drawn: by density, against it, flattened, or uniformly."
    )

    @field_validator("interactions")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"file '{value}' does not exist")
        return value


class UsersConfig(BaseModel):
    """The user population."""

    model_config = ConfigDict(extra="forbid")

    n_users: int = Field(1000, ge=1, description="Users simulated (per arm when arms are copies, in all when split).")
    source: Literal["segments", "logs", "calibration"] = Field(
        "segments", description="Sample profiles from segments, extract them from logs, or draw calibrated users (from_calibration)."
    )
    from_calibration: str | None = Field(
        None, description="A calibration file from `recoworld calibrate`: its users (with fitted tastes) and fitted user_model."
    )
    segments: list[SegmentConfig] = Field(default_factory=lambda: [SegmentConfig()])
    logs: LoggedUsersConfig = Field(default_factory=LoggedUsersConfig, description="Used when source is logs.")
    taste_noise: float = Field(0.35, ge=0, description="Spread of latent taste around the interests' topic centroids.")
    backend: Literal["parametric", "llm", "hybrid"] = Field(
        "parametric", description="Who decides: the parametric model, an LLM per slate, or parametric with LLM words."
    )
    representation: Literal["text", "semantic_ids", "both"] = Field(
        "text", description="How items are shown to LLM users."
    )

    @model_validator(mode="after")
    def _calibrated(self) -> "UsersConfig":
        if self.from_calibration is not None:
            if not Path(self.from_calibration).is_file():
                raise ValueError(f"from_calibration: file '{self.from_calibration}' does not exist")
            # absolute, so a run folder's own users.parquet can never shadow it when the scenario is read back
            self.from_calibration = str(Path(self.from_calibration).absolute())
            self.source = "calibration"
        elif self.source == "calibration":
            raise ValueError("from_calibration: required when source is 'calibration'")
        return self

    @model_validator(mode="after")
    def _sizes(self) -> "UsersConfig":
        sizes = [s.size for s in self.segments]
        if any(v is not None for v in sizes):
            if any(v is None for v in sizes):
                raise ValueError("segments: give 'size' on every segment or on none")
            total = sum(v for v in sizes if v is not None)
            if total < 1:
                raise ValueError("segments: sizes add up to 0")
            if "n_users" not in self.model_fields_set:
                self.n_users = total  # else the sizes are proportions of n_users
        return self


class RecommenderSpec(BaseModel):
    """A recommender by registry name, with its parameters: one arm of the run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registry name (random, popular, greedy, mmr, egreedy, linucb, mf, toolrec, lerl, sb3, sasrec, "
                      "instruction_following), a name an installed package declares in the recoworld.recommenders "
                      "entry-point group, or package.module:Class.")
    params: dict[str, Any] = Field(default_factory=dict)
    arm: str | None = Field(None, description="Arm label in logs and reports (default: the name).")
    share: float = Field(1.0, gt=0, description="Relative share of users when arms split the population.")

    @property
    def label(self) -> str:
        """The arm's label in logs and reports: ``arm`` when given, else the recommender's name."""
        return self.arm or self.name


def same_catalog(a: "CatalogConfig", b: "CatalogConfig") -> bool:
    """The same catalog config, dataset paths compared as resolved paths."""
    def norm(c: CatalogConfig) -> dict:
        d = c.model_dump(exclude={"item_vectors"})
        d["path"] = str(Path(c.path).resolve()) if c.path else None
        return d

    return norm(a) == norm(b)


def check_specs(specs: list[RecommenderSpec]) -> list[RecommenderSpec]:
    """Every name registered, installed or importable (``package.module:Class``), its params valid for it,
    every arm label used once."""
    from recoworld.agents.registry import validate_params

    seen: set[str] = set()
    for i, spec in enumerate(specs):
        try:
            validate_params(spec.name, spec.params)
        except ValueError as exc:
            message = str(exc)
            raise ValueError(f"{i}.{message}" if message.startswith("params.") else f"{i}.name: {message}") from None
        if spec.label in seen:
            raise ValueError(f"{i}.arm: arm '{spec.label}' appears twice; give each an 'arm' label")
        seen.add(spec.label)
    return specs


class RunConfig(BaseModel):
    """How a population run is carried out and where its logs go."""

    model_config = ConfigDict(extra="forbid")

    assignment: Literal["copies", "split"] = Field(
        "copies",
        description="copies: each arm serves its own copy of the same users, creators and catalog (paired comparison); "
        "split: one shared world whose users are split between the arms (an A/B test; creators see every arm).",
    )
    retrain_every: int = Field(1, ge=1, description="Recommenders that learn from logs retrain every this many days.")
    engine: Literal["local", "ray"] = Field("local", description="Run shard-days in this process, or as Ray tasks.")
    shards: int = Field(1, ge=1, description="User shards per world; the same shards give the same logs on every engine.")
    ray_address: str | None = Field(None, description="Ray cluster to join; none starts a local one.")
    output: str | None = Field(None, description="Folder for the logs, manifest and checkpoint; none keeps results in memory.")
    ope_targets: list[RecommenderSpec] = Field(
        default_factory=list,
        description="Recommenders evaluated off-policy: on every slate an arm serves, each target's inclusion "
        "probabilities are logged (table ope) for IPS, SNIPS and DR estimates; targets never serve.",
    )
    baseline: str | None = Field(
        None, description="Arm the report compares the others with (a recommender label); none: greedy or popular "
        "when run (the incumbent), else the first arm. `recoworld report --baseline` overrides it.")
    popularity_prior_clicks: float = Field(
        20.0, ge=0, description="With creators, item popularity is the rank of prior pseudo-clicks (this times the prior) plus observed clicks."
    )

    @field_validator("ope_targets")
    @classmethod
    def _known_targets(cls, specs: list[RecommenderSpec]) -> list[RecommenderSpec]:
        return check_specs(specs)
