"""Recommenders by name, so scenarios and the CLI can ask for them with plain data.

Entries are ``"module:attribute"`` strings (like Gymnasium's entry points), so reading the list of
names, which every scenario does, imports no recommender. A name is registered once; ``params``
are checked against the factory's signature with pydantic before a run starts.

Recommenders from your own code need no call to :func:`register`:

- a name of the form ``package.module:Class`` is imported when it is first used;
- an installed package declares names in the ``recoworld.recommenders`` entry-point group
  (``[project.entry-points."recoworld.recommenders"] my-rec = "my_package.recs:MyRecommender"``);
  the group is read on first use and a module is imported only when its name is asked for.

Either way the parameters are validated as for the built-in names, and a bad name is one error line.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
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
    "language_agent": "recoworld.agents.language.agent:LanguageAgent",  # loads its model on first use
}
WRAPPER = "instruction_following"  # wraps ``params['base']`` (default greedy)
_WRAPPER_ENTRY = "recoworld.agents.instruction_following:InstructionFollowing"
_WRAPPER_OWN = ("base", "base_params")


ENTRY_POINT_GROUP = "recoworld.recommenders"
_OBJECT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_installed: dict[str, list[str]] | None = None  # entry-point name -> "module:attr" of each package that declares it


def installed_recommenders() -> dict[str, list[str]]:
    """Names declared by installed packages in the ``recoworld.recommenders`` entry-point group (read once;
    nothing is imported). A name two packages declare maps to both entries and is refused when used."""
    global _installed
    if _installed is None:
        found: dict[str, list[str]] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep.dist, "name", None) or "an installed package"
            entry = f"{ep.value} (from {dist})"
            if entry not in found.setdefault(ep.name, []):
                found[ep.name].append(entry)
        _installed = found
    return _installed


def is_object_path(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:Attribute``."""
    return _OBJECT_PATH.fullmatch(name) is not None


def _resolve(entry: str | Factory, name: str) -> Factory:
    """Import a ``"module:attr"`` entry; any failure is one ``ValueError`` line naming ``name``."""
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(" ")[0].partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        raise ValueError(f"recommender '{name}': no module named '{missing}' (is its package installed, "
                         "or its folder on PYTHONPATH?)") from None
    except Exception as exc:  # the user's module raised while importing
        raise ValueError(f"recommender '{name}': importing '{module}' failed: {type(exc).__name__}: "
                         f"{_first_line(exc)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"recommender '{name}': '{module}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"recommender '{name}': '{module}:{attr}' is not a class or function")
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def factory(name: str) -> Factory:
    """The callable registered under ``name``, declared by an installed package, or named as
    ``package.module:Class`` (imported on first use)."""
    if name == WRAPPER:
        return _resolve(_WRAPPER_ENTRY, name)
    if name in RECOMMENDERS:
        return _resolve(RECOMMENDERS[name], name)
    if name in installed_recommenders():
        entries = installed_recommenders()[name]
        if len(entries) > 1:
            raise ValueError(f"recommender '{name}': declared by several installed packages ({'; '.join(entries)})")
        return _resolve(entries[0], name)
    if ":" in name:
        if not is_object_path(name):
            raise ValueError(f"recommender '{name}': expected package.module:Class")
        return _resolve(name, name)
    raise ValueError(f"unknown recommender '{name}' (known: {', '.join(sorted(known_recommenders()))}; "
                     "or package.module:Class)")


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
    if extra == "forbid" and all(p.name != "seed" for p in params):
        raise ValueError(f"recommender '{name}': its factory must accept seed= (every recommender is seeded)")
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
    """Every name :func:`make_recommender` accepts (``package.module:Class`` paths aside): the built-in and
    registered names and those installed packages declare (built-in names win)."""
    return {*RECOMMENDERS, WRAPPER, *installed_recommenders()}


def register(name: str, factory: Factory | str) -> None:
    """Add a recommender factory (or a ``"module:attribute"`` entry) under a new ``name``; it must
    accept ``seed=``. A name already registered is refused."""
    if name in {*RECOMMENDERS, WRAPPER}:
        raise ValueError(f"recommender '{name}': already registered")
    if ":" in name:
        raise ValueError(f"recommender '{name}': a registered name has no ':' (that form names package.module:Class)")
    RECOMMENDERS[name] = factory
