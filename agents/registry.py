"""Recommenders by name, so scenarios and the CLI can ask for them with plain data.

Entries are ``"module:attribute"`` strings (like Gymnasium's entry points), so reading the list of
names, which every scenario does, imports no recommender. A name is registered once; ``params``
are checked against the factory's signature with pydantic before a run starts.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

if TYPE_CHECKING:
    from recoworld.agents.baselines import BaseRecommender

Factory = Callable[..., "BaseRecommender"]

RECOMMENDERS: dict[str, str | Factory] = {
    "random": "recoworld.agents.baselines:RandomRecommender",
    "popular": "recoworld.agents.baselines:PopularRecommender",
    "greedy": "recoworld.agents.baselines:GreedyRelevance",
    "mmr": "recoworld.agents.baselines:MMRDiversity",
    "egreedy": "recoworld.agents.baselines:EpsilonGreedy",
    "linucb": "recoworld.agents.baselines:LinUCB",
    "toolrec": "recoworld.agents.toolrec.recommender:ToolRec",
    "lerl": "recoworld.agents.lerl:LERLRecommender",
    "mf": "recoworld.agents.mf:MatrixFactorization",
    "sb3": "recoworld.agents.rl.recommender:SB3Recommender",  # imports torch: only when asked for
    "sasrec": "recoworld.agents.sasrec_arm:SASRecRecommender",  # imports torch: only when asked for
}
WRAPPER = "instruction_following"  # wraps ``params['base']`` (default greedy)
_WRAPPER_ENTRY = "recoworld.agents.instruction_following:InstructionFollowing"
_WRAPPER_OWN = ("base", "base_params")


def _resolve(entry: str | Factory) -> Factory:
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def factory(name: str) -> Factory:
    """The callable registered under ``name`` (imported on first use)."""
    if name == WRAPPER:
        return _resolve(_WRAPPER_ENTRY)
    if name not in RECOMMENDERS:
        raise ValueError(f"recommender: unknown name '{name}' (known: {', '.join(sorted(known_recommenders()))})")
    return _resolve(RECOMMENDERS[name])


def _annotation(fn: Callable, param: inspect.Parameter) -> Any:
    """A parameter's annotation as a type pydantic can check; ``Any`` where it cannot."""
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        return Any
    if isinstance(ann, str):
        module = sys.modules.get(getattr(fn, "__module__", ""), None)
        try:
            ann = eval(ann, vars(module) if module else {})  # noqa: S307 (annotations of our own code)
        except Exception:  # a name only imported for type checking
            return Any
    try:
        create_model("_probe", __config__=ConfigDict(arbitrary_types_allowed=True), x=(ann, ...))
    except Exception:  # a Protocol or a type pydantic cannot check
        return Any
    return ann


@lru_cache(maxsize=None)
def _params_model(name: str, fn: Callable) -> type[BaseModel]:
    init = fn.__init__ if inspect.isclass(fn) else fn
    params = list(inspect.signature(init).parameters.values())
    extra = "allow" if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params) else "forbid"
    fields: dict[str, Any] = {}
    for p in params:
        if p.name in ("self", "seed") or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if name == WRAPPER and p.name in _WRAPPER_OWN:
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (_annotation(init, p), default)
    if name == WRAPPER:
        fields["base"] = (str, "greedy")
        fields["base_params"] = (dict[str, Any], {})
    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)
    return create_model(f"{name}_params", __config__=config, **fields)


def validate_params(name: str, params: dict[str, Any] | None) -> None:
    """Raise ``ValueError("params.KEY: ...")`` when ``params`` do not fit ``name``'s factory.

    Validation only checks: the factory still receives the params exactly as given."""
    params = dict(params or {})
    model = _params_model(name, factory(name))
    if name == WRAPPER and "base" not in params:
        params.pop("base_params", None)  # the base defaults to greedy; its params are checked below
    try:
        model.model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = "unknown parameter" if first["type"] == "extra_forbidden" else first["msg"]
        raise ValueError(f"params.{loc}: {msg} (recommender '{name}')") from None
    if name == WRAPPER:
        base = params.get("base", "greedy")
        if isinstance(base, str):
            try:
                validate_params(base, params.get("base_params"))
            except ValueError as exc:
                raise ValueError(f"params.base_params.{str(exc).removeprefix('params.')}") from None


def make_recommender(name: str, params: dict[str, Any] | None = None, seed: int = 0) -> BaseRecommender:
    """Build a registered recommender; ``instruction_following`` wraps ``params['base']`` (default greedy)."""
    params = dict(params or {})
    build = factory(name)
    if name == WRAPPER:
        base_name = params.pop("base", "greedy")
        base_params = params.pop("base_params", {})
        return build(make_recommender(base_name, base_params, seed), seed=seed, **params)
    try:
        return build(seed=seed, **params)
    except TypeError as exc:
        raise ValueError(f"recommender '{name}': bad parameters {sorted(params)} ({exc})") from None


def known_recommenders() -> set[str]:
    """Every name :func:`make_recommender` accepts."""
    return {*RECOMMENDERS, WRAPPER}


def register(name: str, factory: Factory | str) -> None:
    """Add a recommender factory (or a ``"module:attribute"`` entry) under a new ``name``; it must
    accept ``seed=``. A name already registered is refused."""
    if name in known_recommenders():
        raise ValueError(f"recommender '{name}': already registered")
    RECOMMENDERS[name] = factory
