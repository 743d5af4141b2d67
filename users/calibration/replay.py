"""Held-out slates served to a user backend (parametric, hybrid or LLM): its actions against the real ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recoworld.world.catalog import Catalog
from recoworld.users.calibration.data import labels, split_by_time
from recoworld.users.calibration.io import Calibration, CalibrationConfig, Replay
from recoworld.stats import histogram as _histogram
from recoworld.stats import jensen_shannon


def replay_scenario(user_model: dict[str, float], backend: str, config: CalibrationConfig, llm: dict | None = None):
    """A scenario that serves fixed slates of ``config.replay_slate_size`` to users with ``user_model``."""
    from recoworld.scenario import load_scenario

    k = config.replay_slate_size
    return load_scenario({"user_model": user_model, "env": {"slate_size": k, "num_candidates": k, "horizon_days": 10_000,
                                                           "churn_window_days": 10_000},
                          "users": {"backend": backend}, **({"llm": llm} if llm else {})})


def replay_interactions(interactions: pd.DataFrame, catalog: Catalog, calibration: Calibration, backend: str = "parametric",
                        language_model=None, config: CalibrationConfig | None = None, llm: dict | None = None) -> Replay:
    """Replay the held-out part of ``interactions`` (the same split as the calibration) to a user backend:
    parametric, hybrid or llm (with ``language_model``, or one built from the ``llm`` config)."""
    config = config or CalibrationConfig()
    frame = split_by_time(interactions[interactions["item_id"].astype(str).isin(catalog.index_of)], config)
    frame["y"] = labels(frame, config)
    return replay(frame, catalog, calibration, replay_scenario(calibration.result.user_model, backend, config, llm), language_model,
                  seed=config.seed)


def replay(frame: pd.DataFrame, catalog: Catalog, calibration: Calibration, scenario, language_model=None,
           seed: int = 0, part: str = "test", max_users: int | None = None) -> Replay:
    """Serve each user's held-out interactions, in order and in slates of ``env.slate_size``, to the
    scenario's user backend (parametric, hybrid or LLM) with the calibrated tastes; compare what it does
    with what the real users did. ``frame`` is :func:`split_by_time` output with a ``y`` label column."""
    from recoworld.world.simulation import Simulation
    from recoworld.users.llm_user import make_user_backend

    if calibration.items is not None:  # the calibrated world: learned item vectors, quality and popularity
        catalog = calibration.items.apply(catalog)
    test = frame[frame["test"] if part == "test" else ~frame["test"]]
    by_id = {p.user_id: p for p in calibration.profiles}
    if max_users is not None:
        by_id = {u: by_id[u] for u in list(by_id)[:max_users]}
    test = test[test["user_id"].astype(str).isin(by_id)]
    if test.empty:
        raise ValueError("replay: no held-out interactions of calibrated users")
    users = list(dict.fromkeys(test["user_id"].astype(str)))
    sim = Simulation(scenario, catalog, [by_id[u] for u in users], np.random.default_rng(seed))
    sim.backend = make_user_backend(scenario, language_model)
    k = scenario.env.slate_size
    rows = test["item_id"].astype(str).map(catalog.index_of).to_numpy(dtype=np.int64)
    row_of_user = pd.Index(users).get_indexer(test["user_id"].astype(str))
    slot = test.groupby("user_id", sort=False).cumcount().to_numpy()
    slate_no, pos = slot // k, slot % k
    predicted = np.zeros(len(test), dtype=bool)
    reviewed = np.zeros(len(test), dtype=bool)
    session = test["session"].to_numpy()
    left_session = np.full(len(users), -1, dtype=np.int64)  # the real session a simulated user last left
    n_slates = n_left = 0
    filler = np.random.default_rng(seed + 1)
    for r in range(int(slate_no.max()) + 1):
        idx = np.flatnonzero(slate_no == r)
        if not len(idx):
            continue
        u = np.unique(row_of_user[idx])
        slates = filler.integers(0, len(catalog), (len(u), k))  # unlabelled filler past a user's last item
        where = np.searchsorted(u, row_of_user[idx])
        slates[where, pos[idx]] = rows[idx]
        first = np.full(len(u), np.iinfo(np.int64).max)
        np.minimum.at(first, where, session[idx])
        active = left_session[u] != first  # a user who left this real session sees none of its later slates
        out = sim.step(u[active], slates[active])
        n_slates += int(active.sum())
        served = np.zeros(len(u), dtype=bool)
        served[active] = True
        act_row = np.cumsum(served) - 1
        ok = served[where]
        predicted[idx[ok]] = out.response.click[act_row[where[ok]], pos[idx[ok]]]
        reviewed[idx[ok]] = out.response.reviewed[act_row[where[ok]], pos[idx[ok]]]
        left = np.zeros(len(u), dtype=bool)
        left[active] = out.response.left
        n_left += int(left.sum())
        left_session[u[left]] = first[left]
    y = test["y"].to_numpy() > 0
    tp, fp, fn = int((predicted & y).sum()), int((predicted & ~y).sum()), int((~predicted & y).sum())
    keys = [test["user_id"].astype(str).to_numpy(), session]
    real_len = test.groupby(keys).size().to_numpy()
    sim_len = pd.Series(reviewed).groupby(keys).sum().to_numpy()
    edges = np.arange(1, max(int(real_len.max()), 1) + 2)
    topics = catalog.topic[rows]
    act_edges = np.unique(np.quantile(np.concatenate([np.bincount(row_of_user[y]), np.bincount(row_of_user[predicted])]),
                                      np.linspace(0, 1, 11)))
    act_edges = np.append(act_edges, act_edges[-1] + 1)
    return Replay(
        backend=scenario.users.backend, slates=n_slates,
        f1=2 * tp / max(2 * tp + fp + fn, 1), precision=tp / max(tp + fp, 1), recall=tp / max(tp + fn, 1),
        jsd={
            "session_length": jensen_shannon(_histogram(real_len, edges), _histogram(np.maximum(sim_len, 1), edges)),
            "topic_mix": jensen_shannon(np.bincount(topics[y], minlength=catalog.n_topics),
                                        np.bincount(topics[predicted], minlength=catalog.n_topics)),
            "activity_per_user": jensen_shannon(
                _histogram(np.bincount(row_of_user[y], minlength=len(users)), act_edges),
                _histogram(np.bincount(row_of_user[predicted], minlength=len(users)), act_edges)),
        },
        session_length={"real": float(real_len.mean()), "simulated": float(sim_len.mean())},
        leave_rate={"real": len(real_len) / max(float(real_len.sum()), 1.0), "simulated": n_left / max(float(reviewed.sum()), 1.0)},
    )




def serve_lists(calibration: Calibration, catalog: Catalog, user_ids: list[str], lists: list[np.ndarray], scenario,
                language_model=None, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Show each user ``user_ids[i]`` the catalog rows ``lists[i]`` as consecutive slates of ``env.slate_size``
    (the backend of ``scenario`` decides); returns per list the clicks (bool) and the kernel's utilities."""
    from recoworld.world.simulation import Simulation
    from recoworld.users.llm_user import make_user_backend

    if calibration.items is not None:
        catalog = calibration.items.apply(catalog)
    by_id = {p.user_id: p for p in calibration.profiles}
    sim = Simulation(scenario, catalog, [by_id[u] for u in user_ids], np.random.default_rng(seed))
    sim.backend = make_user_backend(scenario, language_model)
    k = scenario.env.slate_size
    clicks = [np.zeros(len(x), dtype=bool) for x in lists]
    utility = [np.zeros(len(x)) for x in lists]
    filler = np.random.default_rng(seed + 1)
    for r in range(max((len(x) + k - 1) // k for x in lists)):
        users = np.array([i for i, x in enumerate(lists) if len(x) > r * k])
        slates = filler.integers(0, len(catalog), (len(users), k))
        for row, i in enumerate(users):
            part = lists[i][r * k:(r + 1) * k]
            slates[row, : len(part)] = part
        out = sim.step(users, slates)
        for row, i in enumerate(users):
            n = min(k, len(lists[i]) - r * k)
            clicks[i][r * k: r * k + n] = out.response.click[row, :n]
            utility[i][r * k: r * k + n] = out.response.utility[row, :n]
    return clicks, utility
