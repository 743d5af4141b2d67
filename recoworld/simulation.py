"""The batched world step shared by the Gym env (a batch of one) and the population runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np

from recoworld.catalog import Catalog
from recoworld.platform import PlatformState
from recoworld.rewards import COMPONENTS
from recoworld.scenario import CatalogConfig, Scenario, ScenarioError
from recoworld.users.instructions import NO_TOPIC, Instruction, InstructionIntent, instruction_text
from recoworld.users.parametric import Index, ParametricUserModel, SlateEffects, SlateResponse, UserBatch, user_rows
from recoworld.users.profile import TONES, UserProfile
from recoworld.users.sampler import PopulationSampler

if TYPE_CHECKING:
    from recoworld.agents.protocol import UserView


def build_catalog(config: CatalogConfig, seed: int) -> Catalog:
    """The scenario's catalog; identical configs share one (read-only) catalog per process."""
    return _cached_catalog(config.model_dump_json(), seed)


@lru_cache(maxsize=8)
def _cached_catalog(config_json: str, seed: int) -> Catalog:
    from recoworld.embeddings import make_encoder

    cfg = CatalogConfig.model_validate(json.loads(config_json))
    enc = make_encoder(cfg.embedding.type, cfg.embedding.dim, seed, cfg.embedding.model)
    if cfg.source == "synthetic":
        from recoworld.synthetic import generate_catalog

        catalog = generate_catalog(cfg.synthetic, seed=seed, encoder=enc)
    else:
        from recoworld import loaders

        if cfg.path is None:
            raise ScenarioError(f"catalog.path: required for source '{cfg.source}'")
        catalog = loaders.load_catalog(cfg.source, cfg.path, encoder=enc)
    catalog.embeddings  # compute once, before the catalog is shared
    return catalog


def sample_candidates(rng: np.random.Generator, b: int, n_items: int, m: int) -> np.ndarray:
    """(b, m) catalog rows drawn uniformly with replacement (a policy-independent retrieval stage)."""
    return rng.integers(0, n_items, size=(b, m))


@dataclass
class StepOutcome:
    """Everything one slate led to, for the b users that were served."""

    response: SlateResponse
    effects: SlateEffects
    components: np.ndarray  # (b, len(COMPONENTS))
    reward: np.ndarray  # (b,)
    session_ended: np.ndarray  # (b,)
    churned: np.ndarray  # (b,)
    finished: np.ndarray  # (b,) next session would start at or after the horizon
    gap_days: np.ndarray  # (b,) days until the next session, 0 if the session goes on


class Simulation:
    """A catalog, a batch of users with their mindsets, what the platform sees, and a clock per user."""

    def __init__(
        self,
        scenario: Scenario,
        catalog: Catalog,
        profiles: Sequence[UserProfile],
        rng: np.random.Generator,
        model: ParametricUserModel | None = None,
    ) -> None:
        self.scenario = scenario
        self.env = scenario.env
        self.catalog = catalog
        self.profiles = list(profiles)
        self.rng = rng
        self.model = model or ParametricUserModel(scenario.user_model)
        self.users = UserBatch.from_profiles(self.profiles, catalog, rng, scenario.users.taste_noise)
        b = len(self.profiles)
        self.platform = PlatformState.empty(b, catalog, max(scenario.env.history_length, scenario.env.slate_size))
        self.weights = scenario.rewards.vector()
        self.day = np.zeros(b, dtype=np.int64)  # day of the current (or next) session
        self.session_step = np.zeros(b, dtype=np.int64)
        self.days_active = np.ones(b, dtype=np.int64)
        self.churned = np.zeros(b, dtype=bool)
        self.finished = np.zeros(b, dtype=bool)
        self.candidates = np.zeros((b, scenario.env.num_candidates), dtype=np.int64)

    @classmethod
    def sample(cls, scenario: Scenario, n_users: int, rng: np.random.Generator, catalog: Catalog | None = None) -> "Simulation":
        """A simulation of ``n_users`` users drawn from the scenario's segments."""
        catalog = catalog or build_catalog(scenario.catalog, scenario.seed)
        sampler = PopulationSampler(scenario.users.segments, catalog.topic_names)
        return cls(scenario, catalog, sampler.sample(n_users, rng), rng)

    def __len__(self) -> int:
        return len(self.profiles)

    @property
    def alive(self) -> np.ndarray:
        return ~(self.churned | self.finished)

    def retrieve(self, idx: Index) -> np.ndarray:
        """Fresh candidates for the users ``idx`` (stored for :meth:`step_positions`)."""
        rows = user_rows(self.users, idx)
        cands = sample_candidates(self.rng, len(rows), len(self.catalog), self.env.num_candidates)
        self.candidates[idx] = cands
        return cands

    def step(self, idx: Index, slates: np.ndarray) -> StepOutcome:
        """Serve one slate (catalog rows, shape (b, K)) to each user in ``idx``."""
        users, model, catalog = self.users, self.model, self.catalog
        resp = model.review(users, idx, slates, catalog, self.rng)
        effects = model.update(users, idx, slates, resp, catalog, self.rng)
        self.platform.record(idx, slates, resp, catalog)
        self.session_step[idx] += 1
        ended = resp.left | (self.session_step[idx] >= self.env.max_slates_per_session)
        b = len(ended)
        gap = np.zeros(b, dtype=np.int64)
        churn = np.zeros(b, dtype=bool)
        finished = np.zeros(b, dtype=bool)
        if ended.any():
            rows = user_rows(users, idx)[ended]
            g = model.return_gap(users, rows, self.rng)
            gap[ended] = g
            churn[ended] = g > self.env.churn_window_days
            next_day = self.day[rows] + g
            finished[ended] = ~churn[ended] & (next_day >= self.env.horizon_days)
            back = ~churn[ended] & ~finished[ended]
            self.churned[rows] = churn[ended]
            self.finished[rows] = finished[ended]
            self.platform.start_session(rows[back], g[back], self.session_step[rows[back]])
            model.rest(users, rows[back], g[back])
            self.day[rows[back]] = next_day[back]
            self.days_active[rows[back]] += 1
            self.session_step[rows] = 0
        comps = np.zeros((b, len(COMPONENTS)), dtype=np.float32)
        comps[:, 0] = resp.click.sum(1)
        comps[:, 1] = resp.like.sum(1)
        comps[:, 2] = resp.share.sum(1)
        comps[:, 3] = resp.comment.sum(1)
        comps[:, 4] = resp.watch_seconds.sum(1) / 60.0
        comps[:, 5] = resp.skip.sum(1)
        comps[:, 6] = resp.left
        comps[:, 7] = np.where(ended & ~churn, 1.0 / np.maximum(gap, 1), 0.0)
        comps[:, 8] = churn
        return StepOutcome(
            response=resp,
            effects=effects,
            components=comps,
            reward=comps @ self.weights,
            session_ended=ended,
            churned=churn,
            finished=finished,
            gap_days=gap,
        )

    def view(self, idx: Index, with_text: bool = False) -> "UserView":
        """What the platform knows about users ``idx`` at their current decision."""
        from recoworld.agents.protocol import UserView

        rows = user_rows(self.users, idx)
        p, u = self.platform, self.users
        cands = self.candidates[rows]
        h = p.hist_items.shape[1]
        order = (p.hist_next[rows][:, None] + np.arange(h)) % h
        return UserView(
            catalog=self.catalog,
            candidates=cands,
            slate_size=self.env.slate_size,
            user_ids=[self.profiles[r].user_id for r in rows],
            est_taste=p.est_taste[rows],
            click_topics=p.click_topics[rows],
            shown_topics=p.shown_topics[rows],
            consumed=u.consumed[rows[:, None], cands],
            instr_more=u.instr_more[rows],
            instr_less=u.instr_less[rows],
            instr_surprise=u.instr_surprise[rows],
            session_step=self.session_step[rows],
            day=self.day[rows],
            history_items=np.take_along_axis(p.hist_items[rows], order, 1),
            history_engagement=np.take_along_axis(p.hist_engagement[rows], order, 1),
            instructions=[self.instruction(int(r)) for r in rows] if with_text else [],
        )

    # ------------------------------------------------------------ what is said
    def instruction(self, row: int) -> Instruction | None:
        """The pending instruction of user ``row``, with its words, or None."""
        u = self.users
        if u.instr_age[row] < 0:
            return None
        names = self.catalog.topic_names
        intent = InstructionIntent(
            more_topic=names[u.instr_more[row]] if u.instr_more[row] != NO_TOPIC else None,
            less_topic=names[u.instr_less[row]] if u.instr_less[row] != NO_TOPIC else None,
            surprise=bool(u.instr_surprise[row]),
        )
        variant = int(self.day[row] * 31 + row)
        return Instruction(intent=intent, text=instruction_text(intent, TONES[u.tone[row]], variant))
