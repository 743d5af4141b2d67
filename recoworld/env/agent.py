"""RecoWorld-v0 for language agents: an openenv-core ``Environment`` over the same world and kernel.

Each instance wraps one :class:`~recoworld.env.single.RecoWorldEnv` and calls its ``reset`` and ``step``,
so the same seed and the same slates give the same trajectory (rewards, done, infos) as
``gym.make("RecoWorld-v0")``. An observation is :func:`~recoworld.agents.language.observe.observe_view` of
the user's view (never the hidden mindset); an action is a slate of candidate ids or ToolRec tool calls.

A bad action (unknown ids, a wrong count, repeats, both or neither of ``items`` and ``tool_calls``, an
unknown tool attribute or topic, a malformed reply) gets the current observation back with ``error`` set to
one line, no step taken, and reward 0: the bundled scenarios define no invalid-action penalty. Stepping a
session without an episode, or one that was closed (idle past the server's timeout), raises
:class:`SessionError`, which the server answers with a one-line 4xx or WebSocket error.

Needs the ``agent`` extra (``pip install 'recoworld[agent]'``); nothing here loads on ``import recoworld``.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field, PrivateAttr, ValidationError, model_serializer, model_validator

from recoworld.agents.language.observe import HISTORY, observe_view
from recoworld.agents.language.protocol import AgentAction, AgentObservation

try:
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State
except ImportError as exc:  # pragma: no cover - exercised by the CLI's one-line message
    raise ImportError(f"the language-agent server needs the agent extra: pip install 'recoworld[agent]' ({exc})") from None

from recoworld.env.single import RecoWorldEnv
from recoworld.scenario import Scenario, bundled_scenarios, deep_merge, format_validation_error, load_scenario

# What a step's metadata carries from the gym info: never ``llm`` (it holds the hidden mindset).
INFO_KEYS = ("user_id", "day", "session", "session_step", "instruction", "rewards", "items", "actions", "watch_seconds",
             "compliance", "session_ended")
# Scenario fields a remote client may override at reset (the server's operator sets the rest): nothing that
# names a file, a model or a backend, and not the world's seed (each new seed would build a new catalog).
CLIENT_FIELDS: dict[str, tuple[str, ...] | None] = {
    "env": None, "rewards": None, "user_model": None, "users": ("segments", "taste_noise"),
}
RESET_OPTIONS = ("scenario", "config")
# Sizes a client may lower but not raise above its scenario's: an observation and a session's memory grow with
# them (100,000 candidates made a 25 MB observation and +276 MB in one session). The operator sets them.
CLIENT_CEILINGS = ("num_candidates", "slate_size", "history_length")
MAX_CLIENT_SEGMENTS = 100  # each costs time at reset (4,000 took 2.5 s); the bundled scenarios have a few


class SessionError(RuntimeError):
    """A step that no episode can take: none was started, or the session was closed or expired."""


class RecoWorldAction(AgentAction, Action):
    """:class:`~recoworld.agents.language.protocol.AgentAction` as an openenv ``Action`` (adds its ``metadata``)."""


class RecoWorldObservation(AgentObservation, Observation):
    """:class:`~recoworld.agents.language.protocol.AgentObservation` as an openenv ``Observation``.

    Its ``metadata`` (the step's reward components, per-item actions, day, session) is part of what a client
    receives: openenv's server excludes ``metadata`` when it serializes an observation, and this keeps it."""

    @model_serializer(mode="wrap")
    def _keep_metadata(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and "metadata" not in data:
            data["metadata"] = dict(self.metadata)
        return data


class ReceivedAction(RecoWorldAction):
    """An action as the server receives it: a reply that fails validation is kept with its one-line problem,
    so the env answers with an error observation rather than a protocol error."""

    _problem: str | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_problem(cls, data: Any, handler: Any) -> "ReceivedAction":
        try:
            return handler(data)
        except ValidationError as exc:
            received = cls.model_construct()
            received._problem = format_validation_error(exc, "action")
            return received


class RecoWorldState(State):
    """openenv's session state plus where the user is."""

    scenario: str = ""
    user_id: str = ""
    day: int = 0
    session: int = 0
    ended: bool = Field(False, description="The episode ended (the user churned or the horizon was reached).")


@lru_cache(maxsize=32)
def cached_scenario(ref: str, overrides_json: str) -> Scenario:
    """A scenario with overrides, loaded once per process (sessions of one server start fast)."""
    return load_scenario(ref, json.loads(overrides_json))


def client_config(config: Any) -> dict[str, Any]:
    """Reset-time overrides from a client, checked against :data:`CLIENT_FIELDS` (ValueError in one line)."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"reset: config must be a mapping of scenario fields, got {type(config).__name__}")
    for key, value in config.items():
        if key not in CLIENT_FIELDS:
            raise ValueError(f"reset: config.{key} cannot be set by a client (allowed: {', '.join(CLIENT_FIELDS)}); "
                             "the server's operator chooses it with `recoworld serve --scenario`")
        allowed = CLIENT_FIELDS[key]
        if allowed is not None:
            if not isinstance(value, dict):
                raise ValueError(f"reset: config.{key} must be a mapping")
            bad = sorted(set(value) - set(allowed))
            if bad:
                raise ValueError(f"reset: config.{key}.{bad[0]} cannot be set by a client (allowed: {', '.join(allowed)})")
            segments = value.get("segments")
            if isinstance(segments, list) and len(segments) > MAX_CLIENT_SEGMENTS:
                raise ValueError(f"reset: config.{key}.segments: {len(segments)} segments, a client may give at most "
                                 f"{MAX_CLIENT_SEGMENTS}")
    return config


class RecoWorldAgentEnv(Environment[RecoWorldAction, RecoWorldObservation, RecoWorldState]):
    """One user's life on the platform, seen and acted on as a language agent (see the module docstring).

    ``scenario`` and ``config`` are the server's (any scenario name or path, any overrides, as for
    ``gym.make``); ``reset(scenario=..., config=...)`` lets a client pick a bundled scenario with parametric
    users and override :data:`CLIENT_FIELDS`. The env always takes slates of candidate ids (``action_mode``
    is ``slate``)."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # every instance owns its world; catalogs are shared read-only

    def __init__(self, scenario: str = "quickstart", config: dict[str, Any] | None = None, history: int = HISTORY) -> None:
        super().__init__()
        self.default_scenario = str(scenario)
        self.default_config = dict(config or {})
        self.history = history
        self.gym: RecoWorldEnv | None = None
        self._key: tuple[str, str] | None = None
        self._state = RecoWorldState()
        self._last: RecoWorldObservation | None = None
        self._toolrec = None
        self._last_tools = ""
        self._closed = False

    # ------------------------------------------------------------------ openenv API
    def reset(self, seed: int | None = None, episode_id: str | None = None, **options: Any) -> RecoWorldObservation:
        """A new user (``seed`` as in RecoWorld-v0); options ``scenario`` (bundled name) and ``config``."""
        self._check_open()
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"reset: unknown option '{unknown[0]}' (known: seed, episode_id, {', '.join(RESET_OPTIONS)})")
        self._build(options.get("scenario"), client_config(options.get("config")))
        _, info = self.gym.reset(seed=seed)
        self._state = RecoWorldState(episode_id=episode_id or uuid.uuid4().hex, step_count=0,
                                     scenario=self.gym.scenario.name, user_id=info["user_id"],
                                     day=info["day"], session=info["session"])
        return self._observe(info, reward=None, terminated=False, truncated=False)

    def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> RecoWorldObservation:
        """Serve the reply's slate for one step; a bad reply gets an error observation and changes nothing."""
        self._check_open()
        if self.gym is None or self._last is None:
            raise SessionError("no episode in this session: call reset first (over HTTP /step is stateless; "
                               "play episodes over the WebSocket /ws, e.g. with RecoWorldClient)")
        if not isinstance(action, AgentAction):
            action = ReceivedAction.model_validate(action)
        problem = getattr(action, "_problem", None) or self._episode_problem()
        positions = None
        if problem is None:
            positions, problem = self._positions(action)
        if problem is not None:
            return self._refuse(problem)
        _, reward, terminated, truncated, info = self.gym.step(np.asarray(positions, dtype=np.int64))
        self._state.step_count += 1
        self._state.day, self._state.session = info["day"], info["session"]
        self._state.ended = bool(terminated or truncated)
        obs = self._observe(info, reward=float(reward), terminated=bool(terminated), truncated=bool(truncated))
        obs.metadata["slate"] = list(positions)
        if action.tool_calls:
            obs.metadata["tools"] = self._last_tools
        return obs

    @property
    def state(self) -> RecoWorldState:
        """openenv's session state (episode id, step count) with the scenario, user, day, session and whether it ended."""
        return self._state

    @property
    def is_open(self) -> bool:
        """False once :meth:`close` ran (the session ended or expired)."""
        return not self._closed

    def close(self) -> None:
        """Free the world (the server calls this when a session ends or expires); later calls raise SessionError."""
        self._closed = True
        if self.gym is not None:
            self.gym.close()
        self.gym, self._last, self._toolrec = None, None, None

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise SessionError("this session is closed (it ended or sat idle past the server's timeout): open a new one")

    def _build(self, scenario: Any, config: dict[str, Any]) -> None:
        """The wrapped RecoWorldEnv for this scenario and these overrides (kept while they stay the same)."""
        if scenario is None:
            ref = self.default_scenario
        else:
            if not isinstance(scenario, str) or scenario not in bundled_scenarios():
                raise ValueError(f"reset: scenario must be a bundled name ({', '.join(bundled_scenarios())}), got {scenario!r}")
            ref = scenario
        overrides = deep_merge(deep_merge(self.default_config, config), {"env": {"action_mode": "slate"}})
        key = (ref, json.dumps(overrides, sort_keys=True))
        if key == self._key and self.gym is not None:
            return
        loaded = cached_scenario(*key)
        if scenario is not None and loaded.users.backend != "parametric":
            raise ValueError(f"reset: scenario '{scenario}' has {loaded.users.backend} users; only the server's operator "
                             "can serve it (recoworld serve --scenario)")
        if config:
            self._check_ceilings(ref, loaded)
        if self.gym is not None:
            self.gym.close()
        self.gym, self._key, self._toolrec = RecoWorldEnv(scenario=loaded), key, None

    def _check_ceilings(self, ref: str, loaded: Scenario) -> None:
        """ValueError in one line if a client's overrides raise a :data:`CLIENT_CEILINGS` size above ``ref``'s."""
        server_side = deep_merge(self.default_config, {"env": {"action_mode": "slate"}})
        base = cached_scenario(ref, json.dumps(server_side, sort_keys=True))
        for field in CLIENT_CEILINGS:
            asked, ceiling = getattr(loaded.env, field), getattr(base.env, field)
            if asked > ceiling:
                raise ValueError(f"reset: config.env.{field}: {asked} is over the scenario's {ceiling}; a client may lower "
                                 "it, the server's operator raises it (recoworld serve --scenario)")

    def _observe(self, info: dict[str, Any], reward: float | None, terminated: bool, truncated: bool) -> RecoWorldObservation:
        view = observe_view(self.gym.user_view(), 0, self.history)
        obs = RecoWorldObservation.model_construct(**{k: getattr(view, k) for k in AgentObservation.model_fields})
        obs.reward, obs.done, obs.truncated = reward, terminated, truncated
        obs.metadata = {k: info[k] for k in INFO_KEYS if k in info}
        self._last = obs
        return obs

    def _refuse(self, problem: str) -> RecoWorldObservation:
        """The current observation again, with the one-line problem and no reward (no penalty is defined)."""
        return self._last.model_copy(update={"error": problem, "reward": 0.0, "metadata": {"error": problem}})

    def _episode_problem(self) -> str | None:
        return "the episode is over: call reset for a new user" if self._state.ended else None

    def _positions(self, action: AgentAction) -> tuple[list[int] | None, str | None]:
        """The slate's candidate positions, or the one-line reason the action cannot be served."""
        k, m = self.gym.slate_size, len(self._last.candidates)
        if (action.items is None) == (action.tool_calls is None):
            return None, "action: give either items (candidate ids) or tool_calls, not both and not neither"
        if action.items is not None:
            items = action.items
            if len(items) != k:
                return None, f"action.items: expected {k} candidate ids, got {len(items)}"
            outside = [i for i in items if not 0 <= i < m]
            if outside:
                return None, f"action.items: unknown candidate id {outside[0]} (ids are 0 to {m - 1})"
            if len(set(items)) != k:
                twice = next(i for i in items if items.count(i) > 1)
                return None, f"action.items: candidate id {twice} appears more than once"
            return list(items), None
        return self._run_tools(action)

    def _run_tools(self, action: AgentAction) -> tuple[list[int] | None, str | None]:
        """ToolRec's tools over the base ranker, replaying the agent's calls; the first failed call is the error."""
        from recoworld.agents.toolrec.recommender import ToolRec, reasoning

        calls = action.tool_calls
        if not calls:
            return None, "action.tool_calls: empty (end with a finish call)"
        if any(c.name == "finish" for c in calls[:-1]):
            return None, "action.tool_calls: finish must be the last call"
        replay = _Replay(calls)
        if self._toolrec is None:
            self._toolrec = ToolRec(controller=replay)
        self._toolrec._controller, self._toolrec.max_steps = replay, len(calls) + 1
        slate, trajectory = self._toolrec.run(self.gym.user_view())
        for call in trajectory:
            if call.error and not call.auto and call.action is not None and call.action.kind != "finish":
                return None, f"action.tool_calls[{call.step}]: {call.error}"
        self._last_tools = reasoning(trajectory)
        return [int(p) for p in slate], None


class _Replay:
    """A ToolRec controller that plays back an agent's tool calls, then finishes."""

    name = "agent"

    def __init__(self, calls: list) -> None:
        from recoworld.agents.toolrec.actions import ToolAction

        self.actions = [ToolAction(kind=c.name, attribute=c.attribute, value=c.value, k=c.k) for c in calls]
        self.finish = ToolAction(kind="finish", reason="agent's calls done")

    def next_action(self, ctx: Any) -> Any:
        return self.actions[ctx.step] if ctx.step < len(self.actions) else self.finish
