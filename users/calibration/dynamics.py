"""Session dynamics fitted by simulation (indirect inference).

The kernel decides when a user leaves a session (a hazard per item reviewed: ``hazard_bias``, the
patience trait's ``hazard_patience``, fatigue's ``hazard_fatigue``) and when they come back (a daily
return probability: ``return_bias``, the activity trait's ``return_activity``; no return within
``churn_window_days`` is churn). None of these has a likelihood in closed form once satisfaction,
trust and boredom feed back into them, so they are fitted the way indirect inference fits simulators
(Gourieroux, Monfort & Renault 1993; the simulated method of moments): simulate the calibrated users'
lives with the kernel, put the simulated log through the same time split as the real one, and pick
the parameters whose training-period distributions of session length, inter-visit gap and sessions
per user are closest (the sum over statistics of each Jensen–Shannon divergence's excess over its
target in :data:`TARGETS`: a statistic within its target costs nothing more, so the search spends
its freedom on the ones still outside), by coordinate search with common
random numbers (every evaluation uses the same seed, so differences come from the parameters alone);
each round sweeps every parameter alone, then the pairs in :data:`JOINT` on their joint grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recoworld.progress import stage
from recoworld.world.catalog import Catalog
from recoworld.users.calibration.data import sessions_table
from recoworld.users.calibration.io import CalibrationConfig, DynamicsFit
from recoworld.stats import sample_jsd
from recoworld.users.profile import UserProfile

SLATE = 10  # items per simulated slate
MAX_SLATES = 60  # a simulated session ends after this many slates at the latest (600 items)
MAX_STEPS = 4000
GRID: dict[str, tuple[float, ...]] = {
    "hazard_bias": tuple(np.arange(-8.0, 0.1, 0.5)),
    "hazard_patience": (0.0, 1.5, 3.0, 4.5, 6.0),
    "hazard_fatigue": (0.0, 1.0, 3.0),
    "return_bias": tuple(np.arange(-6.0, 3.1, 0.5)),
    "return_activity": (0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 12.0),
    "return_satisfaction": (0.0, 1.75, 3.5, 7.0),
    "churn_window_days": (7.0, 14.0, 21.0, 30.0, 45.0, 60.0, 90.0, 120.0),
}
# pairs searched jointly after each coordinate sweep: a longer churn window (or a steeper activity effect)
# only pays with a lower daily return chance at the same time, a move no single coordinate makes
JOINT: tuple[tuple[str, str], ...] = (("return_bias", "churn_window_days"), ("return_bias", "return_activity"))
START = {"hazard_bias": -4.5, "hazard_patience": 1.5, "hazard_fatigue": 1.0, "return_bias": -2.0, "return_activity": 2.5, "return_satisfaction": 3.5,
         "churn_window_days": 14.0}
ENV_PARAMS = ("churn_window_days",)
# the JSD each statistic should stay under (the targets): the search minimises the worst ratio to them
TARGETS = {"session_length": 0.05, "inter_visit_gap": 0.1, "activity": 0.05}


def behaviour(sessions: pd.DataFrame) -> dict[str, np.ndarray]:
    """Session lengths, inter-visit gaps (days) and sessions per user of a :func:`sessions_table`."""
    return {"session_length": sessions["length"].to_numpy(dtype=float),
            "inter_visit_gap": sessions["gap_days"].dropna().to_numpy(dtype=float),
            "activity": sessions.groupby("user_id", sort=False).size().to_numpy(dtype=float)}


def behaviour_jsd(real: dict[str, np.ndarray], simulated: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: sample_jsd(real[k], simulated[k]) if len(real[k]) and len(simulated[k]) else 1.0 for k in real}


def simulate_log(catalog: Catalog, profiles: list[UserProfile], user_model: dict[str, float], env: dict[str, float],
                 exposure: np.ndarray, horizon_days: int, seed: int) -> pd.DataFrame:
    """Simulated lives of ``profiles`` (slates drawn with probabilities ``exposure``), as an interaction log:
    user_id, item_id, timestamp (session starts on its day, items a minute apart), session, position, click.
    A life starts where the real log starts: with no topic history."""
    from recoworld.scenario import load_scenario
    from recoworld.world.simulation import Simulation

    profiles = [p.model_copy(update={"topic_history": {}}) for p in profiles]

    scenario = load_scenario({"user_model": user_model, "env": {
        "slate_size": SLATE, "num_candidates": SLATE, "max_slates_per_session": MAX_SLATES, "horizon_days": horizon_days,
        "churn_window_days": int(env["churn_window_days"])}})
    rng = np.random.default_rng(seed)
    sim = Simulation(scenario, catalog, profiles, rng)
    cdf = np.cumsum(exposure / exposure.sum())
    user, item, day, session, pos, click = [], [], [], [], [], []
    sessions = np.zeros(len(profiles), dtype=np.int64)
    position = np.zeros(len(profiles), dtype=np.int64)
    draw = np.random.default_rng(seed + 1)
    for _ in range(MAX_STEPS):
        rows = np.flatnonzero(sim.alive)
        if not len(rows):
            break
        slates = np.minimum(np.searchsorted(cdf, draw.random((len(rows), SLATE))), len(catalog) - 1)
        today = sim.day[rows].copy()
        out = sim.step(rows, slates)
        reviewed = out.response.reviewed
        r_idx, k_idx = np.nonzero(reviewed)
        user.append(rows[r_idx])
        item.append(slates[r_idx, k_idx])
        click.append(out.response.click[r_idx, k_idx])
        day.append(today[r_idx])
        session.append(sessions[rows[r_idx]])
        pos.append(position[rows[r_idx]] + (np.cumsum(reviewed, axis=1)[r_idx, k_idx] - 1))
        position[rows] += reviewed.sum(1)
        ended = rows[out.session_ended]
        sessions[ended] += 1
        position[ended] = 0
    frame = pd.DataFrame({"user_id": np.concatenate(user), "item_id": np.concatenate(item), "day": np.concatenate(day),
                          "session": np.concatenate(session), "position": np.concatenate(pos), "click": np.concatenate(click)})
    frame["timestamp"] = frame["day"] * 86_400 + frame["position"] * 60
    return frame.sort_values(["user_id", "session", "position"], kind="stable").reset_index(drop=True)


def training_period(log: pd.DataFrame, holdout: float) -> pd.DataFrame:
    """The earlier (1 - holdout) share of each user's simulated interactions (the real split's rule)."""
    rank = log.groupby("user_id", sort=False).cumcount()
    size = log.groupby("user_id", sort=False)["item_id"].transform("size")
    return log[(rank < np.ceil(size * (1 - holdout))).to_numpy()]


def fit_dynamics(real_train: pd.DataFrame, catalog: Catalog, profiles: list[UserProfile], user_model: dict[str, float],
                 exposure: np.ndarray, config: CalibrationConfig) -> DynamicsFit:
    """Coordinate search over :data:`GRID` for the parameters whose simulated training-period behaviour is
    closest to ``real_train``'s (sessions per :func:`data.split_by_time`)."""
    real = behaviour(sessions_table(real_train))
    span = (real_train.groupby("user_id")["timestamp"].max() - real_train.groupby("user_id")["timestamp"].min()) / 86_400
    horizon = int(max(np.ceil(span.max()) + 1, 2))
    pick = np.random.default_rng(config.seed).permutation(len(profiles))[: config.dynamics_users]
    users = [profiles[i] for i in np.sort(pick)]
    params = dict(START)

    def loss(candidate: dict[str, float]) -> tuple[float, dict[str, float], dict[str, np.ndarray]]:
        model = {**user_model, **{k: v for k, v in candidate.items() if k not in ENV_PARAMS}}
        log = simulate_log(catalog, users, model, candidate, exposure, horizon, config.seed)
        sim = behaviour(sessions_table(training_period(log, config.holdout)))
        jsd = behaviour_jsd(real, sim)
        ratio = [jsd[k] / TARGETS[k] for k in jsd]
        return sum(max(r, 1.0) for r in ratio) + 0.01 * sum(ratio), jsd, sim

    moves = [{name: float(v)} for name, grid in GRID.items() for v in grid]
    moves += [{a: float(x), b: float(y)} for a, b in JOINT for x in GRID[a] for y in GRID[b]]
    with stage(f"fitting session dynamics by simulation ({len(users)} users)", total=config.dynamics_rounds * len(moves)) as progress:
        best, jsd, sim = loss(params)
        for _ in range(config.dynamics_rounds):
            for move in moves:
                progress.advance()
                if all(params[k] == v for k, v in move.items()):
                    continue
                trial = {**params, **move}
                score, trial_jsd, trial_sim = loss(trial)
                if score < best - 1e-9:
                    best, params, jsd, sim = score, trial, trial_jsd, trial_sim
                    progress.note(f"loss {best:.3f}")
    return DynamicsFit(params={k: float(v) for k, v in params.items()}, jsd=jsd,
                       real={k: float(np.mean(v)) for k, v in real.items()}, simulated={k: float(np.mean(v)) for k, v in sim.items()})
