"""Scenario files: one pydantic model (unknown keys rejected) describing a world and its runs."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recoworld.llm.config import LLMConfig
from recoworld.scenario_sections import (
    CatalogConfig,
    EnvConfig,
    RecommenderSpec,
    RunConfig,
    UsersConfig,
    check_specs,
    same_catalog,
)
from recoworld.scenario_input import (  # noqa: F401  (re-exported: the scenario's errors and readers live here too)
    MAX_ABS_NUMBER,
    MAX_DEPTH,
    ScenarioError,
    check_no_bool_numbers,
    check_numbers,
    safe_load_strict,
)
from recoworld.users.creator_inputs import CreatorsConfig
from recoworld.users.parametric import ParametricUserParams
from recoworld.world.rewards import RewardWeights


MAX_FILE_BYTES = 2_000_000
SIZE_LIMITS: dict[tuple[str, ...], int] = {
    ("catalog", "synthetic", "n_items"): 5_000_000,
    ("catalog", "synthetic", "n_creators"): 1_000_000,
    ("catalog", "synthetic", "n_topics"): 10_000,
    ("catalog", "embedding", "dim"): 4_096,
    ("env", "num_candidates"): 100_000,
    ("env", "slate_size"): 1_000,
    ("env", "horizon_days"): 100_000,
    ("env", "max_slates_per_session"): 100_000,
    ("env", "history_length"): 100_000,
    ("users", "n_users"): 50_000_000,
    ("creators", "count"): 1_000_000,
    ("run", "shards"): 100_000,
}


class Scenario(BaseModel):
    """A complete world description."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("custom", min_length=1, max_length=200, description="The run's name (logs, report, console).")
    description: str = Field("", max_length=10_000)
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of every random draw in the world.")

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        """Every number finite and of a sane magnitude (NaN, inf and 1e300 are refused wherever they are)."""
        check_numbers(data, ())
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _numbers_not_yes_no(cls, data: Any, handler: Any) -> "Scenario":
        """A yes/no value where a number belongs is refused (pydantic would read ``true`` as 1)."""
        scenario = handler(data)
        if isinstance(data, dict):
            check_no_bool_numbers(data, scenario)
        return scenario

    @model_validator(mode="after")
    def _bounded_sizes(self) -> "Scenario":
        """Every number finite once parsed ("1e300" and "nan" strings too); sizes that allocate memory
        bounded, so a typo fails here and not with a MemoryError."""
        check_numbers(self.model_dump(), ())
        for path, limit in SIZE_LIMITS.items():
            node: Any = self
            for part in path:
                node = getattr(node, part)
            if node is not None and node > limit:
                raise ValueError(f"{'.'.join(path)}: {node} is larger than the limit {limit:,}")
        for i, segment in enumerate(self.users.segments):
            if segment.size is not None and segment.size > SIZE_LIMITS[("users", "n_users")]:
                raise ValueError(f"users.segments.{i}.size: larger than the limit {SIZE_LIMITS[('users', 'n_users')]:,}")
        return self
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    users: UsersConfig = Field(default_factory=UsersConfig)
    user_model: ParametricUserParams = Field(default_factory=ParametricUserParams)
    rewards: RewardWeights = Field(default_factory=RewardWeights)
    llm: LLMConfig = Field(default_factory=LLMConfig, description="Language model for LLM and hybrid users and LLM creators.")
    creators: CreatorsConfig = Field(default_factory=CreatorsConfig, description="Creators who publish during the run.")
    recommenders: list[RecommenderSpec] = Field(
        default_factory=lambda: [RecommenderSpec(name=n) for n in ("random", "popular", "greedy", "mmr", "linucb")]
    )
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("recommenders")
    @classmethod
    def _known_arms(cls, specs: list[RecommenderSpec]) -> list[RecommenderSpec]:
        return check_specs(specs)

    @model_validator(mode="after")
    def _calibrated_user_model(self) -> "Scenario":
        """A calibration's fitted parameters fill the user_model fields the scenario does not set itself."""
        if self.users.from_calibration is not None:
            from recoworld.users.calibration.io import calibration_result

            fitted = calibration_result(self.users.from_calibration)
            if fitted.catalog and (not same_catalog(CatalogConfig.model_validate(fitted.catalog), self.catalog) or fitted.seed != self.seed):
                raise ValueError(
                    f"users.from_calibration: its tastes live in the embedding space of catalog {fitted.catalog.get('source')} "
                    f"'{fitted.catalog.get('path')}' with seed {fitted.seed}; set catalog and seed to match"
                )
            for name, value in fitted.user_model.items():
                if name not in self.user_model.model_fields_set:
                    setattr(self.user_model, name, value)
            for name, value in fitted.env.items():
                if name not in self.env.model_fields_set:
                    setattr(self.env, name, type(getattr(self.env, name))(value))
            if fitted.catalog and self.catalog.item_vectors is None:
                self.catalog.item_vectors = self.users.from_calibration
        return self

    @model_validator(mode="after")
    def _engine_fits(self) -> "Scenario":
        if self.run.engine == "ray" and self.users.backend != "parametric":
            raise ValueError(f"run.engine: 'ray' runs parametric users; use 'local' for {self.users.backend} users")
        return self


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


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["env.slate_size=5", ...]`` → ``{"env": {"slate_size": 5}}``; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ValueError(f"--set '{pair}': expected key.path=value")
        try:
            value = safe_load_strict(raw) if raw.strip() else raw
        except (yaml.YAMLError, ScenarioError, RecursionError):
            raise ValueError(f"--set '{pair}': value is not valid YAML") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set '{pair}': '{part}' was already set to a value")
        node[parts[-1]] = value
    return out


def format_validation_error(err: ValidationError, source: str) -> str:
    """The first problem of a pydantic error as one line naming the field."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{loc}'"
    msg = first["msg"].removeprefix("Value error, ")
    inner = re.match(r"^([\w.\[\]]+): (.*)$", msg)  # a validator naming a field below ``loc``
    if inner:
        loc, msg = ".".join(p for p in (loc, inner[1]) if p), inner[2]
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc or '(top level)'}: {msg}{more}"


def load_scenario(ref: str | Path | dict[str, Any] | Scenario = "quickstart", overrides: dict[str, Any] | None = None) -> Scenario:
    """A bundled name, a YAML path, a plain dict or a Scenario, with optional nested overrides."""
    if isinstance(ref, Scenario):
        data, source = ref.model_dump(by_alias=True), f"scenario '{ref.name}'"
    elif isinstance(ref, dict):
        data, source = ref, "scenario"
    else:
        text, source = _read(str(ref))
        if len(text) > MAX_FILE_BYTES:
            raise ScenarioError(f"{source}: {len(text):,} characters; a scenario file is at most {MAX_FILE_BYTES:,}")
        try:
            data = safe_load_strict(text)
        except ScenarioError as exc:
            raise ScenarioError(f"{source}: {exc}") from None
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ScenarioError(f"{source}: not valid YAML ({first})") from None
        if data is None:
            raise ScenarioError(f"{source}: the file is empty (or only comments); write at least a name")
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: expected a mapping at the top level")
        _relative_to(data, Path(str(ref)).parent)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(format_validation_error(err, source)) from None
    except (TypeError, RecursionError, OverflowError) as exc:  # a value no validator anticipated
        raise ScenarioError(f"{source}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]) from None


DATA_PATHS = (("catalog", "path"), ("users", "logs", "interactions"), ("users", "from_calibration"))


def _relative_to(data: dict[str, Any], folder: Path) -> None:
    """Dataset paths in a scenario file are relative to the file's folder (when they exist there)."""
    for keys in DATA_PATHS:
        node: Any = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        value = node.get(keys[-1]) if isinstance(node, dict) else None
        if isinstance(value, str) and not Path(value).is_absolute() and (folder / value).exists():
            node[keys[-1]] = str(folder / value)


def _read(ref: str) -> tuple[str, str]:
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file '{ref}' does not exist")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ScenarioError(f"scenario '{path.name}': {path.stat().st_size:,} bytes; a scenario file is at most {MAX_FILE_BYTES:,}")
        try:
            return path.read_text(encoding="utf-8"), f"scenario '{path.name}'"
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"scenario '{path.name}': not UTF-8 text (byte {exc.start})") from None
    if ref in bundled_scenarios():
        return resources.files("recoworld.scenarios").joinpath(f"{ref}.yaml").read_text(), f"scenario '{ref}'"
    raise ScenarioError(f"unknown scenario '{ref}' (bundled: {', '.join(bundled_scenarios())}; or give a .yaml path)")
