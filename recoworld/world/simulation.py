"""The batched world step shared by the Gym env (a batch of one) and the population runner."""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from recoworld.scenario import CatalogConfig, Scenario, ScenarioError
from recoworld.world import kernel as K
from recoworld.users import layout as UL
from recoworld.world import layout as WL
from recoworld.users.instructions import NO_TOPIC, Instruction, InstructionIntent, instruction_text
from recoworld.users.mindset import MemoryEntry, Mindset
from recoworld.users.parametric import (
    ForcedDecisions,
    Index,
    ParametricUserBackend,
    ParametricUserModel,
    UserBatch,
    user_rows,
)
from recoworld.users.population import PendingProfile, PopulationSampler
from recoworld.users.profile import TONES, UserProfile
from recoworld.users.protocol import UserBackend
from recoworld.world.bound import (
    OBSERVATION_DOES_NOT_FIT, RESTARTED, ROWS_OUT_OF_RANGE, WorldState, bind, restart_bound,
)
from recoworld.world.catalog import Catalog
from recoworld.world.layout import catalog_arrays, clock_arrays, log_arrays
from recoworld.world.observation import buffer_args, observation_buffers, observation_mismatch
from recoworld.world.observation import observe as observe_users
from recoworld.world.platform import Clock, PlatformState
from recoworld.world.rewards import COMPONENTS
from recoworld.world.step import NO_OBSERVATION, SlateEffects, SlateResponse, run_step
from recoworld.world.user_view import UserView

# the kernel writes the reward components in COMPONENTS order
assert WL.N_COMPONENTS == len(COMPONENTS), "kernel.N_COMPONENTS must match rewards.COMPONENTS"


def build_catalog(config: CatalogConfig, seed: int) -> Catalog:
    """The scenario's catalog; identical configs share one (read-only) catalog per process."""
    return _cached_catalog(config.model_dump_json(), seed)


@lru_cache(maxsize=8)
def _cached_catalog(config_json: str, seed: int) -> Catalog:
    from recoworld.world.embeddings import make_encoder

    cfg = CatalogConfig.model_validate(json.loads(config_json))
    enc = make_encoder(cfg.embedding.type, cfg.embedding.dim, seed, cfg.embedding.model)
    if cfg.source == "synthetic":
        from recoworld.world.synthetic import generate_catalog

        catalog = generate_catalog(cfg.synthetic, seed=seed, encoder=enc)
    else:
        from recoworld.world.datasets import load_catalog

        if cfg.path is None:
            raise ScenarioError(f"catalog.path: required for source '{cfg.source}'")
        catalog = load_catalog(cfg.source, cfg.path, encoder=enc)
    if cfg.item_vectors is not None:  # a calibrated world: the fit's item vectors, quality and popularity
        from recoworld.users.calibration.io import calibration_items

        items = calibration_items(cfg.item_vectors)
        catalog = items.apply(catalog) if items is not None else catalog
    catalog.embeddings  # compute once, before the catalog is shared
    return catalog


@dataclass
class StepOutcome:
    """Everything one slate led to, for the b users that were served (views on the kernel output)."""

    response: SlateResponse
    effects: SlateEffects
    observation: dict[str, np.ndarray] | None = None  # next observation, when asked for

    @property
    def components(self) -> np.ndarray:
        """(b, len(COMPONENTS)) reward components, in COMPONENTS order."""
        return self.response.per_user[:, : WL.N_COMPONENTS]

    @property
    def reward(self) -> np.ndarray:
        """(b,) weighted sum of the components."""
        return self.response.per_user[:, WL.U_REWARD]

    @property
    def session_ended(self) -> np.ndarray:
        """(b,) the step ended the user's session (they left, or reached the session's last slate)."""
        return self.response.per_user[:, WL.U_ENDED] > 0

    @property
    def churned(self) -> np.ndarray:
        """The session ended and the user will not come back within the churn window."""
        return self.response.per_user[:, WL.U_CHURN] > 0

    @property
    def finished(self) -> np.ndarray:
        """The user's next session would start at or after the horizon."""
        return self.response.per_user[:, WL.U_FINISHED] > 0

    @property
    def gap_days(self) -> np.ndarray:
        """Days until the next session; 0 where the session goes on."""
        return self.response.per_user[:, WL.U_GAP].astype(np.int64)


class Simulation:
    """A catalog, a batch of users with their mindsets, what the platform sees, and a clock per user."""

    def __init__(
        self,
        scenario: Scenario,
        catalog: Catalog,
        profiles: Sequence[UserProfile],
        rng: np.random.Generator,
        model: ParametricUserModel | None = None,
        backend: UserBackend | None = None,
        users: UserBatch | None = None,
    ) -> None:
        self.scenario = scenario
        self.env = scenario.env
        self.catalog = catalog
        self._set_profiles(profiles if isinstance(profiles, list) else list(profiles))
        self.user_ids = np.array([p.user_id for p in self._profiles], dtype=object)
        self.rng = rng
        self.model = model or ParametricUserModel(scenario.user_model)
        self.backend: UserBackend = backend if backend is not None else ParametricUserBackend()
        if users is None:
            users = UserBatch.from_profiles(self.profiles, catalog, rng, scenario.users.taste_noise)
        self.users = users
        b = len(self._profiles)
        self.platform = PlatformState.empty(b, catalog, max(scenario.env.history_length, scenario.env.slate_size))
        self.weights = scenario.rewards.vector().astype(np.float64)
        self.clock = Clock.start(b)
        env = scenario.env
        self.obs_scale = np.array(
            [env.max_slates_per_session, env.churn_window_days, env.horizon_days, env.slate_size], dtype=np.float64
        )
        self._env_vec = np.array(
            [scenario.env.max_slates_per_session, scenario.env.churn_window_days, scenario.env.horizon_days], dtype=np.float64
        )
        self.candidates = np.zeros((b, scenario.env.num_candidates), dtype=np.int64)
        self._all_rows = np.arange(b)
        self._instructions: dict[int, tuple[tuple[int, ...], Instruction]] = {}
        self._words: dict[int, tuple[tuple[int, ...], str]] = {}  # instruction text written by an LLM
        self._bound_key: tuple | None = None  # what bound() bound last, and its state
        self._bound_state: WorldState | None = None

    @classmethod
    def sample(cls, scenario: Scenario, n_users: int, rng: np.random.Generator, catalog: Catalog | None = None) -> "Simulation":
        """A simulation of ``n_users`` users drawn from the scenario's segments."""
        catalog = catalog or build_catalog(scenario.catalog, scenario.seed)
        sampler = PopulationSampler(scenario.users.segments, catalog.topic_names)
        return cls(scenario, catalog, sampler.sample(n_users, rng), rng)

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def profiles(self) -> list[UserProfile]:
        """Each user's profile (a profile drawn at a reset is written out here, on first use)."""
        if self._pending:
            for r, pending in self._pending.items():
                self._profiles[r] = pending.build()
            self._pending = {}
        return self._profiles

    @profiles.setter
    def profiles(self, profiles: list[UserProfile] | None) -> None:
        """Replace the users' profiles (pending ones are written out when first read)."""
        self._set_profiles(profiles)

    def _set_profiles(self, profiles: list[UserProfile | PendingProfile] | None) -> None:
        self._profiles = profiles
        self._pending = {r: p for r, p in enumerate(profiles or []) if isinstance(p, PendingProfile)}

    def __getstate__(self) -> dict:
        """Pickled without the catalog and the LLM backend: whoever restores it calls :meth:`set_catalog`
        (the world owns the catalog) and sets an LLM ``backend`` again (it holds network clients)."""
        self.profiles  # written out before pickling
        state = self.__dict__.copy()
        state["catalog"], state["backend"] = None, ParametricUserBackend()
        state["_instructions"] = {}  # a cache, rebuilt on demand
        state["candidates"] = None  # redrawn at the start of every day (see retrieve)
        state["_bound_key"], state["_bound_state"] = None, None  # compiled-code handles: bound again on use
        state["_fresh"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        if "profiles" in state:  # pickled before profiles could be drawn lazily
            state["_profiles"], state["_pending"] = state.pop("profiles"), {}
        self.__dict__.update(state)
        self.candidates = np.zeros((len(self.user_ids), self.env.num_candidates), dtype=np.int64)
        self._bound_key, self._bound_state = None, None  # also for pickles made before the world was bound

    def fork(self) -> "Simulation":
        """An independent copy (users, platform, random state, today's candidates) that serves the same catalog
        through the same user backend: its future is this one's until the two are served differently."""
        import copy

        twin = copy.deepcopy(self)  # through __getstate__: without the catalog, the backend and the candidates
        twin.catalog, twin.backend, twin.candidates = self.catalog, self.backend, self.candidates.copy()
        twin._instructions, twin._words = dict(self._instructions), dict(self._words)
        return twin

    def set_catalog(self, catalog: Catalog) -> None:
        """Serve from ``catalog``: the same items in the same rows, possibly followed by new ones."""
        need = (len(catalog) + 7) // 8
        have = self.users.consumed.shape[1]
        if need > have:
            self.users.consumed = np.pad(self.users.consumed, ((0, 0), (0, need - have)))
        self.catalog = catalog

    def replace_users(
        self, rows: np.ndarray, profiles: Sequence[UserProfile | PendingProfile], users: UserBatch, seeds: np.ndarray,
        obs_out: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Rows ``rows`` start over with new users (how an env resets): ``profiles`` (or drawn profiles, written
        out on first use) with their state ``users`` (a UserBatch of ``len(rows)`` users), an empty platform log
        and clock, and candidates drawn from ``seeds`` (one raw draw each), as a fresh one-user simulation has them;
        with ``obs_out`` (observation buffers), each new user's observation goes into the buffers' row of that user
        (row ``rows[i]``; a one-row buffer for row 0), all in one compiled call."""
        rows = np.asarray(rows)
        if rows.dtype != np.int64 or rows.ndim != 1:  # masks and other integer types; the range is checked compiled
            rows = user_rows(self.users, rows)
        if len(users) != len(rows):
            raise ValueError(f"replace_users: {len(users)} new users for {len(rows)} rows")
        obs = obs_out if obs_out is not None else NO_OBSERVATION
        state = self.bound()
        restarted = restart_bound(state, self._fresh_user(), rows, np.asarray(seeds, dtype=np.uint64), *users.arrays(),
                                  *buffer_args(obs))
        if restarted == ROWS_OUT_OF_RANGE:
            user_rows(self.users, rows)  # raises, naming the rows
        if restarted == OBSERVATION_DOES_NOT_FIT:
            raise ValueError(f"replace_users: {observation_mismatch(state, int(rows.max()) + 1, obs)}")
        if restarted != RESTARTED:
            ours = self.users.arrays()
            wrong = [f"{name} {new.shape[1:]} (this world's {old.shape[1:]})"
                     for name, new, old in zip(ours._fields, users.arrays(), ours) if new.shape[1:] != old.shape[1:]]
            raise ValueError(f"replace_users: the new users do not fit this world: "
                             + (", ".join(wrong) if wrong else f"{len(seeds)} seeds for {len(rows)} rows"))
        self.users.tone[rows] = users.tone
        memory = getattr(self.backend, "memory", None)  # an LLM backend's per-row memory
        for r, profile in zip(rows.tolist(), profiles):
            self._profiles[r] = profile
            if isinstance(profile, PendingProfile):
                self._pending[r] = profile
            else:
                self._pending.pop(r, None)
            self.user_ids[r] = profile.user_id
            self._instructions.pop(r, None)
            self._words.pop(r, None)
            if memory is not None:
                memory.pop(r, None)

    def _fresh_user(self) -> WorldState:
        """A world bound on the empty platform log and the clock of one new user (its other fields are this
        simulation's, never read), made once: they depend only on the catalog's topics and embedding size and on
        the history length, and are only ever read."""
        key = (self.catalog.n_topics, self.catalog.embeddings.shape[1], self.platform.hist_items.shape[1])
        fresh = getattr(self, "_fresh", None)
        if fresh is None or fresh[0] != key:
            fresh = self._fresh = (key, self._bind(PlatformState.empty(1, self.catalog, key[2]), Clock.start(1)))
        return fresh[1]

    @property
    def alive(self) -> np.ndarray:
        """(B,) users neither churned nor past the horizon."""
        return self.clock.alive

    # the clock's arrays, under the names users of the simulation read
    day = property(lambda self: self.clock.day)
    session_step = property(lambda self: self.clock.session_step)
    days_active = property(lambda self: self.clock.days_active)
    churned = property(lambda self: self.clock.churned)
    finished = property(lambda self: self.clock.finished)

    def _rows(self, idx: Index) -> np.ndarray:
        return self._all_rows[idx] if isinstance(idx, slice) else user_rows(self.users, idx)

    def retrieve(self, idx: Index) -> np.ndarray:
        """Fresh candidates for users ``idx``: uniform catalog rows, with replacement (a
        policy-independent retrieval stage). :meth:`step` draws the next ones by itself."""
        rows = self._rows(idx)
        K.retrieve_kernel(rows, self.rng.bit_generator.random_raw(len(rows)), self.candidates, len(self.catalog))
        return self.candidates[rows]

    def step(
        self, idx: Index, slates: np.ndarray, observe: bool = False, decisions: ForcedDecisions | None = None,
        *, seeds: np.ndarray | None = None, obs_out: dict[str, np.ndarray] | None = None,
        outputs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> StepOutcome:
        """Serve one slate (catalog rows, shape (b, K)) to each user in ``idx``.

        The users' next candidates are drawn in the same pass; with ``observe`` the outcome
        carries their next observation (recoworld.world.observation layout, leading batch axis), written
        into ``obs_out`` when given (preallocated (b, ...) buffers) instead of fresh arrays.
        ``seeds`` ((b,) uint64) replaces the one raw draw per user of the world's generator (the
        vector env keeps one generator per user). ``outputs``: preallocated (b, K, ITEM_OUTPUTS) and (b,
        USER_OUTPUTS) float64 buffers for the kernel's results, which the outcome's arrays then are (its caller
        must not hand them out past the next step).
        """
        obs = (obs_out if obs_out is not None else observation_buffers(self, len(slates))) if observe else None
        rows = self._rows(idx)
        if decisions is None:
            decisions = self.backend.decide(self, rows, slates)
        resp, effects = run_step(self.bound(), rows, slates, decisions, self.rng, obs, seeds, outputs)
        outcome = StepOutcome(resp, effects, obs)
        self.backend.after_step(self, rows, slates, outcome)
        return outcome

    def bound(self) -> WorldState:
        """The world's lasting arrays bound for the compiled step, bound again when any of them was replaced
        (a new catalog, a grown ``consumed`` bitset, users or a log swapped in, a restored pickle). The arrays
        inside the users, the log and the clock are written in place and never replaced, except ``consumed``
        (grown by :meth:`set_catalog`), which is why that one array is part of the key."""
        key = (self.model.vector, self._env_vec, self.weights, self.users, self.users.consumed, self.catalog,
               self.platform, self.clock, self.candidates, self.obs_scale)
        if self._bound_key is None or not all(map(operator.is_, key, self._bound_key)):
            self._bound_state, self._bound_key = self._bind(self.platform, self.clock), key
        return self._bound_state

    def _bind(self, platform: PlatformState, clock: Clock) -> WorldState:
        """This simulation's arrays bound with the log ``platform`` and the clock ``clock`` (the bound state holds
        every array it was given)."""
        return bind(self.model.vector, self._env_vec, self.weights, self.users.arrays(), catalog_arrays(self.catalog),
                    log_arrays(platform), clock_arrays(clock), self.candidates, self.obs_scale)

    def view(self, idx: Index, with_text: bool = False, with_observation: bool = False) -> "UserView":
        """What the platform knows about users ``idx`` at their current decision (optionally with the
        instructions' words and the numeric observation an RL policy takes)."""
        rows = user_rows(self.users, idx)
        p, u = self.platform, self.users
        cands = self.candidates[rows]
        hist_items, hist_engagement = p.history(rows)
        return UserView(
            catalog=self.catalog,
            candidates=cands,
            slate_size=self.env.slate_size,
            user_ids=self.user_ids[rows].tolist(),
            est_taste=p.est_taste[rows],
            click_topics=p.click_topics[rows],
            shown_topics=p.shown_topics[rows],
            consumed=u.has_consumed(rows, cands),
            instr_more=u.instr_more[rows],
            instr_less=u.instr_less[rows],
            instr_surprise=u.instr[rows, UL.SURPRISE] > 0,
            session_step=self.session_step[rows],
            day=self.day[rows],
            history_items=hist_items,
            history_engagement=hist_engagement,
            instructions=[self.instruction(int(r)) for r in rows] if with_text else [],
            observation=observe_users(self, rows) if with_observation else None,
        )

    def mindset(self, row: int, memory: int = 10) -> Mindset:
        """A readable snapshot of user ``row``'s hidden state (never given to recommenders)."""
        u, cat = self.users, self.catalog
        sat = u.sat_short[row] + u.sat_long[row]
        items, engagement = self.platform.history(np.array([row]))
        entries = [
            MemoryEntry(
                item_id=str(cat.item_id[i]), title=str(cat.title[i]), topic=cat.topic_names[cat.topic[i]], engagement=float(e)
            )
            for i, e in zip(items[0][-memory:], engagement[0][-memory:])
            if i >= 0
        ]
        instruction = self.instruction(row)
        return Mindset(
            satisfaction=float(u.satisfaction[row]),
            trust=float(u.trust[row]),
            fatigue=float(u.fatigue[row]),
            boredom_streak=int(u.boredom[row]),
            satiation={cat.topic_names[t]: round(float(v), 3) for t, v in enumerate(sat) if v > 0.05},
            pending_instruction=instruction.intent if instruction else None,
            memory=entries,
        )

    # ------------------------------------------------------------ what is said
    def tell(self, row: int, more: str | None, less: str | None, surprise: bool, text: str) -> None:
        """User ``row`` voices an instruction (topics by name; unknown names mean 'something different')."""
        index = {name.lower(): t for t, name in enumerate(self.catalog.topic_names)}
        more_t = index.get((more or "").strip().lower(), NO_TOPIC)
        less_t = index.get((less or "").strip().lower(), NO_TOPIC)
        instr = self.users.instr
        instr[row, UL.MORE], instr[row, UL.LESS] = more_t, less_t
        instr[row, UL.SURPRISE] = int(surprise or (more_t == NO_TOPIC and less_t == NO_TOPIC))
        instr[row, UL.AGE] = 0
        self.set_instruction_text(row, text)

    def set_instruction_text(self, row: int, text: str) -> None:
        """Use ``text`` as the words of user ``row``'s pending instruction."""
        self._words[row] = (self._instruction_key(row), " ".join(str(text).split())[:300])

    def instruction_keys(self, rows: np.ndarray) -> np.ndarray:
        """(b, 4) what the words of each user's pending instruction depend on: more and less topic, surprise, day."""
        instr = self.users.instr[rows]
        return np.stack([instr[:, UL.MORE], instr[:, UL.LESS], (instr[:, UL.SURPRISE] > 0).astype(instr.dtype),
                         self.clock.day[rows].astype(instr.dtype)], 1)

    def _instruction_key(self, row: int) -> tuple[int, ...]:
        """:meth:`instruction_keys` of one row, read as scalars (the single env asks it at every step)."""
        v = self.users.instr[row].tolist()
        return v[UL.MORE], v[UL.LESS], int(v[UL.SURPRISE] > 0), int(self.clock.day[row])

    def instruction_text(self, row: int, key: tuple[int, ...] | None = None) -> str | None:
        """The words of user ``row``'s pending instruction, or None; no pydantic object is built (the impression
        log asks this of every user whose instruction changed). ``key``: :meth:`instruction_keys` of the row."""
        if self.users.instr[row, UL.AGE] < 0:
            return None
        key = self._instruction_key(row) if key is None else key
        words = self._words.get(row)
        if words is not None and words[0] == key:
            return words[1]
        intent = _intent(*_intent_fields(self.catalog.topic_names, key))
        return instruction_text(intent, TONES[self.users.tone[row]], key[3] * 31 + row)

    def instruction(self, row: int) -> Instruction | None:
        """The pending instruction of user ``row``, with its words (:meth:`instruction_text`), or None."""
        if self.users.instr_age[row] < 0:
            return None
        key = self._instruction_key(row)
        cached = self._instructions.get(row)
        words = self._words.get(row)
        if cached is not None and cached[0] == key and (words is None or words[0] != key or cached[1].text == words[1]):
            return cached[1]
        instruction = Instruction(intent=_intent(*_intent_fields(self.catalog.topic_names, key)).model_copy(),
                                  text=self.instruction_text(row, key))
        self._instructions[row] = (key, instruction)
        return instruction


def _intent_fields(names: Sequence[str], key: tuple[int, ...]) -> tuple[str | None, str | None, bool]:
    return names[key[0]] if key[0] != NO_TOPIC else None, names[key[1]] if key[1] != NO_TOPIC else None, bool(key[2])


@lru_cache(maxsize=4096)
def _intent(more: str | None, less: str | None, surprise: bool) -> InstructionIntent:
    """One validated intent per distinct (more, less, surprise): shared, so never handed out without a copy."""
    return InstructionIntent(more_topic=more, less_topic=less, surprise=surprise)
