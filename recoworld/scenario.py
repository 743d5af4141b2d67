"""Scenario files: one pydantic model (unknown keys rejected) describing a world and its runs."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recoworld.llm.config import LLMConfig
from recoworld.rewards import RewardWeights
from recoworld.synthetic import SyntheticCatalogConfig
from recoworld.users.parametric import ParametricUserParams
from recoworld.users.sampler import SegmentConfig


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the offending field."""


class EmbeddingConfig(BaseModel):
    """How item text becomes vectors."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["hashing", "sentence-transformers"] = "hashing"
    dim: int = Field(64, ge=2, description="Dimension of the hashing encoder.")
    model: str | None = Field(None, description="sentence-transformers model name or local path.")


class CatalogConfig(BaseModel):
    """Where items come from."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["synthetic", "movielens", "items"] = Field(
        "synthetic", description="synthetic generator, a MovieLens folder, or a generic items CSV/Parquet file."
    )
    synthetic: SyntheticCatalogConfig = Field(default_factory=SyntheticCatalogConfig)
    path: str | None = Field(None, description="Dataset folder or file for non-synthetic sources.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)


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


class UsersConfig(BaseModel):
    """The user population."""

    model_config = ConfigDict(extra="forbid")

    n_users: int = Field(1000, ge=1, description="Users simulated per recommender by `recoworld run`.")
    segments: list[SegmentConfig] = Field(default_factory=lambda: [SegmentConfig()])
    taste_noise: float = Field(0.35, ge=0, description="Spread of latent taste around the interests' topic centroids.")
    backend: Literal["parametric", "llm", "hybrid"] = Field(
        "parametric", description="Who decides: the parametric model, an LLM per slate, or parametric with LLM words."
    )
    representation: Literal["text", "semantic_ids", "both"] = Field(
        "text", description="How items are shown to LLM users."
    )


class RecommenderSpec(BaseModel):
    """A recommender by registry name, with its parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Scenario(BaseModel):
    """A complete world description."""

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    description: str = ""
    seed: int = Field(0, description="Seed of every random draw in the world.")
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    users: UsersConfig = Field(default_factory=UsersConfig)
    user_model: ParametricUserParams = Field(default_factory=ParametricUserParams)
    rewards: RewardWeights = Field(default_factory=RewardWeights)
    llm: LLMConfig = Field(default_factory=LLMConfig, description="Language model for LLM and hybrid users.")
    recommenders: list[RecommenderSpec] = Field(
        default_factory=lambda: [RecommenderSpec(name=n) for n in ("random", "popular", "greedy", "mmr", "linucb")]
    )


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files("recoworld.scenarios").iterdir() if p.name.endswith(".yaml"))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, recursively for nested dicts."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def format_validation_error(err: ValidationError, source: str) -> str:
    """The first problem of a pydantic error as one line naming the field."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{loc}'"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc}: {first['msg']}{more}"


def load_scenario(ref: str | Path | dict[str, Any] | Scenario = "quickstart", overrides: dict[str, Any] | None = None) -> Scenario:
    """A bundled name, a YAML path, a plain dict or a Scenario, with optional nested overrides."""
    if isinstance(ref, Scenario):
        data, source = ref.model_dump(by_alias=True), f"scenario '{ref.name}'"
    elif isinstance(ref, dict):
        data, source = ref, "scenario"
    else:
        text, source = _read(str(ref))
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: expected a mapping at the top level")
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(format_validation_error(err, source)) from None


def _read(ref: str) -> tuple[str, str]:
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file '{ref}' does not exist")
        return path.read_text(), f"scenario '{path.name}'"
    if ref in bundled_scenarios():
        return resources.files("recoworld.scenarios").joinpath(f"{ref}.yaml").read_text(), f"scenario '{ref}'"
    raise ScenarioError(f"unknown scenario '{ref}' (bundled: {', '.join(bundled_scenarios())}; or give a .yaml path)")
