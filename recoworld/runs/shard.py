"""One shard-day: a slice of a world's users lives through one day, served by the recommenders.

This is the unit of work of every engine: the local engine runs shard-days in this process,
the Ray engine in Ray tasks. A shard-day depends only on its arguments (the shard, copies of the
recommenders, the day's catalog), so both engines produce the same logs for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa

from recoworld.agents.protocol import Recommender
from recoworld.fixed_order import matmul
from recoworld.llm.base import Usage
from recoworld.runs.guards import FallbackWindow
from recoworld.logs.records import constant, dictionary
from recoworld.users import layout as UL
from recoworld.world.catalog import Catalog
from recoworld.world.rewards import COMPONENTS
from recoworld.world.simulation import Simulation

TOTALS = (
    *COMPONENTS, "reviewed", "slates", "reward", "instructions", "compliance_sum", "compliance_n",
    "first_session_clicks", "first_session_reviewed", "llm_fallbacks", "sessions",
)
ITEM_COMPONENTS = slice(0, 7)  # click, like, share, comment, watch_minutes, skip, leave: per item
_RUN_TOTALS_FROM_SESSION = (  # (run total, session sum it adds up)
    ("reviewed", "reviewed"), ("slates", "slates"), ("reward", "reward"), ("instructions", "instructions"),
    ("compliance_sum", "compliance_sum"), ("compliance_n", "compliance_n"), ("llm_fallbacks", "user_fallbacks"),
)
_SESSION_SUMS = ("slates", "reviewed", "clicks", "likes", "shares", "comments", "watch_seconds", "reward",
                 "instructions", "compliance_sum", "compliance_n", "user_fallbacks")


@dataclass
class Shard:
    """A slice of one world's users: their simulation, the arm serving each, and per-user run totals."""

    world: int
    index: int
    sim: Simulation
    arm_of: np.ndarray  # (n,) arm index per user
    segments: np.ndarray  # (n,) segment name per user (object)
    totals: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.totals:
            self.totals = {name: np.zeros(len(self.sim)) for name in TOTALS}

    def __len__(self) -> int:
        return len(self.sim)


@dataclass
class ShardDay:
    """What one shard-day produced."""

    shard: Shard
    recommenders: dict[int, Recommender]
    impressions: pa.Table
    sessions: pa.Table
    ope: pa.Table | None  # off-policy target probabilities (None without targets)
    item_impressions: np.ndarray  # (N,) items reviewed, per catalog row
    item_clicks: np.ndarray  # (N,)
    llm_usage: Usage


class _Impressions:
    """Column chunks of the impression records of one shard-day, one chunk per served batch."""

    def __init__(self, n_users: int) -> None:
        self.cols: dict[str, list[np.ndarray]] = {}
        self.texts: dict[str, int] = {}
        self._key = np.full((n_users, 4), -2, dtype=np.int64)  # instruction key each user's code is for
        self._code = np.full(n_users, -1, dtype=np.int32)

    def add(self, **cols: np.ndarray) -> None:
        for name, value in cols.items():
            self.cols.setdefault(name, []).append(value.reshape(-1, value.shape[-1]) if name == "comp" else value.reshape(-1))

    def instructions(self, sim: Simulation, rows: np.ndarray) -> np.ndarray:
        """(b,) code of each user's pending instruction text, -1 where none; words are looked up
        only when a user's instruction changed since the last slate."""
        key = sim.instruction_keys(rows)
        pending = sim.users.instr[rows, UL.AGE] >= 0
        stale = np.flatnonzero(pending & (self._key[rows] != key).any(1))
        for row, said in zip(rows[stale].tolist(), key[stale].tolist()):
            text = sim.instruction_text(row, tuple(said))
            self._code[row] = self.texts.setdefault(text, len(self.texts)) if text is not None else -1
        self._key[rows[stale]] = key[stale]
        return np.where(pending, self._code[rows], -1).astype(np.int32)

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self.cols[name]) if name in self.cols else np.zeros(0)


def run_shard_day(
    shard: Shard,
    recommenders: dict[int, Recommender],
    catalog: Catalog,
    day: int,
    run: str,
    arm_names: list[str],
    reseed: tuple[int, ...],
    target_names: Sequence[str] = (),
) -> ShardDay:
    """Every session of ``day`` for the shard's users; the recommenders learn online as they serve."""
    sim = shard.sim
    sim.set_catalog(catalog)
    for arm, rec in recommenders.items():
        rec.reseed((*reseed, day, shard.index, arm if arm >= 0 else 1000 - arm))  # targets: 1001, 1002, ...
    targets = {-key - 1: rec for key, rec in recommenders.items() if key < 0}  # off-policy targets: they never serve
    ope: dict[str, list[np.ndarray]] = {}
    n = len(sim)
    weights = sim.weights[ITEM_COMPONENTS].astype(np.float32)
    usage_before = sim.backend.usage
    acc = np.zeros((n, len(_SESSION_SUMS)))  # per user: the session's sums, in _SESSION_SUMS order
    sessions: dict[str, list[np.ndarray]] = {}
    log = _Impressions(n)
    item_imp = np.zeros(len(catalog), dtype=np.int64)
    item_clk = np.zeros(len(catalog), dtype=np.int64)
    rows = np.flatnonzero(sim.alive & (sim.day == day))
    sim.retrieve(rows)
    guard = FallbackWindow(sim.scenario.llm.max_fallback_share, sim.scenario.llm.fallback_window)
    while len(rows):
        still = []
        for arm in np.unique(shard.arm_of[rows]):
            r = rows[shard.arm_of[rows] == arm]
            rec = recommenders[int(arm)]
            view = sim.view(r, with_text=rec.needs_text, with_observation=rec.needs_observation)
            choice = rec.slate(view)
            slates = np.take_along_axis(view.candidates, choice.positions, 1)
            session_no = sim.platform.sessions[r].astype(np.int32)
            step_no = (sim.session_step[r] + 1).astype(np.int32)
            instr = log.instructions(sim, r)
            for index, target in targets.items():
                _log_target(ope, target, index, view, choice, int(arm), r, step_no)
            out = sim.step(r, slates)
            resp = out.response
            rec.observe(view, choice.positions, resp.click, resp.reviewed)
            for target in targets.values():
                target.observe(view, choice.positions, resp.click, resp.reviewed)
            fallback = sim.backend.fallbacks(len(r))
            if not sim.backend.exhausted:  # a spent budget stops the run at the day's end instead
                records = getattr(sim.backend, "last_records", [])
                guard.add(sum(x.called or x.fallback for x in records), int(fallback.sum()), f" on day {day}")
            echoed = getattr(sim.backend, "echoed", None)
            echoed = echoed(len(r)) if echoed is not None else np.zeros(len(r), dtype=bool)
            rec_fallback = choice.fallback if choice.fallback is not None else np.zeros(len(r), dtype=bool)

            _log_slates(log, int(arm), r, slates, session_no, step_no, instr, out, choice, fallback, rec_fallback, echoed)
            seen = resp.reviewed
            item_imp += np.bincount(slates[seen], minlength=len(catalog))
            item_clk += np.bincount(slates[resp.click], minlength=len(catalog))
            ended = _add_up(shard, acc, sessions, r, session_no, out, fallback)
            still.append(r[~ended])
        rows = np.sort(np.concatenate(still)) if still else rows[:0]

    usage = sim.backend.usage - usage_before
    return ShardDay(
        shard=shard,
        recommenders=recommenders,
        impressions=_impression_table(log, sim, catalog, run, arm_names, weights, day),
        sessions=_session_table(sessions, sim, shard, run, arm_names, day),
        ope=_ope_table(ope, sim, catalog, run, arm_names, list(target_names), day),
        item_impressions=item_imp,
        item_clicks=item_clk,
        llm_usage=usage,
    )


def _log_slates(log: _Impressions, arm: int, r: np.ndarray, slates: np.ndarray, session_no: np.ndarray, step_no: np.ndarray,
                instr: np.ndarray, out, choice, fallback: np.ndarray, rec_fallback, echoed: np.ndarray) -> None:
    """One impression row per shown item of the slates just served to users ``r``."""
    resp = out.response
    k = slates.shape[1]
    items = resp.items
    left_here = resp.left[:, None] & (np.arange(k)[None, :] == resp.left_at[:, None])
    comp = np.stack(
        [resp.click, resp.like, resp.share, resp.comment, resp.watch_seconds / 60.0, resp.skip, left_here], axis=2,
    ).astype(np.float32)
    rep = lambda a: np.repeat(a, k)  # noqa: E731  (per user → per slot)
    log.add(
        arm=np.full(len(r) * k, arm, dtype=np.int32), session=rep(session_no), step=rep(step_no),
        position=np.tile(np.arange(k, dtype=np.int16), len(r)), user=rep(r.astype(np.int32)), item=slates,
        action=resp.action_codes.astype(np.int32), watch_seconds=items[:, :, UL.O_WATCH_SECONDS].astype(np.float32),
        comp=comp.reshape(-1, 7), propensity=choice.propensities.astype(np.float32),
        candidate_index=choice.positions.astype(np.int16), instruction=rep(instr),
        compliance=rep(out.effects.compliance.astype(np.float32)), user_fallback=rep(fallback),
        recommender_fallback=rep(np.asarray(rec_fallback, dtype=bool)), user_echoed_item_text=rep(echoed),
    )


def _add_up(shard: Shard, acc: np.ndarray, sessions: dict[str, list[np.ndarray]], r: np.ndarray,
            session_no: np.ndarray, out, fallback: np.ndarray) -> np.ndarray:
    """Per-session sums of the step; the per-user run totals and the session rows take them in when a
    session ends. Returns which of ``r`` ended their session."""
    resp, t = out.response, shard.totals
    for c, name in enumerate(COMPONENTS):
        t[name][r] += out.components[:, c]
    scored = ~np.isnan(out.effects.compliance)
    step = {
        "slates": 1, "reviewed": resp.reviewed.sum(1), "clicks": resp.click.sum(1), "likes": resp.like.sum(1),
        "shares": resp.share.sum(1), "comments": resp.comment.sum(1), "watch_seconds": resp.watch_seconds.sum(1),
        "reward": out.reward, "instructions": out.effects.emitted, "compliance_n": scored,
        "compliance_sum": np.where(scored, out.effects.compliance, 0.0), "user_fallbacks": fallback,
    }
    values = np.empty((len(r), len(_SESSION_SUMS)))
    for c, name in enumerate(_SESSION_SUMS):
        values[:, c] = step[name]
    acc[r] += values  # one row per user of ``r`` (no repeats): each sum as adding it alone
    ended = out.session_ended
    e = r[ended]
    mine = acc[e]
    for name, source in _RUN_TOTALS_FROM_SESSION:
        t[name][e] += mine[:, _SESSION_SUMS.index(source)]
    t["sessions"][e] += 1
    first = (session_no[ended] == 1).astype(np.float64)
    t["first_session_clicks"][e] += mine[:, _SESSION_SUMS.index("clicks")] * first
    t["first_session_reviewed"][e] += mine[:, _SESSION_SUMS.index("reviewed")] * first
    for name, value in (
        ("user", e), ("arm", shard.arm_of[e]), ("session", session_no[ended]), ("left", resp.left[ended]),
        ("churned", out.churned[ended]), ("gap", out.gap_days[ended]),
        *((name, mine[:, c]) for c, name in enumerate(_SESSION_SUMS)),
    ):
        sessions.setdefault(name, []).append(np.asarray(value))
    return ended


def _log_target(ope: dict[str, list[np.ndarray]], target: Recommender, t: int, view, choice, arm: int,
                rows: np.ndarray, step_no: np.ndarray) -> None:
    """What off-policy target ``t`` would have done on this view: its probability of including each logged
    item (kind 0) and every candidate it would include with non-zero probability (kind 1)."""
    incl = target.inclusion(view)  # (b, M)
    k = choice.positions.shape[1]
    logged = np.take_along_axis(incl, choice.positions, 1)
    ui, ci = np.nonzero(incl > 0)
    for kind, users, cand, prob, pos in (
        (0, np.repeat(np.arange(len(rows)), k), choice.positions.reshape(-1), logged.reshape(-1), np.tile(np.arange(k), len(rows))),
        (1, ui, ci, incl[ui, ci], np.full(len(ui), -1)),
    ):
        for name, value in (
            ("arm", np.full(len(users), arm)), ("target", np.full(len(users), t)), ("kind", np.full(len(users), kind)),
            ("user", rows[users]), ("step", step_no[users]), ("position", pos), ("item", view.candidates[users, cand]),
            ("target_prob", prob),
        ):
            ope.setdefault(name, []).append(np.asarray(value))


def _ope_table(ope: dict[str, list[np.ndarray]], sim: Simulation, catalog: Catalog, run: str, arm_names: list[str],
               target_names: list[str], day: int) -> pa.Table | None:
    if not ope:
        return None
    col = {name: np.concatenate(parts) for name, parts in ope.items()}
    m = len(col["user"])
    return pa.table({
        "run": constant(run, m),
        "arm": dictionary(col["arm"], arm_names),
        "day": pa.array(np.full(m, day, dtype=np.int32)),
        "user": dictionary(col["user"], sim.user_ids),
        "step": pa.array(col["step"].astype(np.int32)),
        "target": dictionary(col["target"], target_names),
        "kind": dictionary(col["kind"], ["logged", "target"]),
        "position": pa.array(col["position"].astype(np.int32)),
        "item": dictionary(col["item"], catalog.item_id),
        "target_prob": pa.array(col["target_prob"].astype(np.float32)),
    })


def own_arrays(obj: object, depth: int = 0) -> None:
    """Replace read-only numpy arrays in ``obj`` (and the recoworld objects and dicts it holds) by
    writable copies: Ray hands task arguments over zero-copy, and those arrays are read-only."""
    items = obj.items() if isinstance(obj, dict) else vars(obj).items() if hasattr(obj, "__dict__") else ()
    for name, value in list(items):
        if isinstance(value, np.ndarray):
            if not value.flags.writeable:
                if isinstance(obj, dict):
                    obj[name] = value.copy()
                else:
                    setattr(obj, name, value.copy())
        elif depth < 4 and (isinstance(value, dict) or type(value).__module__.startswith("recoworld.")):
            own_arrays(value, depth + 1)


def _impression_table(log: _Impressions, sim: Simulation, catalog: Catalog, run: str, arm_names: list[str],
                      weights: np.ndarray, day: int) -> pa.Table:
    item = log.column("item").astype(np.int64)
    m = len(item)
    comp = np.concatenate(log.cols["comp"]) if m else np.zeros((0, 7), dtype=np.float32)
    texts = np.array(list(log.texts) or [""], dtype=object)
    return pa.table({
        "run": constant(run, m),
        "arm": dictionary(log.column("arm"), arm_names),
        "day": pa.array(np.full(m, day, dtype=np.int32)),
        "session": pa.array(log.column("session").astype(np.int32)),
        "step": pa.array(log.column("step").astype(np.int32)),
        "position": pa.array(log.column("position").astype(np.int32)),
        "user": dictionary(log.column("user"), sim.user_ids),
        "item": dictionary(item, catalog.item_id),
        "creator": dictionary(catalog.creator[item], catalog.creator_names),
        "topic": dictionary(catalog.topic[item], catalog.topic_names),
        "action": dictionary(log.column("action"), UL.ACTION_LABELS),
        "clicked": pa.array(comp[:, 0] > 0),
        "liked": pa.array(comp[:, 1] > 0),
        "shared": pa.array(comp[:, 2] > 0),
        "commented": pa.array(comp[:, 3] > 0),
        "skipped": pa.array(comp[:, 5] > 0),
        "left": pa.array(comp[:, 6] > 0),
        "watch_seconds": pa.array(log.column("watch_seconds").astype(np.float32)),
        "reward": pa.array(matmul(comp, weights).astype(np.float32)),
        "propensity": pa.array(log.column("propensity").astype(np.float32)),
        "candidate_index": pa.array(log.column("candidate_index").astype(np.int32)),
        "instruction": dictionary(log.column("instruction"), texts),
        "compliance": pa.array(log.column("compliance").astype(np.float32)),
        "user_fallback": pa.array(log.column("user_fallback").astype(bool)),
        "recommender_fallback": pa.array(log.column("recommender_fallback").astype(bool)),
        "user_echoed_item_text": pa.array(log.column("user_echoed_item_text").astype(bool)),
    })


def _session_table(sessions: dict[str, list[np.ndarray]], sim: Simulation, shard: Shard, run: str,
                   arm_names: list[str], day: int) -> pa.Table:
    col = {name: (np.concatenate(v) if v else np.zeros(0)) for name, v in sessions.items()}
    user = col.get("user", np.zeros(0)).astype(np.int64)
    m = len(user)
    get = lambda name: col.get(name, np.zeros(0))  # noqa: E731
    comp_n = get("compliance_n")
    with np.errstate(invalid="ignore", divide="ignore"):
        compliance = np.where(comp_n > 0, get("compliance_sum") / np.maximum(comp_n, 1), np.nan)
    return pa.table({
        "run": constant(run, m),
        "arm": dictionary(get("arm"), arm_names),
        "day": pa.array(np.full(m, day, dtype=np.int32)),
        "session": pa.array(get("session").astype(np.int32)),
        "user": dictionary(user, sim.user_ids),
        "segment": pa.array(shard.segments[user].astype(str) if m else np.zeros(0, dtype=str), type=pa.string()),
        **{name: pa.array(get(name).astype(np.int32)) for name in ("slates", "reviewed", "clicks", "likes", "shares", "comments")},
        "watch_seconds": pa.array(get("watch_seconds").astype(np.float32)),
        "reward": pa.array(get("reward").astype(np.float32)),
        "left": pa.array(get("left").astype(bool)),
        "churned": pa.array(get("churned").astype(bool)),
        "return_gap_days": pa.array(get("gap").astype(np.int32)),
        "instructions": pa.array(get("instructions").astype(np.int32)),
        "compliance": pa.array(compliance.astype(np.float32)),
        "user_fallbacks": pa.array(get("user_fallbacks").astype(np.int32)),
    })
