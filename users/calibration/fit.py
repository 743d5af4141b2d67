"""Fit the parametric user model to logged interactions by maximum likelihood, with no leak.

The click model is the kernel's utility with temperature 1 and no extra noise, so its logit is

    w_taste·<taste_u, v_i> + w_quality·(quality_i − .5) + w_popularity·conformity_u·pop_i
    + w_novelty·novelty_seeking_u·novelty_ui − w_satiation·satiation_ui − w_fatigue·fatigue_ui − click_threshold

Fitted as a biased logistic MF (``mu + b_u + b_i + p_u·q_i``) plus the kernel's terms as side features
(:mod:`.data`), with factors and L2 tuned on a validation split carved from the training period (the
same rule as the MF baseline). The MF part maps exactly onto the kernel: user vectors ``[p_u, b_u]/A``
and item vectors ``[q_i, 1]/B`` with one slack coordinate each make unit vectors whose dot product times
``w_taste = A·B`` is ``p_u·q_i + b_u``; item effects (``b_i`` plus the plain popularity term) become
``quality`` in [0, 1]. The calibrated world uses these item vectors as its embedding space
(:class:`.io.ItemTable`), so a run's click probabilities are the fitted ones.

That click model is liking *given selection* (a log holds only the items users chose). With
``config.selection`` the calibrated world adds the selection stage (:mod:`.selection`: which items users
pick at all) to it, logit for logit; the engagement protocol still scores liking alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recoworld.fidelity.baselines import Scorer, baseline_scorers
from recoworld.progress import stage
from recoworld.world.catalog import Catalog
from recoworld.users.calibration import data as D
from recoworld.users.calibration.io import (Calibration, CalibrationConfig, CalibrationResult, Fidelity, FittedWeights,
                                            ItemTable, SelectionWeights)
from recoworld.users.calibration.mf import LogisticMF, tune_logistic_mf
from recoworld.stats import (WeightedAUC, auc, calibration_curve, finite_percentile_interval, group_resample_weights, log_loss,
                             weighted_log_loss)
from recoworld.users.profile import Traits, UserProfile

FATIGUE_PER_ITEM = 0.01  # the kernel's fatigue per item reviewed in calibrated runs (fatigue per minute: 0)


class Prepared:
    """A split data set with everything the fit and the fidelity suite share (no held-out label inside
    any feature)."""

    def __init__(self, interactions: pd.DataFrame, catalog: Catalog, config: CalibrationConfig) -> None:
        known = interactions["item_id"].astype(str).isin(catalog.index_of).to_numpy()
        if not known.any():
            raise ValueError("interactions: none of the items is in the catalog")
        self.config, self.catalog = config, catalog
        self.frame = D.split_by_time(interactions[known], config)
        self.rows = self.frame["item_id"].astype(str).map(catalog.index_of).to_numpy(dtype=np.int64)
        self.y = D.labels(self.frame, config)
        self.train = ~self.frame["test"].to_numpy()
        self.valid = D.validation_rows(self.frame, config.validation)
        self.users, self.user_ids = pd.factorize(self.frame["user_id"], sort=False)
        self.topics = catalog.topic[self.rows]
        self.popularity = D.item_popularity(self.rows, self.train, len(catalog))
        traits = D.user_traits(self.frame, self.topics, self.popularity, self.rows)
        self.traits = traits.reindex(self.user_ids).fillna(0.5)
        rank = self.frame[self.train].groupby("user_id", sort=False).cumcount()
        size = self.frame[self.train].groupby("user_id", sort=False)["item_id"].transform("size")
        self.recency = np.ones(len(self.frame))
        self.recency[self.train] = (rank / np.maximum(size - 1, 1)).to_numpy()
        session = D.session_features(self.frame, self.topics)
        pop = self.popularity[self.rows]
        quality, self.item_quality = D.item_quality(self.frame, self.rows, self.y, self.train, len(catalog))
        self.x = np.column_stack([self.traits["conformity"].to_numpy()[self.users] * pop, pop,
                                  self.traits["novelty_seeking"].to_numpy()[self.users] * session[:, 0], session[:, 1], session[:, 2],
                                  quality])

    def exposure(self) -> np.ndarray:
        """(N,) training interactions per catalog row (+ a little for the rest): what users were shown."""
        return np.bincount(self.rows[self.train], minlength=len(self.catalog)).astype(float) + 1e-3

    def tune(self, with_features: bool) -> tuple[LogisticMF, dict[str, float]]:
        """Logistic MF (with the kernel's terms as side features, or without) tuned on the validation rows."""
        t = self.train
        c = self.config
        return tune_logistic_mf(self.users[t], self.rows[t], self.y[t], self.valid[t], len(self.user_ids), len(self.catalog),
                                self.x[t] if with_features else None, tuple(c.factors), tuple(c.l2), tuple(c.recency),
                                self.recency[t], c.epochs, c.seed, name="liking model" if with_features else "MF baseline",
                                warm_start=c.warm_start, lr=c.step_size)


def kernel_space(model: LogisticMF, popularity: np.ndarray, item_quality: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """(user unit vectors, item unit vectors, item quality, user_model values) reproducing ``model``'s logit;
    the item terms (bias, popularity, average rating) become the catalog's quality in [0, 1]."""
    xu = np.column_stack([model.user_factors, model.user_bias])
    yi = np.column_stack([model.item_factors, np.ones(len(model.item_bias))])
    a, b = float(np.linalg.norm(xu, axis=1).max()) + 1e-9, float(np.linalg.norm(yi, axis=1).max()) + 1e-9
    xu, yi = xu / a, yi / b
    users = np.column_stack([xu, np.sqrt(np.clip(1 - (xu**2).sum(1), 0, 1)), np.zeros(len(xu))])
    items = np.column_stack([yi, np.zeros(len(yi)), np.sqrt(np.clip(1 - (yi**2).sum(1), 0, 1))])
    w = model.weights
    effect = model.item_bias + w[1] * popularity + w[5] * item_quality
    center = (effect.max() + effect.min()) / 2
    scale = max(2 * float(np.abs(effect - center).max()), 1e-6)
    quality = np.clip(0.5 + (effect - center) / scale, 0, 1)
    user_model = {
        "w_taste": a * b, "w_quality": scale, "w_popularity": float(w[0]), "w_novelty": float(w[2]),
        "w_satiation": -float(w[3]), "w_fatigue": -float(w[4]) / FATIGUE_PER_ITEM, "click_threshold": -(model.mu + center),
        "click_temperature": 1.0, "noise_sd": 0.0, "novelty_scale": D.NOVELTY_SCALE,
        "exposure_step_decay": 1.0, "exposure_day_decay": 1.0,  # exposure = items of the topic shown so far
        "satiation_exposure_gain": 1.0, "satiation_gain": 0.0, "satiation_long_gain": 0.0,  # satiation = same-topic items this session
        "satiation_step_decay": 1.0, "satiation_day_decay": 0.0, "hazard_satiation": 0.0,
        "fatigue_per_item": FATIGUE_PER_ITEM, "fatigue_per_minute": 0.0,
        "taste_drift": 0.0, "w_similarity": 0.0,
    }
    return users, items, quality, user_model


def engagement_fidelity(prep: Prepared, predictions: dict[str, np.ndarray], seed: int = 0) -> Fidelity:
    """Held-out AUC and log-loss of every model on the same rows, with user-bootstrap intervals (the resamples of
    :func:`recoworld.stats.bootstrap_groups`, as row weights)."""
    test = ~prep.train
    y, groups = prep.y[test], prep.users[test]
    held = {name: p[test] for name, p in predictions.items()}
    ranked = {name: WeightedAUC(y, p) for name, p in held.items()}
    aucs: dict[str, list[float]] = {name: [] for name in held}
    lls: dict[str, list[float]] = {name: [] for name in held}
    for w in group_resample_weights(groups, seed=seed):  # each resample of users once, for every model
        for name, p in held.items():
            aucs[name].append(ranked[name](w))
            lls[name].append(weighted_log_loss(y, p, w))
    auc_ci = {name: list(finite_percentile_interval(v)) for name, v in aucs.items()}
    ll_ci = {name: list(finite_percentile_interval(v)) for name, v in lls.items()}
    return Fidelity(
        n_train=int(prep.train.sum()), n_test=int(test.sum()), users=len(prep.user_ids),
        positive_rate_train=float(prep.y[prep.train].mean()), positive_rate_test=float(y.mean()),
        auc={k: auc(y, p[test]) for k, p in predictions.items()}, log_loss={k: log_loss(y, p[test]) for k, p in predictions.items()},
        auc_interval=auc_ci, log_loss_interval=ll_ci, calibration=calibration_curve(y, predictions["simulator"][test]),
    )


@dataclass
class FittedModels:
    """The simulator's click model and the baselines, fitted on one :class:`Prepared` split."""

    simulator: LogisticMF
    choice: dict[str, float]
    mf: LogisticMF
    mf_choice: dict[str, float]
    predictions: dict[str, np.ndarray]  # every model's engagement probability for every row of the split
    scorers: dict[str, Scorer]
    selection: LogisticMF | None = None  # which items users pick to rate (None: not fitted)
    selection_choice: dict[str, float] | None = None

    def world_model(self) -> LogisticMF:
        """The calibrated world's click model: liking, combined with selection when it was fitted."""
        if self.selection is None:
            return self.simulator
        from recoworld.users.calibration.selection import combine

        return combine(self.simulator, self.selection)


def fit_models(prep: Prepared) -> FittedModels:
    """Tune and fit the simulator's click model and the MF baseline (same grid, same validation rows), the
    popularity baselines and any registered baseline; every prediction uses training labels only."""
    sim_model, choice = prep.tune(with_features=True)
    mf_model, mf_choice = prep.tune(with_features=False)
    scorers = baseline_scorers(prep, mf_model)
    predictions = {"simulator": sim_model.predict(prep.users, prep.rows, prep.x),
                   **{name: score(prep.users, prep.rows) for name, score in scorers.items()}}
    selection, sel_choice = None, None
    if prep.config.selection:
        from recoworld.users.calibration.selection import fit_selection

        selection, sel_choice = fit_selection(prep, (int(choice["factors"]),))
    return FittedModels(sim_model, choice, mf_model, mf_choice, predictions, scorers, selection, sel_choice)


def world_calibration(prep: Prepared, models: FittedModels, dataset: str = "interactions") -> Calibration:
    """The calibrated world of ``models`` fitted on ``prep``: user tastes and traits, the item table and the
    kernel's ``user_model`` (no session dynamics, no replay), with the held-out engagement fidelity."""
    config, catalog = prep.config, prep.catalog
    sim_model, choice = models.simulator, models.choice
    users, items, quality, user_model = kernel_space(models.world_model(), prep.popularity, prep.item_quality)
    fidelity = engagement_fidelity(prep, models.predictions, config.seed)
    w = sim_model.weights
    weights = FittedWeights(taste_scale=user_model["w_taste"], quality_scale=user_model["w_quality"],
                            conformity_popularity=w[0], popularity=w[1], novelty=w[2], satiation=w[3], fatigue=w[4], item_quality=w[5],
                            intercept=sim_model.mu, factors=int(choice["factors"]), l2=choice["l2"], recency=choice["recency"])
    interests = D.interests(prep.frame[prep.train], prep.y[prep.train], catalog, prep.rows[prep.train])
    history = D.topic_history(prep.frame[prep.train], catalog, prep.rows[prep.train])
    traits = prep.traits.clip(0, 1)
    profiles = [
        UserProfile(user_id=str(u), segment="calibrated", interests=interests.get(str(u)) or {catalog.topic_names[0]: 1.0},
                    topic_history=history.get(str(u), {}), taste=users[k].round(6).tolist(),
                    traits=Traits(**traits.loc[u].round(4).to_dict()))
        for k, u in enumerate(prep.user_ids)
    ]
    table = ItemTable(catalog.item_id.copy(), items.astype(np.float32), quality, prep.popularity)
    selection = None
    if models.selection is not None and models.selection_choice is not None:
        sw, sc = models.selection.weights, models.selection_choice
        selection = SelectionWeights(conformity_popularity=sw[0], popularity=sw[1], intercept=models.selection.mu, factors=int(sc["factors"]),
                                     l2=sc["l2"], negatives=config.selection_negatives, valid_log_loss=sc["valid_log_loss"])
    result = CalibrationResult(dataset=dataset, weights=weights, selection=selection, user_model=user_model, fidelity=fidelity)
    return Calibration(result, profiles, table)


def calibrate(interactions: pd.DataFrame, catalog: Catalog, config: CalibrationConfig | None = None,
              dataset: str = "interactions", prepared: Prepared | None = None, models: FittedModels | None = None) -> Calibration:
    """Fit tastes, item vectors, traits and population parameters on each user's earlier interactions, the
    session dynamics by simulation; measure held-out engagement fidelity against the baselines."""
    config = config or CalibrationConfig()
    if prepared is None:
        with stage("splitting by time, features and traits"):
            prepared = Prepared(interactions, catalog, config)
    prep = prepared
    models = models or fit_models(prep)
    with stage("mapping the fit onto the kernel; engagement fidelity"):
        calibration = world_calibration(prep, models, dataset)
    result, table, profiles, user_model = calibration.result, calibration.items, calibration.profiles, calibration.result.user_model
    if config.fit_dynamics:
        from recoworld.users.calibration.dynamics import ENV_PARAMS, fit_dynamics

        dyn = fit_dynamics(prep.frame[prep.train], table.apply(catalog), profiles, user_model, prep.exposure(), config)
        result.dynamics = dyn
        result.user_model.update({k: v for k, v in dyn.params.items() if k not in ENV_PARAMS})
        result.env.update({k: v for k, v in dyn.params.items() if k in ENV_PARAMS})
    from recoworld.users.calibration.replay import replay, replay_scenario

    frame = prep.frame.assign(y=prep.y)
    with stage("held-out replay (parametric users)"):
        result.replays.append(replay(frame, catalog, calibration, replay_scenario(result.user_model, "parametric", config), seed=config.seed))
    return calibration


def load_for_calibration(dataset: str | Path, items: str | Path | None = None, seed: int = 0, embedding_dim: int = 64,
                         config: CalibrationConfig | None = None) -> tuple[dict, Catalog, pd.DataFrame]:
    """(catalog config with absolute paths, catalog, interactions) of any data set
    :func:`recoworld.world.datasets.load_dataset` reads; with ``config.users``, those of a sample of users drawn
    within activity strata."""
    with stage("loading the data set"):
        catalog_cfg, catalog, interactions = _load(dataset, items, seed, embedding_dim)
    if config is not None and config.users is not None:
        with stage(f"sampling {config.users:,} users within activity strata"):
            interactions = D.sample_users(interactions, config.users, config.seed)
    return catalog_cfg, catalog, interactions


def _load(dataset: str | Path, items: str | Path | None, seed: int, embedding_dim: int) -> tuple[dict, Catalog, pd.DataFrame]:
    from recoworld.world.datasets import detect_layout, load_dataset
    from recoworld.scenario import CatalogConfig
    from recoworld.world.simulation import build_catalog

    dataset = Path(dataset).expanduser()
    layout = detect_layout(dataset)
    source, path = {"movielens": "movielens", "interactions": "items"}.get(layout, "dataset"), dataset
    if layout == "interactions":
        if items is None:
            raise ValueError(f"{dataset.name}: an interactions file needs --items (the items file it refers to)")
        path = Path(items).expanduser()
    catalog_cfg = CatalogConfig(source=source, path=str(path.absolute()), embedding={"dim": embedding_dim})
    catalog = build_catalog(catalog_cfg, seed)
    return catalog_cfg.model_dump(mode="json"), catalog, load_dataset(dataset, items).interactions


def calibrate_dataset(dataset: str | Path, items: str | Path | None = None, config: CalibrationConfig | None = None,
                      seed: int = 0, embedding_dim: int = 64) -> Calibration:
    """Calibrate on any data set :func:`recoworld.world.datasets.load_dataset` reads (a MovieLens folder, ML-100K,
    RecBole atomic files, KuaiRec/KuaiRand, Amazon JSONL, or an interactions file with ``items``); the
    catalog config stored in the file holds absolute paths, so scenarios work from any directory."""
    config = config or CalibrationConfig()
    catalog_cfg, catalog, interactions = load_for_calibration(dataset, items, seed, embedding_dim, config)
    calibration = calibrate(interactions, catalog, config, dataset=Path(dataset).name)
    calibration.result.catalog = catalog_cfg
    calibration.result.seed = seed
    return calibration
