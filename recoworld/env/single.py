"""RecoWorld-v0: one user's life on the platform as a Gymnasium environment."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recoworld.llm.base import Usage
from recoworld.env.actions import check_actions, serve_one
from recoworld.env.topics import fill_topics
from recoworld.scenario import load_scenario
from recoworld.users import layout as UL
from recoworld.world import layout as WL
from recoworld.users.layout import ACTION_LABELS
from recoworld.world.observation import observation_buffers, observation_space
from recoworld.world.rewards import COMPONENTS, as_dict
from recoworld.world.simulation import Simulation, StepOutcome, build_catalog
from recoworld.users.parametric import ParametricUserModel, UserBatch
from recoworld.users.population import PendingProfile, PopulationSampler
from recoworld.users.profile import UserProfile
from recoworld.users.profile_draws import generator_address

ALL = slice(None)
OBSERVATION_LAYOUTS = ("full", "compact")  # RecoWorld-v0's observation, and RecoWorld-Compact-v0's (observation_space)
ROW0 = np.zeros(1, dtype=np.int64)
_LABEL_OF_CODE = {float(code): label for code, label in enumerate(ACTION_LABELS)}  # the kernel writes codes as floats


def draw_users(
    sampler: Any, catalog: Any, rngs: list[np.random.Generator], taste_noise: float, profiles: Sequence[Any] | None = None,
    gens: np.ndarray | None = None,
) -> tuple[list[UserProfile | PendingProfile], UserBatch, np.ndarray]:
    """New users as envs' resets draw them, user i from ``rngs[i]`` in this order: the profile (unless
    ``profiles[i]`` gives one, a UserProfile or its dict), the taste noise, then one raw draw for the first
    candidates (returned, (n,) uint64). Each user's state is what a one-user simulation of them has; a profile
    drawn from segments stays a :class:`PendingProfile` (the state is built from its draws, in one batch).
    ``gens``: the generators' ``generator_address`` rows, when the caller keeps them (else made here)."""
    if profiles is None and isinstance(sampler, PopulationSampler):
        if gens is None:
            gens = np.array([generator_address(rng) for rng in rngs], dtype=np.uint64).reshape(len(rngs), 4)
        draws, noise, raws = sampler.draw_each(gens, catalog.topic_centroids.shape[1])
        users = UserBatch.from_draws(draws, catalog, noise, taste_noise)
        return [PendingProfile(sampler, draws, q, "u0") for q in range(len(draws))], users, raws  # sample(1, rng)'s id
    n, picked, batches = len(rngs), [], []
    raws = np.empty(n, dtype=np.uint64)
    for q, rng in enumerate(rngs):
        profile = profiles[q] if profiles is not None else None
        if profile is None:
            profile = sampler.sample(1, rng)[0]
        elif not isinstance(profile, UserProfile):
            profile = UserProfile.model_validate(profile)
        batches.append(UserBatch.from_profiles([profile], catalog, rng, taste_noise))
        raws[q] = rng.bit_generator.random_raw()
        picked.append(profile)
    if n == 1:
        return picked, batches[0], raws
    return picked, UserBatch(**{f.name: np.concatenate([getattr(u, f.name) for u in batches]) for f in fields(UserBatch)}), raws


_INTENT_DUMPS: dict[tuple, dict[str, Any]] = {}


def _intent_dump(intent: Any) -> dict[str, Any]:
    """``intent.model_dump()``, made once per distinct intent (an instruction is rebuilt each day it stays pending);
    a fresh copy each time, since the caller owns the info dict."""
    key = tuple(intent.__dict__.items())  # every field's value (pydantic keeps them there)
    dump = _INTENT_DUMPS.get(key)
    if dump is None:
        if len(_INTENT_DUMPS) > 4096:
            _INTENT_DUMPS.clear()
        dump = _INTENT_DUMPS[key] = intent.model_dump()
    return dict(dump)


def action_labels(out: StepOutcome, row: int = 0) -> list[str]:
    """Per-slot action of one user: share > comment > like > click, else skip; 'leave' where they left; 'unseen' after."""
    return [ACTION_LABELS[c] for c in out.response.action_codes[row].tolist()]


class RecoWorldEnv(gym.Env):
    """A recommender serves slates to one simulated user over days until churn or the horizon.

    Observation: a Dict of Box arrays of what the platform can see (see ``recoworld.world.observation``); with
    ``observation="compact"`` (``RecoWorld-Compact-v0``) the same values with each candidate's topic as an index.
    Action: ``MultiDiscrete([M] * K)`` candidate positions, or with ``action_mode="topic"``
    ``MultiDiscrete([T] * K)`` topics, each slot filled by the in-topic ranker. A slot that repeats an
    earlier slot's item is filled from the next unused candidate and counted in
    ``info["duplicate_positions"]`` (see ``recoworld.env.actions``).
    Reward: weighted components, reported in ``info["rewards"]``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario: str | dict[str, Any] = "quickstart",
        config: dict[str, Any] | None = None,
        render_mode: str | None = None,
        action_mode: str | None = None,
        user_backend: str | None = None,
        language_model: Any = None,
        observation: str = "full",
    ) -> None:
        if observation not in OBSERVATION_LAYOUTS:
            raise ValueError(f"observation: '{observation}' is not one of {list(OBSERVATION_LAYOUTS)}")
        self.compact = observation == "compact"
        if config is not None and not isinstance(config, dict):
            raise ValueError(f"config: expected a mapping of scenario fields such as {{'env': {{'slate_size': 5}}}}, "
                             f"got a {type(config).__name__}")
        overrides = dict(config or {})
        if action_mode is not None:
            overrides["env"] = {**overrides.get("env", {}), "action_mode": action_mode}
        if user_backend is not None:
            overrides["users"] = {**overrides.get("users", {}), "backend": user_backend}
        self.scenario = load_scenario(scenario, overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: '{render_mode}' is not supported (use one of {self.metadata['render_modes']})")
        self.render_mode = render_mode
        self.catalog = build_catalog(self.scenario.catalog, self.scenario.seed)
        cfg = self.scenario.env
        self.slate_size, self.n_candidates, self.n_topics = cfg.slate_size, cfg.num_candidates, self.catalog.n_topics
        self.action_mode = cfg.action_mode
        width = self.n_candidates if self.action_mode == "slate" else self.n_topics
        self.action_space = spaces.MultiDiscrete(np.full(self.slate_size, width, dtype=np.int64))
        self.observation_space = observation_space(self.n_candidates, self.n_topics, self.compact)
        from recoworld.users.sources import profile_source

        self._sampler = profile_source(self.scenario, self.catalog)
        self._model = ParametricUserModel(self.scenario.user_model)
        self.sim: Simulation | None = None
        self._last: tuple[np.ndarray, StepOutcome] | None = None
        # the kernel's per-step results, written in place each step: only the last step's are kept, info copies them
        self._outputs = (np.empty((1, self.slate_size, UL.ITEM_OUTPUTS)), np.empty((1, WL.USER_OUTPUTS)))
        # LLM users: the client is built at the first reset that needs it, never here
        self._language_model = language_model
        self._backend = None
        self._episode_llm = Usage()
        self._episode_fallbacks = 0

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """A new user (drawn with ``seed``, or ``options['profile']``) on their first day; the simulation is reused."""
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        given = options.get("profile")
        profiles, users, raws = draw_users(self._sampler, self.catalog, [rng], self.scenario.users.taste_noise,
                                           None if given is None else [given])
        if self.sim is None:
            self.sim = Simulation(self.scenario, self.catalog, profiles, rng, self._model, self.user_backend(), users=users)
        self.sim.rng = rng
        obs = observation_buffers(self.sim, 1, self.compact)
        self.sim.replace_users(ROW0, profiles, users, raws, obs_out=obs)
        self._last = None
        self._episode_llm, self._episode_fallbacks = Usage(), 0
        return {key: value[0] for key, value in obs.items()}, self._get_info(None)

    def step(self, action: Any):
        """Serve ``action`` (a slate of candidate positions, or a topic in topic mode); the user's response as
        Gymnasium's five-tuple."""
        if self.sim is None:
            raise RuntimeError("step() called before reset()")
        slate, repeats = self._serve(action)
        out = self.sim.step(ALL, slate[None, :], observe=True, outputs=self._outputs,
                            obs_out=observation_buffers(self.sim, 1, self.compact))
        self._last = (slate, out)
        obs = {key: value[0] for key, value in out.observation.items()}
        per_user = out.response.per_user[0].tolist()  # one conversion, then plain floats
        truncated = per_user[WL.U_FINISHED] > 0
        info = self._get_info(out, per_user)
        info["duplicate_positions"] = repeats
        if self._backend is not None:
            truncated |= self._backend.exhausted  # the LLM budget ran out: end cleanly
        return obs, per_user[WL.U_REWARD], per_user[WL.U_CHURN] > 0, truncated, info

    def render(self) -> str | None:
        """With ``render_mode='ansi'``: the user, day and session, and what they did with the last slate, as text."""
        if self.render_mode != "ansi" or self.sim is None:
            return None
        sim = self.sim
        head = f"user {sim.user_ids[0]} | day {int(sim.day[0])} | session {int(sim.platform.sessions[0])}"
        if self._last is None:
            return head + " | waiting for the first slate\n"
        slate, out = self._last
        lines = [head]
        labels = action_labels(out)
        for j, item in enumerate(slate):
            secs = out.response.watch_seconds[0, j]
            watch = f" {secs:4.0f}s" if secs > 0 else ""
            lines.append(f"  {j:2d} [{labels[j]:>7s}{watch}] {self.catalog.title[item]} ({self.catalog.topic_names[self.catalog.topic[item]]})")
        rewards = ", ".join(f"{k}={v:g}" for k, v in as_dict(out.components[0]).items() if v)
        lines.append(f"  reward {out.reward[0]:.2f} ({rewards or 'nothing'})")
        instr = sim.instruction(0)
        if instr is not None:
            lines.append(f'  user says: "{instr.text}"')
        lines.append(f"  (hidden mindset: {sim.mindset(0, memory=0).text()})")
        if out.session_ended[0]:
            lines.append("  -> churned" if out.churned[0] else f"  -> session over, back in {int(out.gap_days[0])} day(s)")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Release what the env holds (Gymnasium's contract): the LLM user stack it built, so its local model
        server stops unless another model still uses it, and its answer cache closes. A ``language_model`` passed
        in belongs to the caller and is left running. A reset after close builds the stack again."""
        if self._backend is not None:
            from recoworld.llm.config import close_stack

            close_stack(self._backend.model, keep=self._language_model)
            self._backend = None
        super().close()

    # ------------------------------------------------------------- helpers
    def fork(self) -> "RecoWorldEnv":
        """An independent copy of this env mid-episode (world, user, random state); the catalog, scenario and user
        backend are shared. Served the same slates, the copy and the original go on identically."""
        import copy

        sim = self.sim.fork()
        shared = {id(self.sim): sim, id(self.catalog): self.catalog, id(self.scenario): self.scenario}
        if self._backend is not None:
            shared[id(self._backend)] = self._backend
        return copy.deepcopy(self, memo=shared)

    def slate_from_action(self, action: Any) -> np.ndarray:
        """Validate an action and turn it into catalog rows (one clear error on bad input; a slot that
        repeats an item is filled from the next unused candidate, see ``recoworld.env.actions``)."""
        return self._serve(action)[0]

    def _serve(self, action: Any) -> tuple[np.ndarray, int]:
        """The slate's catalog rows and how many of its slots repeated an item."""
        if self.action_mode == "slate":
            return serve_one(self.sim.candidates[0], action, self.slate_size, self.n_candidates)
        topics = check_actions(action, (self.slate_size,), self.n_topics, "topics", "action")
        positions = fill_topics(self.sim.view(ALL), self.catalog.popularity, topics[None])[0]
        return serve_one(self.sim.candidates[0], positions, self.slate_size, self.n_candidates)

    def fill_topics(self, topics: np.ndarray) -> np.ndarray:
        """In-topic ranker: each slot takes the best unused candidate of its topic by engagement affinity,
        or the best unused candidate overall when the topic has none left."""
        return fill_topics(self.sim.view(ALL), self.catalog.popularity, np.asarray(topics)[None, :])[0]

    def user_backend(self):
        """The LLM or hybrid user backend of the scenario (built once, on first use), or None."""
        backend = self.scenario.users.backend
        if backend == "parametric":
            return None
        if self._backend is None:
            from recoworld.users.llm_user import make_user_backend

            if self._language_model is None:  # an LLM that cannot answer fails here, at reset, in one line
                from recoworld.llm.preflight import check_llm_config

                check_llm_config(self.scenario.llm)
            self._backend = make_user_backend(self.scenario, self._language_model)
        return self._backend

    @property
    def llm_usage(self) -> Usage:
        """LLM calls, tokens and cost of every episode so far (a sum)."""
        return self._backend.model.total if self._backend is not None else Usage()

    def user_view(self):
        """What the platform knows about the current user (for recommenders from ``recoworld.agents``)."""
        return self.sim.view(ALL, with_text=True, with_observation=True)

    def _get_info(self, out: StepOutcome | None, per_user: list[float] | None = None) -> dict[str, Any]:
        sim, clock = self.sim, self.sim.clock  # scalars read with .item(): plain Python numbers, no numpy scalar
        info: dict[str, Any] = {
            "user_id": sim.user_ids[0],
            "day": clock.day.item(0),
            "session": int(sim.platform.stats.item(0, WL.S_SESSIONS)),
            "session_step": clock.session_step.item(0),
        }
        instr = sim.instruction(0) if sim.users.instr.item(0, UL.AGE) >= 0 else None
        info["instruction"] = instr.text if instr else None
        info["instruction_intent"] = _intent_dump(instr.intent) if instr else None
        if out is None:
            return info
        slate = self._last[0]
        per_user = out.response.per_user[0].tolist() if per_user is None else per_user
        info["rewards"] = dict(zip(COMPONENTS, per_user[: WL.N_COMPONENTS]))
        info["items"] = self.catalog.item_id[slate].tolist()
        items = out.response.items[0]
        info["actions"] = list(map(_LABEL_OF_CODE.__getitem__, items[:, UL.O_ACTION].tolist()))
        info["watch_seconds"] = items[:, UL.O_WATCH_SECONDS].tolist()
        comp = per_user[WL.U_COMPLIANCE]
        info["compliance"] = None if comp != comp else comp  # nan: no instruction was pending
        info["session_ended"] = per_user[WL.U_ENDED] > 0
        if self.scenario.env.observe_text:
            info["titles"] = [str(t) for t in self.catalog.title[slate]]
        if self._backend is not None:
            rec = self._backend.last_records[0]
            self._episode_llm = self._episode_llm + rec.usage
            self._episode_fallbacks += rec.fallback
            info["llm"] = {
                "called": rec.called,
                "fallback": rec.fallback,
                "error": rec.error,
                "reasons": rec.reasons,
                "mindset": rec.mindset,
                "episode_usage": self._episode_llm.model_dump(),
                "episode_fallbacks": self._episode_fallbacks,
            }
        return info
