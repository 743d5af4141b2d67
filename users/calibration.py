"""Calibrate the parametric user model to logged interactions, and measure its fidelity on held-out data.

Each user's interactions are split by time: the last ``holdout`` share is held out. On the
training part:

* **taste**: per user, the unit mean embedding of the items they engaged with minus that of the
  items they passed on (Rocchio), in the catalog's embedding space;
* **population parameters**: a logistic regression of engagement on the parametric model's
  utility terms — taste match (cosine), item quality and popularity (both from training data
  only), topic satiation (same-topic items just before, within the session) and fatigue
  (position in the session) — whose coefficients map to ``user_model`` weights, the click
  threshold and the temperature.

The fidelity measured on the held-out interactions is the model's predicted engagement against
the real labels (AUC, log-loss, calibration curve), next to popularity and matrix factorisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from recoworld.evaluation.stats import auc, jensen_shannon

from recoworld.world.catalog import Catalog, unit_rows
from recoworld.users.profile import Traits, UserProfile

FEATURES = ("taste", "quality", "popularity", "satiation", "fatigue")
META_KEY = b"recoworld.calibration"


class CalibrationConfig(BaseModel):
    """How interactions become labels and how much is held out."""

    model_config = ConfigDict(extra="forbid")

    label: Literal["auto", "click", "rating", "watch_ratio"] = Field(
        "auto", description="Engagement label: click column, rating >= rating_threshold, or watch_ratio >= watch_ratio_threshold."
    )
    rating_threshold: float = Field(4.0, description="Ratings at or above this count as engagement.")
    watch_ratio_threshold: float = Field(2.0, description="Watch ratios at or above this count as engagement (KuaiRec).")
    holdout: float = Field(0.2, gt=0, lt=1, description="Share of each user's latest interactions held out.")
    min_interactions: int = Field(10, ge=2, description="Users with fewer interactions are left out.")
    session_gap_minutes: float = Field(30.0, gt=0, description="A gap longer than this starts a new session.")
    satiation_window: int = Field(5, ge=1, description="Previous items of the session that count for satiation.")
    l2: float = Field(1e-3, ge=0, description="Ridge penalty of the population regression.")
    seed: int = Field(0, description="Seed of the matrix-factorisation baseline and the replay.")
    replay_slate_size: int = Field(5, ge=1, description="Held-out interactions are replayed in slates of this size.")
    fit_hazard: bool = Field(
        False, description="Fit the leaving hazard's bias to the training sessions' rate of ending (the bias's maximum-likelihood "
        "equation under the kernel's logistic hazard). Off by default: it did not improve the held-out replay on either benchmark data set."
    )
    hazard_iterations: int = Field(10, ge=1, description="Bisection steps of the hazard fit.")
    hazard_users: int = Field(300, ge=1, description="Users whose training sessions the hazard fit replays.")


class FittedWeights(BaseModel):
    """Logistic coefficients on the utility terms (per unit of the feature) and the intercept."""

    model_config = ConfigDict(extra="forbid")

    taste: float
    quality: float
    popularity: float
    satiation: float
    fatigue: float
    intercept: float


class Fidelity(BaseModel):
    """Held-out agreement of the calibrated model with real labels, next to two baselines."""

    model_config = ConfigDict(extra="forbid")

    n_train: int
    n_test: int
    users: int
    positive_rate: float
    auc: dict[str, float] = Field(description="Held-out AUC per model: simulator, popularity, mf.")
    log_loss: dict[str, float]
    calibration: list[dict[str, float]] = Field(description="Simulator: mean predicted vs observed per decile.")


class Replay(BaseModel):
    """A user backend served the held-out slates: its actions and sessions against the real ones."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    slates: int
    f1: float = Field(description="F1 of predicted engagement (click) against the real labels, per held-out item.")
    precision: float
    recall: float
    jsd: dict[str, float] = Field(description="Jensen–Shannon divergence (bits, 0..1) of session length, topic mix, activity per user.")
    session_length: dict[str, float] = Field(default_factory=dict, description="Mean items per session: real and simulated.")
    leave_rate: dict[str, float] = Field(default_factory=dict, description="Sessions ended per item reviewed: real and simulated.")


class CalibrationResult(BaseModel):
    """What a calibration file carries besides the per-user tastes."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    catalog: dict = Field(default_factory=dict, description="The catalog config the tastes live in (scenario.catalog).")
    seed: int = Field(0, description="The catalog's seed (scenario.seed): it fixes the embedding space.")
    weights: FittedWeights
    user_model: dict[str, float] = Field(description="ParametricUserParams fields set by the fit.")
    fidelity: Fidelity
    replays: list[Replay] = Field(default_factory=list, description="Held-out replays by user backend.")


@dataclass
class Calibration:
    """Calibrated users (profiles with taste) and population parameters."""

    result: CalibrationResult
    profiles: list[UserProfile]
    item_quality: dict[str, float] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """A Parquet file: one row per user (taste as a list), the fit and fidelity in the file's metadata."""
        path = Path(path)
        table = pa.table({
            "user_id": [p.user_id for p in self.profiles],
            "segment": [p.segment for p in self.profiles],
            "interests": [json.dumps(p.interests) for p in self.profiles],
            "taste": [p.taste for p in self.profiles],
            **{name: [getattr(p.traits, name) for p in self.profiles] for name in ("patience", "novelty_seeking", "conformity", "activity")},
        })
        table = table.replace_schema_metadata({META_KEY: self.result.model_dump_json().encode()})
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path


def load_calibration(path: str | Path) -> Calibration:
    """Read a file written by :meth:`Calibration.save` (one-line ``ValueError`` if it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"calibration file '{path}' does not exist")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise ValueError(f"{path.name}: not a Parquet file ({exc})") from None
    meta = (table.schema.metadata or {}).get(META_KEY)
    if meta is None:
        raise ValueError(f"{path.name}: not a RecoWorld calibration (no calibration metadata)")
    result = CalibrationResult.model_validate_json(meta)
    frame = table.to_pandas()
    profiles = [
        UserProfile(
            user_id=str(row["user_id"]), segment=str(row["segment"]), interests=json.loads(row["interests"]) or {"unknown": 1.0},
            taste=[float(v) for v in row["taste"]],
            traits=Traits(patience=row["patience"], novelty_seeking=row["novelty_seeking"], conformity=row["conformity"], activity=row["activity"]),
        )
        for row in frame.to_dict("records")
    ]
    return Calibration(result, profiles)


def calibration_result(path: str | Path) -> CalibrationResult:
    """The fit and fidelity stored in a calibration file (reads only the file's metadata)."""
    try:
        meta = (pq.read_schema(path).metadata or {}).get(META_KEY)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise ValueError(f"{Path(path).name}: not a Parquet file ({exc})") from None
    if meta is None:
        raise ValueError(f"{Path(path).name}: not a RecoWorld calibration (no calibration metadata)")
    return CalibrationResult.model_validate_json(meta)


def calibrate_dataset(dataset: str | Path, items: str | Path | None = None, config: CalibrationConfig | None = None,
                      seed: int = 0, embedding_dim: int = 64) -> Calibration:
    """Calibrate on a MovieLens folder, or on an interactions file with an ``items`` file (generic or
    KuaiRec-style, e.g. with a watch_ratio column); the catalog is built as a scenario would build it."""
    from recoworld.world import loaders
    from recoworld.scenario import CatalogConfig
    from recoworld.world.simulation import build_catalog

    dataset = Path(dataset)
    if dataset.is_dir():
        catalog_cfg = CatalogConfig(source="movielens", path=str(dataset), embedding={"dim": embedding_dim})
        catalog = build_catalog(catalog_cfg, seed)
        interactions = loaders.load_movielens(dataset)[1]
    else:
        if items is None:
            raise ValueError(f"{dataset.name}: an interactions file needs --items (the items file it refers to)")
        catalog_cfg = CatalogConfig(source="items", path=str(items), embedding={"dim": embedding_dim})
        catalog = build_catalog(catalog_cfg, seed)
        interactions = loaders.load_interactions(dataset, catalog)
    calibration = calibrate(interactions, catalog, config, dataset=dataset.name)
    calibration.result.catalog = catalog_cfg.model_dump(mode="json")
    calibration.result.seed = seed
    return calibration


class ProfilePool:
    """Draws users from a fixed list (extracted or calibrated): without replacement while it lasts."""

    def __init__(self, profiles: list[UserProfile]) -> None:
        if not profiles:
            raise ValueError("users: no profiles to draw from")
        self.profiles = profiles

    def sample(self, n: int, rng: np.random.Generator) -> list[UserProfile]:
        from recoworld.users.population import draw_profiles

        return draw_profiles(self.profiles, n, rng)


# ------------------------------------------------------------------ data preparation
def labels(interactions: pd.DataFrame, config: CalibrationConfig) -> np.ndarray:
    """(n,) 0/1 engagement per interaction, from the configured (or first available) label column."""
    kind = config.label
    if kind == "auto":
        kind = next((c for c in ("click", "watch_ratio", "rating") if c in interactions.columns), "")
        if not kind:
            raise ValueError("interactions: no label column (click, watch_ratio or rating)")
    if kind not in interactions.columns:
        raise ValueError(f"interactions: missing label column '{kind}'")
    values = interactions[kind].to_numpy(dtype=np.float64)
    threshold = {"click": 0.5, "rating": config.rating_threshold, "watch_ratio": config.watch_ratio_threshold}[kind]
    return (values >= threshold).astype(np.float64)


def split_by_time(interactions: pd.DataFrame, config: CalibrationConfig) -> pd.DataFrame:
    """Interactions of users with enough rows, sorted by user and time, with ``test`` (the latest share of
    each user), ``session`` (per-user session number) and ``position`` (index within the session)."""
    frame = interactions.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    counts = frame.groupby("user_id", sort=False)["item_id"].transform("size")
    frame = frame[counts >= config.min_interactions].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"interactions: no user has {config.min_interactions} or more interactions")
    rank = frame.groupby("user_id", sort=False).cumcount()
    size = frame.groupby("user_id", sort=False)["item_id"].transform("size")
    frame["test"] = rank >= np.ceil(size * (1 - config.holdout)).astype(int)
    gap = frame.groupby("user_id", sort=False)["timestamp"].diff().fillna(np.inf)
    new = gap > config.session_gap_minutes * 60
    frame["session"] = new.groupby(frame["user_id"], sort=False).cumsum()
    frame["position"] = frame.groupby(["user_id", "session"], sort=False).cumcount()
    return frame


def _satiation(frame: pd.DataFrame, topics: np.ndarray, window: int) -> np.ndarray:
    """Same-topic items among the previous ``window`` items of the session."""
    out = np.zeros(len(frame))
    keys = frame["user_id"].astype(str).to_numpy() + "|" + frame["session"].astype(str).to_numpy()
    for lag in range(1, window + 1):
        same_session = np.zeros(len(frame), dtype=bool)
        same_session[lag:] = keys[lag:] == keys[:-lag]
        same_topic = np.zeros(len(frame), dtype=bool)
        same_topic[lag:] = topics[lag:] == topics[:-lag]
        out += same_session & same_topic
    return out


def user_tastes(frame: pd.DataFrame, y: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(users, codes): per-user unit taste = mean embedding of engaged items − mean of the others."""
    codes, users = pd.factorize(frame["user_id"], sort=False)
    d = emb.shape[1]
    pos = np.zeros((len(users), d))
    neg = np.zeros((len(users), d))
    np.add.at(pos, codes[y > 0], emb[y > 0])
    np.add.at(neg, codes[y == 0], emb[y == 0])
    n_pos = np.bincount(codes[y > 0], minlength=len(users))[:, None]
    n_neg = np.bincount(codes[y == 0], minlength=len(users))[:, None]
    taste = pos / np.maximum(n_pos, 1) - neg / np.maximum(n_neg, 1)
    return unit_rows(taste), np.asarray(users)


def features(frame: pd.DataFrame, catalog_rows: np.ndarray, catalog: Catalog, taste: np.ndarray, user_codes: np.ndarray,
             quality: np.ndarray, popularity: np.ndarray, window: int) -> np.ndarray:
    """(n, 5) utility terms in FEATURES order."""
    emb = catalog.embeddings[catalog_rows]
    return np.stack([
        np.einsum("nd,nd->n", emb, taste[user_codes]),
        quality[catalog_rows] - 0.5,
        popularity[catalog_rows],
        _satiation(frame, catalog.topic[catalog_rows], window),
        frame["position"].to_numpy(dtype=np.float64),
    ], axis=1)


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """Coefficients (intercept last) of an L2-regularised logistic regression, by Newton's method."""
    X = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2 * len(x))
    reg[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (p - y) + reg * beta
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(reg)
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(beta)), grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def predict(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ beta[:-1] + beta[-1])))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted and observed rate per predicted-probability decile."""
    order = np.argsort(p, kind="stable")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            out.append({"predicted": float(p[part].mean()), "observed": float(y[part].mean()), "n": float(len(part))})
    return out


# ------------------------------------------------------------------ the fit
def calibrate(interactions: pd.DataFrame, catalog: Catalog, config: CalibrationConfig | None = None,
              dataset: str = "interactions") -> Calibration:
    """Fit tastes and population parameters on each user's earlier interactions; measure fidelity on the rest."""
    from recoworld.users.parametric import ParametricUserParams

    config = config or CalibrationConfig()
    index = catalog.index_of
    known = interactions["item_id"].astype(str).map(index)
    inter = interactions[known.notna().to_numpy()].copy()
    if inter.empty:
        raise ValueError("interactions: none of the items is in the catalog")
    frame = split_by_time(inter, config)
    rows = frame["item_id"].astype(str).map(index).to_numpy(dtype=np.int64)
    y = labels(frame, config)
    train = ~frame["test"].to_numpy()

    # item terms from training data only (no peeking at held-out labels)
    n_items = len(catalog)
    seen = np.bincount(rows[train], minlength=n_items).astype(np.float64)
    liked = np.bincount(rows[train], weights=y[train], minlength=n_items)
    base = float(y[train].mean())
    quality = (liked + 10 * base) / (seen + 10)  # Bayesian-average engagement rate
    quality = np.clip(0.5 + (quality - base), 0.0, 1.0)
    from recoworld.world.catalog import popularity_percentile

    popularity = popularity_percentile(seen).astype(np.float64)
    popularity[seen == 0] = 0.0

    taste, users = user_tastes(frame[train], y[train], catalog.embeddings[rows[train]].astype(np.float64))
    user_code = pd.Index(users).get_indexer(frame["user_id"])
    x = features(frame, rows, catalog, taste, user_code, quality, popularity, config.satiation_window)
    beta = logistic_fit(x[train], y[train], config.l2)
    weights = FittedWeights(**dict(zip(FEATURES, beta[:-1].tolist())), intercept=float(beta[-1]))

    # held-out fidelity against popularity and matrix factorisation
    test = ~train
    p_sim = predict(x[test], beta)
    pop_rate = (liked + base) / (seen + 1)
    p_pop = pop_rate[rows[test]]
    s_mf = _mf_scores(frame, rows, y, train, config.seed)
    p_mf = _platt(s_mf, y, train)[test]  # squashed by a logistic fit on the training scores
    fidelity = Fidelity(
        n_train=int(train.sum()), n_test=int(test.sum()), users=len(users), positive_rate=float(y.mean()),
        auc={"simulator": auc(y[test], p_sim), "popularity": auc(y[test], p_pop), "mf": auc(y[test], p_mf)},
        log_loss={"simulator": log_loss(y[test], p_sim), "popularity": log_loss(y[test], p_pop), "mf": log_loss(y[test], p_mf)},
        calibration=calibration_curve(y[test], p_sim),
    )

    # map the coefficients onto the parametric model (temperature fixed at the model's default)
    defaults = ParametricUserParams()
    temp = defaults.click_temperature
    conformity = 0.5
    user_model = {
        "w_taste": max(weights.taste * temp, 0.0),
        "w_quality": max(weights.quality * temp, 0.0),
        "w_popularity": max(weights.popularity * temp / conformity, 0.0),
        "click_threshold": -weights.intercept * temp,
        "click_temperature": temp,
    }
    interests = _interests(frame[train], y[train], catalog, rows[train])
    profiles = [
        UserProfile(user_id=str(u), segment="calibrated", interests=interests.get(str(u)) or {catalog.topic_names[0]: 1.0},
                    taste=taste[k].astype(float).round(6).tolist())
        for k, u in enumerate(users)
    ]
    result = CalibrationResult(dataset=dataset, weights=weights, user_model=user_model, fidelity=fidelity)
    calibration = Calibration(result, profiles)
    frame["y"] = y
    if config.fit_hazard:
        result.user_model["hazard_bias"] = _fit_hazard(frame, catalog, calibration, config)
    result.replays.append(replay(frame, catalog, calibration, _replay_scenario(result.user_model, "parametric", config),
                                 seed=config.seed))
    return calibration


def _fit_hazard(frame: pd.DataFrame, catalog: Catalog, calibration: Calibration, config: CalibrationConfig) -> float:
    """The leaving hazard's bias whose replay of the training sessions ends sessions at their real rate per
    item reviewed (bisection: a higher bias, more leaving). The rate, unlike the mean length, is not
    biased by the replay stopping where the real session's items run out."""
    lo, hi = -12.0, 4.0
    for _ in range(config.hazard_iterations):
        mid = (lo + hi) / 2
        scenario = _replay_scenario({**calibration.result.user_model, "hazard_bias": mid}, "parametric", config)
        rep = replay(frame, catalog, calibration, scenario, seed=config.seed, part="train", max_users=config.hazard_users)
        if rep.leave_rate["simulated"] < rep.leave_rate["real"]:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _replay_scenario(user_model: dict[str, float], backend: str, config: CalibrationConfig, llm: dict | None = None):
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
    return replay(frame, catalog, calibration, _replay_scenario(calibration.result.user_model, backend, config, llm), language_model,
                  seed=config.seed)


def _interests(frame: pd.DataFrame, y: np.ndarray, catalog: Catalog, rows: np.ndarray) -> dict[str, dict[str, float]]:
    """Topic shares of each user's engaged training items (top 5, renormalised)."""
    pos = frame[y > 0].assign(topic=np.asarray(catalog.topic_names, dtype=object)[catalog.topic[rows[y > 0]]])
    shares = pos.groupby(["user_id", "topic"], sort=False).size()
    out: dict[str, dict[str, float]] = {}
    for (user, topic), n in shares.items():
        out.setdefault(str(user), {})[str(topic)] = float(n)
    for user, d in out.items():
        top = dict(sorted(d.items(), key=lambda kv: -kv[1])[:5])
        total = sum(top.values())
        out[user] = {t: round(v / total, 4) for t, v in top.items()}
    return out


def _mf_scores(frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int) -> np.ndarray:
    """Scores of every interaction under implicit ALS fitted on the training ones (the ``mf`` baseline's solver)."""
    from recoworld.agents.mf import implicit_als

    u_codes, _ = pd.factorize(frame["user_id"], sort=False)
    i_codes, items = pd.factorize(pd.Series(rows), sort=False)
    uf, vf = implicit_als(u_codes[train], i_codes[train], y[train], 10.0 * y[train], int(u_codes.max()) + 1, len(items),
                          16, 5.0, 8, np.random.default_rng(seed))
    return np.einsum("nd,nd->n", uf[u_codes], vf[i_codes])


def _platt(score: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Scores squashed to probabilities by a one-feature logistic fit on the training rows."""
    beta = logistic_fit(score[train, None], y[train], 0.0)
    return predict(score[:, None], beta)


# ------------------------------------------------------------------ replaying held-out slates
def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(np.clip(values, edges[0], edges[-1] - 1e-9), bins=edges)[0]


def replay(frame: pd.DataFrame, catalog: Catalog, calibration: Calibration, scenario, language_model=None,
           seed: int = 0, part: str = "test", max_users: int | None = None) -> Replay:
    """Serve each user's held-out interactions, in order and in slates of ``env.slate_size``, to the
    scenario's user backend (parametric, hybrid or LLM) with the calibrated tastes; compare what it does
    with what the real users did. ``frame`` is :func:`split_by_time` output with a ``y`` label column."""
    from recoworld.world.simulation import Simulation
    from recoworld.users.llm_user import make_user_backend

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


# ------------------------------------------------------------------ data with a known answer
# a known parametric ground truth: engagement logit = taste·cos + satiation·(same-topic items just
# before in the session) + fatigue·position + intercept
GROUND_TRUTH = {"taste": 4.0, "satiation": -0.6, "fatigue": -0.08, "intercept": -0.5}


def write_ground_truth(folder: Path, n_users: int = 300, sessions: int = 8, length: int = 15, seed: int = 0) -> None:
    """A MovieLens-layout folder (movies.csv, ratings.csv) whose ratings come from :data:`GROUND_TRUTH`:
    an engaged item is rated 5, another 2; sessions are a day apart, items a minute apart."""
    from recoworld.world.loaders import load_movielens
    from recoworld.world.synthetic import SyntheticCatalogConfig, generate_catalog

    folder.mkdir(parents=True, exist_ok=True)
    synth = generate_catalog(SyntheticCatalogConfig(n_items=600, n_topics=8, n_creators=30), seed=seed)
    pd.DataFrame({"movieId": [f"m{i}" for i in range(len(synth))], "title": synth.title,
                  "genres": [synth.topic_names[t] for t in synth.topic]}).to_csv(folder / "movies.csv", index=False)
    pd.DataFrame(columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    catalog, _ = load_movielens(folder)  # the embeddings the calibration will see
    emb = catalog.embeddings.astype(np.float64)
    centroids = catalog.topic_centroids.astype(np.float64)
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        taste = rng.dirichlet(np.full(catalog.n_topics, 0.3)) @ centroids + rng.normal(0, 0.3 / 8, emb.shape[1])
        taste /= np.linalg.norm(taste)
        for s in range(sessions):
            items = rng.integers(0, len(catalog), length)
            topics = catalog.topic[items]
            for j, item in enumerate(items):
                same = sum(1 for lag in range(1, 6) if j - lag >= 0 and topics[j - lag] == topics[j])
                logit = GROUND_TRUTH["taste"] * emb[item] @ taste + GROUND_TRUTH["satiation"] * same + GROUND_TRUTH["fatigue"] * j + GROUND_TRUTH["intercept"]
                engaged = rng.random() < 1.0 / (1.0 + np.exp(-logit))
                rows.append((f"u{u}", catalog.item_id[item], 5.0 if engaged else 2.0, 1_600_000_000 + u * 997 + s * 86_400 + j * 60))
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
