"""Numeric observations of what the platform can see (no hidden mindset), batched over users."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from recoworld.simulation import Simulation
from recoworld.users.instructions import NO_TOPIC
from recoworld.users.parametric import Index, user_rows

CANDIDATE_FEATURES: tuple[str, ...] = (
    "quality",
    "popularity",
    "duration",
    "freshness",
    "consumed",
    "affinity",
    "topic_click_share",
    "topic_shown_share",
)
USER_FEATURES: tuple[str, ...] = (
    "session_step",
    "days_since_last_visit",
    "day",
    "sessions",
    "session_ctr",
    "last_session_ctr",
    "last_session_length",
    "skip_streak",
    "engagement_volume",
)
_LOG_MAX_DURATION = np.log1p(7200.0)


def observation_space(n_candidates: int, n_topics: int) -> spaces.Dict:
    """Flat Dict of 1-D Box arrays (SB3's MultiInputPolicy takes it as is).

    ``candidates`` holds M rows of (topic one-hot, CANDIDATE_FEATURES), flattened; reshape to
    ``(M, T + len(CANDIDATE_FEATURES))`` to read it per candidate.
    """
    return spaces.Dict(
        {
            "candidates": spaces.Box(-1.0, 1.0, (n_candidates * (n_topics + len(CANDIDATE_FEATURES)),), np.float32),
            "user": spaces.Box(0.0, 1.0, (len(USER_FEATURES),), np.float32),
            "topics": spaces.Box(0.0, 1.0, (2 * n_topics,), np.float32),
            "instruction": spaces.Box(0.0, 1.0, (2 * n_topics + 1,), np.float32),
        }
    )


def observe(sim: Simulation, idx: Index) -> dict[str, np.ndarray]:
    """Observation arrays for users ``idx``, each with a leading batch axis."""
    cat, env, plat, users = sim.catalog, sim.env, sim.platform, sim.users
    rows = user_rows(users, idx)
    b = len(rows)
    t_count = cat.n_topics
    cands = sim.candidates[rows]
    topics = cat.topic[cands]
    day = sim.day[rows]
    clicks = plat.click_topics[rows]
    shown = plat.shown_topics[rows]
    click_share = clicks / np.maximum(clicks.sum(1, keepdims=True), 1e-6)
    shown_share = shown / np.maximum(shown.sum(1, keepdims=True), 1e-6)
    est = plat.est_taste[rows]
    est_norm = np.linalg.norm(est, axis=1)
    affinity = np.einsum("bmd,bd->bm", cat.embeddings[cands], est / np.maximum(est_norm, 1e-9)[:, None])

    feats = np.zeros((b, cands.shape[1], t_count + len(CANDIDATE_FEATURES)), dtype=np.float32)
    np.put_along_axis(feats, topics[:, :, None], 1.0, axis=2)
    f = feats[:, :, t_count:]
    f[..., 0] = cat.quality[cands]
    f[..., 1] = cat.popularity[cands]
    f[..., 2] = np.log1p(cat.duration[cands]) / _LOG_MAX_DURATION
    f[..., 3] = np.exp(-np.maximum(day[:, None] - cat.created_day[cands], 0) / 30.0)
    f[..., 4] = users.consumed[rows[:, None], cands]
    f[..., 5] = np.clip(affinity, -1.0, 1.0)
    f[..., 6] = np.take_along_axis(click_share, topics, 1)
    f[..., 7] = np.take_along_axis(shown_share, topics, 1)

    user = np.stack(
        [
            sim.session_step[rows] / env.max_slates_per_session,
            plat.days_since_last[rows] / env.churn_window_days,
            day / env.horizon_days,
            plat.sessions[rows] / env.horizon_days,
            plat.session_clicks[rows] / np.maximum(plat.session_reviewed[rows], 1.0),
            plat.last_ctr[rows],
            plat.last_length[rows] / env.max_slates_per_session,
            plat.session_skip_streak[rows] / (3.0 * env.slate_size),
            1.0 - np.exp(-est_norm),
        ],
        axis=1,
    )
    instruction = np.zeros((b, 2 * t_count + 1), dtype=np.float32)
    more, less = users.instr_more[rows], users.instr_less[rows]
    r = np.arange(b)
    instruction[r[more != NO_TOPIC], more[more != NO_TOPIC]] = 1.0
    instruction[r[less != NO_TOPIC], t_count + less[less != NO_TOPIC]] = 1.0
    instruction[:, -1] = users.instr_surprise[rows]
    return {
        "candidates": feats.reshape(b, -1),
        "user": np.clip(user, 0.0, 1.0).astype(np.float32),
        "topics": np.concatenate([click_share, shown_share], axis=1).astype(np.float32),
        "instruction": instruction,
    }
