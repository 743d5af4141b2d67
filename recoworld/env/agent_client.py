"""A client of ``recoworld serve``: openenv's own ``EnvClient`` for RecoWorld's types, and one helper that
plays an episode against a server or an in-process :class:`~recoworld.env.agent.RecoWorldAgentEnv`.

    from recoworld.env.agent_client import RecoWorldClient, play_episode

    with RecoWorldClient(base_url="http://127.0.0.1:8000").sync() as client:
        episode = play_episode(client, lambda obs: {"items": list(range(obs.slate_size))}, seed=7)

``RecoWorldClient`` is async (``await client.reset(seed=7)``); ``.sync()`` wraps it for plain calls. Each
client is one WebSocket session, with its own world on the server.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, Field

try:
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
except ImportError as exc:  # pragma: no cover
    raise ImportError(f"the RecoWorld client needs the agent extra: pip install 'recoworld[agent]' ({exc})") from None

from recoworld.agents.language.protocol import AgentObservation
from recoworld.env.agent import RecoWorldAction, RecoWorldObservation, RecoWorldState

Policy = Callable[[AgentObservation], Any]  # an observation -> an AgentAction or its dict


class RecoWorldClient(EnvClient[RecoWorldAction, RecoWorldObservation, RecoWorldState]):
    """openenv's WebSocket client for ``recoworld serve``: ``reset(seed=..., scenario=..., config=...)``,
    ``step(action)`` (an :class:`~recoworld.agents.language.protocol.AgentAction` or its dict) and ``state()``."""

    def _step_payload(self, action: Any) -> dict[str, Any]:
        if isinstance(action, BaseModel):
            return action.model_dump(exclude_none=True)
        return action  # a dict goes as it is: the server validates it and answers a bad one with an error observation

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[RecoWorldObservation]:
        obs = RecoWorldObservation.model_validate(
            {**payload.get("observation", {}), "reward": payload.get("reward"), "done": payload.get("done", False)}
        )
        return StepResult(observation=obs, reward=payload.get("reward"), done=bool(payload.get("done", False)))

    def _parse_state(self, payload: dict[str, Any]) -> RecoWorldState:
        return RecoWorldState.model_validate(payload)


class Episode(BaseModel):
    """What one played episode gave: each step's reward and metadata (the gym info's fields), and how it ended."""

    seed: int | None = None
    rewards: list[float] = Field(default_factory=list)
    infos: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="One line per refused action (no step was taken).")
    done: bool = False
    truncated: bool = False

    @property
    def total(self) -> float:
        """The episode's return: the sum of its rewards."""
        return float(sum(self.rewards))


def _observation(result: Any) -> RecoWorldObservation:
    return result.observation if isinstance(result, StepResult) else result


def play_episode(env: Any, policy: Policy, seed: int | None = None, max_steps: int = 10_000, **options: Any) -> Episode:
    """Play one episode with ``policy`` on a sync :class:`RecoWorldClient` or an in-process env, to its end
    (done or truncated) or ``max_steps`` actions; ``options`` go to ``reset`` (``scenario``, ``config``)."""
    obs = _observation(env.reset(seed=seed, **options))
    episode = Episode(seed=seed)
    for _ in range(max_steps):
        if obs.done or obs.truncated:
            break
        obs = _observation(env.step(policy(obs)))
        if obs.error is not None:
            episode.errors.append(obs.error)
            continue
        episode.rewards.append(float(obs.reward))
        episode.infos.append(dict(obs.metadata))
    episode.done, episode.truncated = obs.done, obs.truncated
    return episode
