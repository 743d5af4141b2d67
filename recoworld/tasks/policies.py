"""From what the user types as POLICY to something a task can serve: one dispatch, :func:`resolve_policy`.

Kinds, tried in this order:

- ``http://...`` / ``https://...``: a policy served by ``recoworld serve-policy`` (:mod:`recoworld.tasks.policy_client`);
- a folder with an ``agent.json``: a tuned LLM agent;
- a ``.zip`` file: a Stable-Baselines3 model (PPO or A2C; the ``rl`` extra);
- anything else: a recommender the registry knows (a registered name, a name an installed package
  declares in the ``recoworld.recommenders`` entry-point group, or ``package.module:Class``).

Every recommender is wrapped in :class:`CheckedSlates`, so a policy that answers with an invalid
slate (wrong shape, positions outside the candidates), or raises, stops the evaluation with one line
naming the policy and what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.protocol import Recommender, SlateChoice, UserView
from recoworld.env.actions import check_actions
from recoworld.tasks.definitions import Task
from recoworld.tasks.policy_errors import PolicyError

Kind = Literal["recommender", "sb3", "agent_folder", "agent_server"]


@dataclass
class Policy:
    """A resolved POLICY: a recommender, or an SB3 model served batched in episode tasks."""

    spec: str
    kind: Kind
    name: str
    params: dict[str, Any]
    recommender: BaseRecommender | None = None
    model: Any = None  # an SB3 model (kind "sb3")

    def as_recommender(self) -> BaseRecommender:
        """The policy as a recommender (an SB3 model through ``SB3Recommender``), its slates checked."""
        if self.recommender is None:
            from recoworld.agents.rl.recommender import SB3Recommender

            self.recommender = CheckedSlates(SB3Recommender(self.model), self.spec)
        return self.recommender

    def close(self) -> None:
        """Release what the policy holds open (a served policy's session on its server)."""
        close = getattr(getattr(self.recommender, "base", None), "close", None)
        if callable(close):
            close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class CheckedSlates(BaseRecommender):
    """Serves ``base``'s slates after checking them (shape (b, K), positions in [0, M)); anything wrong,
    or an exception inside the policy, is one :class:`PolicyError` line naming the policy."""

    def __init__(self, base: Recommender, spec: str) -> None:
        super().__init__(0)
        self.base, self.spec = base, spec
        self.name = str(getattr(base, "name", spec))
        self.needs_text = bool(getattr(base, "needs_text", False))
        self.needs_observation = bool(getattr(base, "needs_observation", False))

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except PolicyError:
            raise
        except Exception as exc:  # the policy's own code failed
            raise PolicyError(f"policy '{self.spec}': {what} raised {_first_line(exc)}") from None

    def slate(self, view: UserView) -> SlateChoice:
        """The wrapped policy's slate, checked: a :class:`SlateChoice` whose positions have the view's shape and lie
        among the candidates, else :class:`PolicyError` naming the policy."""
        choice = self._call("slate()", lambda: self.base.slate(view))
        if not isinstance(choice, SlateChoice):
            raise PolicyError(f"policy '{self.spec}': slate() returned {type(choice).__name__}, expected a SlateChoice")
        shape, m = (len(view), view.slate_size), view.candidates.shape[1]
        try:
            check_actions(choice.positions, shape, m, "candidate positions", "slate")
        except ValueError as exc:
            raise PolicyError(f"policy '{self.spec}' returned an invalid slate: {exc}") from None
        return choice  # a repeated item is served by the env's rule (recoworld.env.actions)

    def observe(self, view: UserView, positions: np.ndarray, clicks: np.ndarray, reviewed: np.ndarray) -> None:
        """Pass the users' feedback on the last slates to the wrapped policy; its errors name the policy."""
        self._call("observe()", lambda: self.base.observe(view, positions, clicks, reviewed))

    def retrain(self, impressions: Any) -> None:
        """Let the wrapped policy retrain on the day's impressions; its errors name the policy."""
        self._call("retrain()", lambda: self.base.retrain(impressions))

    @property
    def learns_from_logs(self) -> bool:
        """Whether the wrapped policy retrains from logs (False when it does not say)."""
        return bool(getattr(self.base, "learns_from_logs", False))

    def inclusion(self, view: UserView) -> np.ndarray:
        """The wrapped policy's inclusion probabilities of the candidates (for off-policy estimates)."""
        return self.base.inclusion(view)

    def reseed(self, key: Sequence[int]) -> None:
        """Reseed the wrapped policy's random streams from ``key``."""
        self.base.reseed(key)

    def merge(self, copies: Sequence[Any]) -> None:
        """Merge the state of the wrapped policy's copies (checked or not) into it."""
        self.base.merge([c.base if isinstance(c, CheckedSlates) else c for c in copies])


# ------------------------------------------------------------------ the kinds
def _agent_server(spec: str, seed: int, params: dict[str, Any]) -> Policy:
    """A policy behind ``recoworld serve-policy`` (or any server speaking its protocol): see policy_client."""
    from recoworld.tasks.policy_client import ServedPolicy

    if params:
        raise PolicyError(f"--params: a served policy sets its own (got {sorted(params)})")
    served = ServedPolicy(spec)
    return Policy(spec, "agent_server", served.name, {}, recommender=CheckedSlates(served, spec))


def _agent_folder(spec: str, seed: int, params: dict[str, Any]) -> Policy:
    """A tuned language agent (``recoworld train-agent``'s folder); its model loads at its first instruction."""
    try:
        from recoworld.agents.language.agent import load_agent
    except ImportError as exc:
        raise PolicyError(f"policy '{spec}': a language agent needs the agent extra (pip install 'recoworld[agent]'): "
                          f"{exc}") from None
    if params:
        raise PolicyError(f"--params: a language agent's folder sets its own (got {sorted(params)})")
    try:
        agent = load_agent(spec, seed=seed)
    except ValueError as exc:
        raise PolicyError(f"policy '{spec}': {str(exc).splitlines()[0]}") from None
    return Policy(spec, "agent_folder", agent.name, {}, recommender=CheckedSlates(agent, spec))


def _sb3_zip(spec: str, seed: int, params: dict[str, Any]) -> Policy:
    if params:
        raise PolicyError(f"--params: an SB3 model takes none (got {sorted(params)})")
    algo = "a2c" if Path(spec).stem.lower().startswith("a2c") else "ppo"
    try:
        from recoworld.agents.rl.training import load
    except ImportError as exc:
        raise PolicyError(f"policy '{spec}': an SB3 model needs the rl extra (pip install 'recoworld[rl]'): {exc}") from None
    try:
        model = load(spec, algo)
    except Exception as exc:
        raise PolicyError(f"policy '{spec}': not a Stable-Baselines3 model zip ({_first_line(exc)})") from None
    return Policy(spec, "sb3", Path(spec).stem, {}, model=model)


def _recommender(spec: str, seed: int, params: dict[str, Any]) -> Policy:
    from recoworld.agents.registry import make_recommender, validate_params

    try:
        validate_params(spec, params)
        rec = make_recommender(spec, params, seed=seed)
    except ValueError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "bad recommender"
        raise PolicyError(f"--{text}" if text.startswith("params.") else f"policy '{spec}': {text}") from None
    except Exception as exc:  # the recommender's own constructor failed
        raise PolicyError(f"policy '{spec}': building it raised {_first_line(exc)}") from None
    return Policy(spec, "recommender", spec, dict(params), recommender=CheckedSlates(rec, spec))


def policy_kind(spec: str) -> Kind:
    """Which kind of POLICY ``spec`` names (see the module docstring)."""
    if spec.startswith(("http://", "https://")):
        return "agent_server"
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "agent.json").is_file():
        return "agent_folder"
    if spec.endswith(".zip"):
        return "sb3"
    return "recommender"


LOADERS: dict[Kind, Callable[[str, int, dict[str, Any]], Policy]] = {
    "agent_server": _agent_server, "agent_folder": _agent_folder, "sb3": _sb3_zip, "recommender": _recommender,
}


def resolve_policy(spec: str, task: Task, params: dict[str, Any] | None = None) -> Policy:
    """The policy ``spec`` names, ready for ``task``; one :class:`PolicyError` line when it cannot be."""
    return load_policy(spec, task.policy_seed, params)


def load_policy(spec: str, seed: int = 0, params: dict[str, Any] | None = None) -> Policy:
    """The policy ``spec`` names, built with ``seed`` (a task's ``policy_seed``); one :class:`PolicyError` line."""
    kind = policy_kind(spec)
    if kind == "sb3" and not Path(spec).expanduser().is_file():
        raise PolicyError(f"policy '{spec}': no such file (an SB3 model zip)")
    if kind == "recommender" and ("/" in spec or Path(spec).expanduser().exists()):
        path = Path(spec).expanduser()
        what = "a folder without agent.json" if path.is_dir() else "no such file or folder" if not path.exists() else "a file"
        raise PolicyError(f"policy '{spec}': {what}; expected a registered recommender, package.module:Class, "
                          "an SB3 .zip, an agent folder (agent.json) or an agent server URL")
    return LOADERS[kind](str(Path(spec).expanduser()) if kind in ("sb3", "agent_folder") else spec, seed, dict(params or {}))
