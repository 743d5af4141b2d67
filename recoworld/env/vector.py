"""RecoWorld-v0 as a native Gymnasium vector env: N users served by one batched simulation.

``gym.make_vec("RecoWorld-v0", num_envs=N, vectorization_mode="vector_entry_point")`` returns a
:class:`RecoWorldVectorEnv`: one :class:`~recoworld.world.simulation.Simulation` of N users stepped by
one compiled kernel call per ``step``. Env i keeps its own random generator, seeded exactly as a
single ``RecoWorld-v0`` seeds its ``np_random``, so env i follows the same trajectory as a single
env reset with the same seed and given the same actions.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.utils.seeding import np_random
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numba import njit

from recoworld.env.actions import check_actions, serve
from recoworld.env.single import RecoWorldEnv, draw_users
from recoworld.env.topics import fill_topics
from recoworld.users import layout as UL
from recoworld.users.profile_draws import generator_address
from recoworld.world import layout as WL
from recoworld.world.observation import observation_buffers
from recoworld.world.rewards import COMPONENTS
from recoworld.world.simulation import Simulation

ALL = slice(None)

# every Generator made by gymnasium's np_random is a PCG64; the kernel below draws each env's
# next raw 64-bit value through the bit generator's C interface (what ``random_raw()`` returns)
_PCG64 = np.random.PCG64(0)
_next_uint64 = _PCG64.ctypes.next_uint64


@njit
def _draw_raw(states: np.ndarray, live: np.ndarray, out: np.ndarray) -> None:
    """``out[i]`` = the next raw draw of env i's generator where ``live[i]``, else 0 (nothing drawn)."""
    for i in range(len(states)):
        if live[i]:
            out[i] = _next_uint64(states[i])
        else:
            out[i] = 0


def _autoreset_mode(value: AutoresetMode | str) -> AutoresetMode:
    """An AutoresetMode from itself, its value ("NextStep") or its name ("next_step")."""
    if isinstance(value, AutoresetMode):
        return value
    for mode in AutoresetMode:
        if str(value) in (mode.value, mode.name, mode.name.lower()):
            return mode
    raise ValueError(f"autoreset_mode: '{value}' is not one of {[m.name.lower() for m in AutoresetMode]}")


class RecoWorldVectorEnv(VectorEnv):
    """N users of RecoWorld-v0 in one batched simulation (Gymnasium 1.x ``VectorEnv``).

    Spaces are the single env's, batched: actions ``MultiDiscrete`` of shape (N, K), observations a
    Dict of (N, ...) float32 arrays. Observations are written in place by the kernel into two
    buffer sets used in turn, so the arrays a call returns stay valid until the call after next
    (a ``reset`` with ``reset_mask`` writes the reset envs' rows into the arrays the last call
    returned); copy them to keep them longer.

    Autoreset: ``autoreset_mode`` (``metadata["autoreset_mode"]``), Gymnasium's NEXT_STEP by default
    (the step after an episode ends resets that env and ignores its action, reward 0), or SAME_STEP
    (the env resets within the step that ended it; its last observation and info are in
    ``infos["final_obs"]`` / ``infos["final_info"]``), or DISABLED (reset ended envs with
    ``reset(options={"reset_mask": mask})``).

    Infos are batched with ``_key`` masks the way Gymnasium's vector envs return them: every env has
    ``day``, ``session``, ``session_step`` and ``days_active``; envs that took a step also have
    ``rewards`` (components, a dict of arrays), ``session_ended``, ``compliance`` (nan where no
    instruction was pending), ``slate_rows`` (catalog rows served), ``duplicate_positions`` (slots that
    repeated an item, filled from the next unused candidate: see ``recoworld.env.actions``),
    ``action_codes`` (index into ``recoworld.world.kernel.ACTION_LABELS``) and ``watch_seconds``.

    LLM and hybrid users: each step makes one batch of LLM calls for all envs (bounded concurrency).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | dict[str, Any] = "quickstart",
        config: dict[str, Any] | None = None,
        action_mode: str | None = None,
        user_backend: str | None = None,
        language_model: Any = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        observation: str = "full",
    ) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs: must be at least 1, got {num_envs}")
        if render_mode is not None:
            raise ValueError(f"render_mode: '{render_mode}' is not supported by the vector env (use the single env)")
        mode = _autoreset_mode(autoreset_mode)
        # the single env parses the scenario, builds the catalog and spaces: one definition of both
        self._single = RecoWorldEnv(scenario, config, None, action_mode, user_backend, language_model, observation)
        single = self._single
        self.num_envs = n = int(num_envs)
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.render_mode = None
        self.scenario, self.catalog = single.scenario, single.catalog
        self.slate_size, self.n_candidates, self.action_mode = single.slate_size, single.n_candidates, single.action_mode
        self.single_action_space, self.single_observation_space = single.action_space, single.observation_space
        self.action_space = batch_space(self.single_action_space, n)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.sim: Simulation | None = None
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._gens = np.zeros((n, 4), dtype=np.uint64)  # generator_address rows; column 0: the PCG64 states
        self._seeds = np.zeros(n, dtype=np.uint64)
        self._ended = np.zeros(n, dtype=bool)  # the episode ended at the last step
        self._buffers = [self._new_buffers(), self._new_buffers()]
        self._turn = 0

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every env, or those in ``options["reset_mask"]``. ``seed``: an int (env i gets seed + i),
        a list with one seed (or None) per env, or None (envs keep their generators).
        ``options["profiles"]``: one ``UserProfile`` (or dict, or None) per env to serve instead of a draw."""
        options = dict(options or {})
        n = self.num_envs
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(f"options.reset_mask: expected a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
        if self.sim is None and not mask.all():
            raise ValueError("options.reset_mask: the first reset must reset every env")
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed: expected one seed per env ({n}), got {len(seeds)}")
        profiles = options.pop("profiles", None)
        if profiles is not None and len(profiles) != n:
            raise ValueError(f"options.profiles: expected one profile (or None) per env ({n}), got {len(profiles)}")
        if options:
            raise ValueError(f"options: unknown keys {sorted(options)} (use reset_mask, profiles)")
        # a full reset writes the next buffer set; a partial one writes the reset envs' rows into the
        # arrays the last call returned (the other envs' observations stand)
        obs = self._swap() if mask.all() else self._buffers[self._turn]
        rows = np.flatnonzero(mask)
        self._reset_rows(rows, seeds, profiles, obs)
        infos: dict[str, Any] = {}
        self._add_state_info(infos)
        return obs, infos

    def step(self, actions: Any):
        """One slate per env (candidate positions, or topics in topic mode), all served in one kernel call."""
        sim = self.sim
        if sim is None:
            raise RuntimeError("step() called before reset()")
        mode = self.autoreset_mode
        if mode == AutoresetMode.DISABLED and self._ended.any():
            ended = np.flatnonzero(self._ended)[:5].tolist()
            raise RuntimeError(
                f"step: envs {ended}... have ended; reset them with options={{'reset_mask': mask}} (autoreset disabled)"
            )
        slates, repeats = self._slates(actions)
        resetting = self._ended if mode == AutoresetMode.NEXT_STEP else np.zeros(self.num_envs, dtype=bool)
        live = ~resetting
        obs = self._swap()
        _draw_raw(self._gens[:, 0], live, self._seeds)
        if sim.backend.kind == "parametric" or live.all():
            # every row steps (an ended user, reset below, steps too: its results are dropped)
            out = sim.step(ALL, slates, observe=True, seeds=self._seeds, obs_out=obs)
            per_user, items = out.response.per_user, out.response.items
        else:  # LLM users: no calls for users about to be replaced
            rows = np.flatnonzero(live)
            out = sim.step(rows, slates[rows], observe=True, seeds=self._seeds[rows],
                           obs_out=observation_buffers(sim, len(rows), self._single.compact))
            per_user = np.zeros((self.num_envs, WL.USER_OUTPUTS))
            items = np.zeros((self.num_envs, self.slate_size, UL.ITEM_OUTPUTS))
            per_user[rows], items[rows] = out.response.per_user, out.response.items
            for key, value in out.observation.items():
                obs[key][rows] = value
        reward = np.where(live, per_user[:, WL.U_REWARD], 0.0)
        terminated = live & (per_user[:, WL.U_CHURN] > 0)
        truncated = live & (per_user[:, WL.U_FINISHED] > 0)
        if sim.backend.exhausted:
            truncated |= live  # the LLM budget ran out: end cleanly
        step_info = self._step_info(per_user, items, slates, repeats, live)
        ended = terminated | truncated
        infos: dict[str, Any] = {}
        if mode == AutoresetMode.NEXT_STEP and resetting.any():
            self._reset_rows(np.flatnonzero(resetting), [None] * self.num_envs, None, obs)
        elif mode == AutoresetMode.SAME_STEP and ended.any():
            done = np.flatnonzero(ended)
            final = np.full(self.num_envs, None, dtype=object)
            for i in done:
                final[i] = {key: value[i].copy() for key, value in obs.items()}
            infos["final_obs"], infos["_final_obs"] = final, ended.copy()
            final_info = self._step_info(per_user, items, slates, repeats, live, mask=ended)
            self._add_state_info(final_info, ended)
            infos["final_info"], infos["_final_info"] = final_info, ended.copy()
            self._reset_rows(done, [None] * self.num_envs, None, obs)
            step_info = self._step_info(per_user, items, slates, repeats, live, mask=live & ~ended)
            ended = np.zeros(self.num_envs, dtype=bool)
        self._ended = ended
        self._add_state_info(infos)
        infos.update(step_info)
        return obs, reward, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Drop the simulation and close the single env that holds the LLM user stack (its local server stops)."""
        self.sim = None
        self._single.close()  # the LLM user stack is the single env's: its local server stops with it

    # ------------------------------------------------------------- helpers
    @property
    def np_random_generators(self) -> list[np.random.Generator | None]:
        """Each env's generator (what ``np_random`` is for a single env)."""
        return list(self._rngs)

    def _new_buffers(self) -> dict[str, np.ndarray]:
        return {key: np.zeros(space.shape, dtype=space.dtype) for key, space in self.observation_space.spaces.items()}

    def _swap(self) -> dict[str, np.ndarray]:
        self._turn ^= 1
        return self._buffers[self._turn]

    def _slates(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate a batch of actions and turn it into (N, K) catalog rows (one clear error on bad input;
        a slot that repeats an item is filled from the next unused candidate, see ``recoworld.env.actions``)
        and the number of such slots per env."""
        what = "candidate positions" if self.action_mode == "slate" else "topics"
        a = check_actions(actions, (self.num_envs, self.slate_size), int(self.single_action_space.nvec[0]), what, "actions")
        if self.action_mode != "slate":
            a = fill_topics(self.sim.view(ALL), self.catalog.popularity, a)
        return serve(self.sim.candidates, a)

    def _reset_rows(
        self, rows: np.ndarray, seeds: Sequence[int | None], profiles: Sequence[Any] | None, obs: dict[str, np.ndarray]
    ) -> None:
        """Env ``rows[i]`` starts a new episode with a new user, drawn exactly as a single env's reset draws
        one; their observations go into ``obs``."""
        single = self._single
        scenario = self.scenario
        for r in rows.tolist():
            if seeds[r] is not None or self._rngs[r] is None:
                self._rngs[r] = np_random(seeds[r])[0]
                self._gens[r] = generator_address(self._rngs[r])
        given = None if profiles is None or all(p is None for p in profiles) else [profiles[r] for r in rows.tolist()]
        picked, users, raws = draw_users(
            single._sampler, self.catalog, [self._rngs[r] for r in rows.tolist()], scenario.users.taste_noise, given,
            self._gens[rows],
        )
        if self.sim is None:
            rng0 = np.random.default_rng(0)  # unused: every user draws from its env's generator
            self.sim = Simulation(scenario, self.catalog, picked, rng0, single._model, single.user_backend(), users=users)
        self.sim.replace_users(rows, picked, users, raws, obs_out=obs)  # observed into their rows of obs
        self._ended[rows] = False

    def _add_state_info(self, infos: dict[str, Any], mask: np.ndarray | None = None) -> None:
        """Where every env (or those in ``mask``) stands."""
        sim, every = self.sim, np.ones(self.num_envs, dtype=bool) if mask is None else mask.copy()
        for key, value in (
            ("day", sim.day), ("session", sim.platform.sessions.astype(np.int64)), ("session_step", sim.session_step),
            ("days_active", sim.days_active),
        ):
            infos[key], infos[f"_{key}"] = value.copy(), every

    def _step_info(
        self, per_user: np.ndarray, items: np.ndarray, slates: np.ndarray, repeats: np.ndarray, stepped: np.ndarray,
        mask: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """What the step did for the envs in ``stepped``, batched, with masks ``mask`` (default ``stepped``)."""
        mask = (stepped if mask is None else mask).copy()
        rewards: dict[str, Any] = {}
        for q, name in enumerate(COMPONENTS):
            rewards[name], rewards[f"_{name}"] = per_user[:, q], mask
        info: dict[str, Any] = {"rewards": rewards, "_rewards": mask}
        values = {
            "session_ended": per_user[:, WL.U_ENDED] > 0,
            "compliance": per_user[:, WL.U_COMPLIANCE],
            "slate_rows": slates,
            "duplicate_positions": repeats,
            "action_codes": items[:, :, UL.O_ACTION].astype(np.int64),
            "watch_seconds": items[:, :, UL.O_WATCH_SECONDS],
        }
        backend = self.sim.backend
        if backend.kind != "parametric":
            called = np.zeros(self.num_envs, dtype=bool)
            fallback = np.zeros(self.num_envs, dtype=bool)
            for r, rec in zip(np.flatnonzero(stepped) if not stepped.all() else range(self.num_envs), backend.last_records):
                called[r], fallback[r] = rec.called, rec.fallback
            values["llm_called"], values["llm_fallback"] = called, fallback
        for key, value in values.items():
            info[key], info[f"_{key}"] = value, mask
        return info

    @property
    def llm_usage(self):
        """LLM calls, tokens and cost so far (a sum over all envs)."""
        return self._single.llm_usage
