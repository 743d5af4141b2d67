"""Population runs: worlds of users, creators and recommenders lived day by day, with durable logs.

Each day, creators publish, then every user shard lives the day (``recoworld.runs.shard``) on the
chosen engine, then the recommenders merge what their shard copies learned and retrain on the
logs every ``run.retrain_every`` days, and creators see their own items' feedback. With an
output folder, each day ends with its Parquet files, the manifest and a checkpoint, so a killed
run resumes and ends with the same logs as an uninterrupted one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import yaml

from recoworld.agents.protocol import Recommender
from recoworld.llm.base import Usage
from recoworld.runs.engines import make_engine
from recoworld.logs.lock import run_lock
from recoworld.logs.folder import RunFolder, RunManifest, read_table
from recoworld.runs.shard import Shard, ShardDay
from recoworld.scenario import Scenario
from recoworld.users.creator_inputs import creator_feedback
from recoworld.users.creators import CreatorPopulation
from recoworld.users.llm_user import make_user_backend
from recoworld.users.parametric import ParametricUserBackend
from recoworld.users.sources import sample_profiles
from recoworld.users.protocol import UserBackend
from recoworld.world.catalog import Catalog, popularity_percentile
from recoworld.world.simulation import Simulation, build_catalog

if TYPE_CHECKING:
    from recoworld.llm.base import LanguageModel
from recoworld.runs.checkpoints import RunState, World, detached, pickle_recommenders, unpickle_recommenders
from recoworld.runs.day_writer import DayWriter
from recoworld.runs.identity import scenario_changes, scenario_sha256, split_arms, users_table
from recoworld.runs.results import PopulationResult, RunResult, run_result

RETRAIN_COLUMNS = ["arm", "user", "item", "action", "watch_seconds"]


class PopulationRun:
    """A scenario's population run; ``run()`` lives it day by day (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        recommenders: Sequence[Recommender] | None = None,
        *,
        catalog: Catalog | None = None,
        output: str | Path | None = None,
        language_model: "LanguageModel | None" = None,
        on_day: Callable[[int], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed
        self.output = output if output is not None else scenario.run.output
        self.folder = RunFolder(self.output) if self.output is not None else None
        self.on_day = on_day
        self.on_resume: Callable[[int], None] | None = None  # told the day a resumed run starts from
        self.base_catalog = catalog
        self.engine = make_engine(scenario.run.engine, scenario.run.ray_address)
        self._given = list(recommenders) if recommenders is not None else None
        self._days = DayWriter(self.folder)
        self._uses_llm = scenario.users.backend != "parametric" or scenario.creators.backend == "llm"
        self._given_model = language_model
        self._model: "LanguageModel | None" = None  # built by _llm() once the world is (every field checked)
        self.llm_decisions = self.llm_fallbacks = 0  # user decisions so far (this process), for progress displays

    # ------------------------------------------------------------------ setup
    def _targets(self) -> list[Recommender]:
        """Fresh off-policy targets (run.ope_targets); they sit in each world under keys -1, -2, ..."""
        from recoworld.agents.registry import make_recommender

        return [make_recommender(s.name, s.params, self.seed) for s in self.scenario.run.ope_targets]

    def _arms(self) -> tuple[list[str], list[Recommender]]:
        if self._given is not None:
            names: list[str] = []
            for rec in self._given:
                names.append(rec.name if rec.name not in names else f"{rec.name}#{len(names)}")
            return names, self._given
        from recoworld.agents.registry import make_recommender

        specs = self.scenario.recommenders
        if not specs:
            raise ValueError("recommenders: the scenario lists none")
        return [s.label for s in specs], [make_recommender(s.name, s.params, self.seed) for s in specs]

    def _llm(self) -> "LanguageModel | None":
        """The run's language model (None without LLM users or creators), built on first use. Its model
        string, key and endpoint are checked then: after the world is built, so that every field of the
        scenario (the ones only the catalog can check too) is refused before the environment is, and
        before anything is simulated or written."""
        if self._model is None and self._uses_llm:
            from recoworld.llm.config import build_language_model

            if self._given_model is None:
                from recoworld.runs.guards import check_llm_config

                check_llm_config(self.scenario.llm)
            self._model = build_language_model(self.scenario.llm, inner=self._given_model)
        return self._model

    def _backend(self) -> UserBackend:
        model = self._llm()
        if model is None:  # parametric users (a model is built whenever users or creators need one)
            return ParametricUserBackend()
        return make_user_backend(self.scenario, model)

    def _fresh_state(self) -> RunState:
        scn, seed = self.scenario, self.seed
        arm_names, recs = self._arms()
        catalog = self.base_catalog or build_catalog(scn.catalog, scn.seed)
        n = scn.users.n_users
        profiles = sample_profiles(scn, n, np.random.default_rng(seed), catalog)
        n = len(profiles)
        bounds = np.linspace(0, n, min(scn.run.shards, n) + 1).astype(int)
        segments = np.array([p.segment for p in profiles], dtype=object)
        if scn.run.assignment == "copies":
            layouts = [([a], np.full(n, a, dtype=np.int64)) for a in range(len(recs))]
        else:
            arm_of = split_arms(n, [s.share for s in scn.recommenders] if self._given is None else [1.0] * len(recs),
                                np.random.default_rng([seed, 4]))
            layouts = [(list(range(len(recs))), arm_of)]
        slices = [profiles[bounds[s]:bounds[s + 1]] for s in range(len(bounds) - 1)]  # shared by every world
        worlds = []
        for w, (arms, arm_of) in enumerate(layouts):
            creators = None
            world_catalog = catalog
            if scn.creators.count > 0:
                creators = CreatorPopulation.sample(scn.creators, catalog.topic_names, np.random.default_rng([seed, 2]))
                world_catalog = catalog.extend([])  # the world's own copy: its popularity changes
            shards = []
            for s in range(len(bounds) - 1):
                lo, hi = bounds[s], bounds[s + 1]
                if worlds:  # the same users, drawn alike in every world: the first world's start, copied
                    first = worlds[0].shards[s].sim
                    sim = Simulation(scn, world_catalog, slices[s], copy.deepcopy(first.rng), users=copy.deepcopy(first.users))
                else:
                    sim = Simulation(scn, world_catalog, slices[s], np.random.default_rng([seed, 1, s]))
                shards.append(Shard(world=w, index=s, sim=sim, arm_of=arm_of[lo:hi], segments=segments[lo:hi]))
            worlds.append(World(
                index=w, arms=arms, catalog=world_catalog, creators=creators, shards=shards,
                recommenders={**{a: recs[a] for a in arms}, **{-t - 1: rec for t, rec in enumerate(self._targets())}},
                item_impressions=np.zeros(len(catalog), dtype=np.int64), item_clicks=np.zeros(len(catalog), dtype=np.int64),
                prior_clicks=catalog.popularity.astype(np.float64) * scn.run.popularity_prior_clicks,
            ))
        for world in worlds:  # the world is built: now the LLM's settings are checked (see _llm)
            for shard in world.shards:
                shard.sim.backend = self._backend()
        manifest = RunManifest(
            run=scn.name, scenario_sha256=scenario_sha256(scn), seed=seed, engine=scn.run.engine,
            shards=len(bounds) - 1, arms=arm_names, days_total=scn.env.horizon_days,
        )
        if self.folder is not None:
            self.folder.prepare_fresh()
            self.folder.write_manifest(manifest)  # first: a run killed while setting up is still a run (resumable)
            self.folder.write_text("scenario.yaml", yaml.safe_dump(scn.model_dump(mode="json", by_alias=True), sort_keys=False))
            self.folder.write_table("users", users_table(profiles))
            self.folder.write_pickle("profiles.pkl", slices)
            self.folder.write_table("catalog", pa.Table.from_pandas(catalog.to_frame(), preserve_index=False))
        return RunState(scenario_sha256(scn), 0, worlds, manifest, arm_names, slices)

    def _resumed_state(self) -> RunState:
        """The checkpoint is what counts: day files and manifest entries after it are dropped and redone,
        the ones before it must match their SHA-256. Killed before the first checkpoint: start again."""
        assert self.folder is not None
        if self.folder.is_blank():  # killed before the manifest was first written
            return self._fresh_state()
        manifest = self.folder.read_manifest()
        if manifest.status == "complete":
            self.folder.remove_checkpoints()  # left by a kill right after the last manifest
            raise ValueError(f"--resume: the run in '{self.folder.path}' is already complete")
        if manifest.scenario_sha256 != scenario_sha256(self.scenario):
            raise ValueError(self._changed_scenario())
        try:
            state, blob = self.folder.load_checkpoint()
        except FileNotFoundError:  # killed during day 0 or its first checkpoint: day 0 is redone from the start
            return self._fresh_state()
        if state.scenario_sha256 != scenario_sha256(self.scenario):
            raise ValueError(self._changed_scenario())
        self.folder.verify_days(manifest, state.next_day)
        fresh = self._arms()[1]
        recs = unpickle_recommenders(
            blob,
            [{**{a: fresh[a] for a in world.arms}, **{-t - 1: r for t, r in enumerate(self._targets())}} for world in state.worlds],
        )
        for world, r in zip(state.worlds, recs):
            world.recommenders = r
        state.profiles = self.folder.read_pickle("profiles.pkl")
        for world in state.worlds:
            world.attach(state.profiles, self._backend)
        state.restore_user_memory()
        state.stopped = ""  # a budget stop resumes (with the budget the scenario now gives)
        self.folder.drop_days_from(state.next_day)
        manifest.files = [f for f in manifest.files if f.day < state.next_day]
        manifest.days_completed = state.next_day
        manifest.status, manifest.stopped = "running", ""
        state.manifest = manifest
        self.folder.write_manifest(manifest)
        return state

    # ------------------------------------------------------------------ the days
    def run(self, resume: bool = False) -> RunResult:
        """Live every day (from the checkpoint with ``resume``) and return per-arm results. With an output
        folder the run holds its lock throughout (a second live run into it is refused: ``recoworld.logs.lock``)."""
        if self.folder is None:
            return self._run(resume)
        with run_lock(self.folder.path):
            return self._run(resume)

    def _run(self, resume: bool) -> RunResult:
        if resume:
            if self.folder is None:
                raise ValueError("--resume: needs an output folder")
            state = self._resumed_state()
            if self.on_resume is not None:
                self.on_resume(state.next_day)
        else:
            state = self._fresh_state()
            if self.folder is not None and self._uses_llm:  # an LLM run can stop on day 0 and resume
                self.folder.save_checkpoint(self._snapshot(state))
        retrain_logs = self._retrain_logs(state)
        days = self.scenario.env.horizon_days
        try:
            for day in range(state.next_day, days):
                tables = self._live_day(state, day, retrain_logs)  # FallbackStop: the last checkpoint stays
                if tables["impressions"]:
                    decided = pa.concat_tables(tables["impressions"], promote_options="permissive")
                    if "user_fallback" in decided.column_names and self._uses_llm:
                        self.llm_decisions += decided.num_rows
                        self.llm_fallbacks += int(pa.compute.sum(decided["user_fallback"]).as_py() or 0)
                state.next_day = day + 1
                if any(s.sim.backend.exhausted for w in state.worlds for s in w.shards):
                    state.stopped = f"the LLM budget ran out on day {day}"
                last = state.next_day == days
                self._commit(state, day, tables, last, state.stopped)
                if self.on_day is not None:
                    self.on_day(day)
                if state.stopped:
                    break
        finally:
            self._days.join()  # let the day being written finish, whatever happened
        self._days.raise_error()
        if state.stopped:  # also without a folder: the result says the run ended early
            state.manifest.status, state.manifest.stopped = "stopped", state.stopped
        return run_result(state, self.folder.path if self.folder else None)

    def _live_day(self, state: RunState, day: int, retrain_logs: dict[int, list[pd.DataFrame]] | None) -> dict[str, list]:
        scn = self.scenario
        tables: dict[str, list] = {"impressions": [], "sessions": [], "creators": [], "items": [], "llm": [], "ope": []}
        creator_usage = {}
        for world in state.worlds:
            if world.creators is not None:
                creator_usage[world.index] = world.creators.usage
                model = self._llm() if self.scenario.creators.backend == "llm" else None
                items = world.creators.publish(day, np.random.default_rng([self.seed, 3, day]), model)
                world.catalog = world.catalog.extend(items)
                grow = len(world.catalog) - len(world.item_impressions)
                world.item_impressions = np.concatenate([world.item_impressions, np.zeros(grow, dtype=np.int64)])
                world.item_clicks = np.concatenate([world.item_clicks, np.zeros(grow, dtype=np.int64)])
                if items:
                    frame = pd.DataFrame([it.model_dump() for it in items])
                    frame.insert(0, "arm", self._world_label(state, world))
                    decisions = world.creators.decision_frame()
                    decisions = decisions.loc[decisions["day"] == day, ["item_id", "explore", "recent_feedback", "p_exploit", "fallback"]]
                    frame = frame.merge(decisions, on="item_id", how="left")
                    tables["items"].append(pa.Table.from_pandas(frame, preserve_index=False))
        jobs = [
            (shard, self.engine.recommenders_for(world.recommenders, len(world.shards)), world.catalog, day, scn.name,
             state.arm_names, (self.seed, world.index), [t.label for t in scn.run.ope_targets])
            for world in state.worlds for shard in world.shards
        ]
        results = iter(self.engine.run_shard_days(jobs, [w.index for w in state.worlds for _ in w.shards]))
        for world in state.worlds:
            done: list[ShardDay] = [next(results) for _ in world.shards]
            world.shards = [r.shard for r in done]
            for shard in world.shards:
                shard.sim.set_catalog(world.catalog)
            if len(done) == 1:
                world.recommenders = done[0].recommenders
            else:
                for arm, rec in world.recommenders.items():
                    rec.merge([r.recommenders[arm] for r in done])
            for r in done:
                world.item_impressions += r.item_impressions
                world.item_clicks += r.item_clicks
                world.llm_usage = world.llm_usage + r.llm_usage
                tables["impressions"].append(r.impressions)
                tables["sessions"].append(r.sessions)
                if r.ope is not None:
                    tables["ope"].append(r.ope)
            if world.creators is not None:
                self._creators_see(world, state, day, tables)
            used = {"users": sum((r.llm_usage for r in done), Usage())}
            if world.creators is not None:
                used["creators"] = world.creators.usage - creator_usage[world.index]
            rows = [{"arm": self._world_label(state, world), "day": day, "source": k, **u.model_dump()}
                    for k, u in used.items() if u.calls or u.cache_hits]
            if rows:
                tables["llm"].append(pa.Table.from_pylist(rows))
            if retrain_logs is not None:
                for r in done:
                    frame = r.impressions.select(RETRAIN_COLUMNS).to_pandas()
                    for arm in world.arms:
                        retrain_logs[arm].append(frame[frame["arm"] == state.arm_names[arm]])
                if (day + 1) % scn.run.retrain_every == 0:
                    for key, rec in world.recommenders.items():
                        if rec.learns_from_logs:  # an off-policy target (key < 0) learns from its world's arms
                            parts = retrain_logs[key] if key >= 0 else [p for a in world.arms for p in retrain_logs[a]]
                            rec.retrain(pd.concat(parts, ignore_index=True))
        return tables

    def _creators_see(self, world: World, state: RunState, day: int, tables: dict[str, list]) -> None:
        cat = world.catalog
        agent_of = {name: c for c, name in enumerate(world.creators.names)}
        owner = np.array([agent_of.get(name, -1) for name in cat.creator_names], dtype=np.int64)[cat.creator]
        feedback = creator_feedback(
            world.creators.names, owner, cat.item_id, cat.topic,
            world.item_impressions, world.item_clicks, cat.n_topics, self.scenario.creators.full_information,
        )
        world.creators.observe(feedback)
        prior = np.concatenate([world.prior_clicks, np.zeros(len(cat) - len(world.prior_clicks))])
        cat.popularity[:] = popularity_percentile(prior + world.item_clicks)
        frame = world.creators.day_table(day)
        frame.insert(0, "arm", self._world_label(state, world))
        tables["creators"].append(pa.Table.from_pandas(frame, preserve_index=False))

    def _world_label(self, state: RunState, world: World) -> str:
        return state.arm_names[world.arms[0]] if len(world.arms) == 1 else "shared"

    def _retrain_logs(self, state: RunState) -> dict[int, list[pd.DataFrame]] | None:
        """Per-arm impression logs kept for recommenders that retrain on them (rebuilt from disk on resume)."""
        if not any(rec.learns_from_logs for w in state.worlds for rec in w.recommenders.values()):
            return None
        logs: dict[int, list[pd.DataFrame]] = {a: [] for a in range(len(state.arm_names))}
        if state.next_day > 0 and self.folder is not None:
            past = read_table(self.folder.path, "impressions", RETRAIN_COLUMNS)
            for a, name in enumerate(state.arm_names):
                logs[a].append(past[past["arm"] == name])
        return logs

    def _commit(self, state: RunState, day: int, tables: dict[str, list], last: bool, stopped: str = "") -> None:
        """Hand the day's tables and a snapshot of the state to the writer thread, which writes the day
        files, then the manifest, then the checkpoint, while the next day is simulated. A kill at any
        point resumes from the last checkpoint (later files and manifest entries are redone). A budget
        stop (``stopped``: why) keeps its checkpoint, so the run resumes with a larger budget."""
        if self.folder is None:
            return
        self._days.wait()
        snapshot = None if last else self._snapshot(state)
        self._days.submit(state.manifest, day, {name: pa.concat_tables(parts, promote_options="permissive")
                                                for name, parts in tables.items() if parts}, last, snapshot, stopped)
        if last or stopped:
            self._days.wait()

    def _snapshot(self, state: RunState) -> tuple[bytes, list[bytes]]:
        assert self.folder is not None
        recs = pickle_recommenders([world.recommenders for world in state.worlds])
        state.keep_user_memory()
        with detached(state):
            return self.folder.snapshot((state, recs))

    def _changed_scenario(self) -> str:
        """The one-line refusal of a resume whose scenario differs, naming the changed fields."""
        assert self.folder is not None
        started = yaml.safe_load((self.folder.path / "scenario.yaml").read_text())
        changed = scenario_changes(started, self.scenario.model_dump(mode="json", by_alias=True))
        return (f"--resume: the scenario differs from the one the run in '{self.folder.path}' started with "
                f"({'; '.join(changed[:3]) or 'a field'}); resume with the same settings or pass --overwrite")

def run_population(
    scenario: Scenario,
    recommender: Recommender,
    n_users: int | None = None,
    seed: int | None = None,
    catalog: Catalog | None = None,
    on_day: Callable[[int], None] | None = None,
    language_model: "LanguageModel | None" = None,
) -> PopulationResult:
    """One recommender over ``n_users`` users (the same users for the same seed), in memory."""
    from recoworld.scenario import load_scenario

    overrides: dict = {"run": {"output": None}}
    if n_users is not None:
        overrides["users"] = {"n_users": n_users}
    if seed is not None:
        overrides["seed"] = seed
    scenario = load_scenario(scenario, overrides)
    run = PopulationRun(scenario, [recommender], catalog=catalog, output=None, language_model=language_model, on_day=on_day)
    return next(iter(run.run().arms.values()))
