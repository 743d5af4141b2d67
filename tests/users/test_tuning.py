"""Tuning the logistic MF: warm starts across the grid, and the cold path the ml100k task pins."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from recoworld.users.calibration import mf
from recoworld.users.calibration.mf import fit_logistic_mf, tune_logistic_mf

pytest.importorskip("torch")

GRID = dict(grid_factors=(4,), grid_l2=(0.03, 0.1, 0.3), grid_recency=(0.0,))


def toy(seed: int = 0, n: int = 6000, users: int = 80, items: int = 50) -> tuple[np.ndarray, ...]:
    """Rows of a rank-2 taste plus a side feature, and each user's latest 20% as validation rows."""
    rng = np.random.default_rng(seed)
    u, i = np.sort(rng.integers(0, users, n)), rng.integers(0, items, n)
    p, q = rng.normal(0, 1, (users, 2)), rng.normal(0, 1, (items, 2))
    x = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-((p[u] * q[i]).sum(1) + x[:, 0])))).astype(float)
    valid = np.zeros(n, dtype=bool)
    for user in range(users):
        rows = np.flatnonzero(u == user)
        valid[rows[int(0.8 * len(rows)):]] = True
    return u, i, y, x, valid


def tune(warm_start: bool, seed: int = 0) -> tuple[mf.LogisticMF, dict[str, float]]:
    u, i, y, x, valid = toy()
    return tune_logistic_mf(u, i, y, valid, 80, 50, x, **GRID, seed=seed, warm_start=warm_start)


def same(a: mf.LogisticMF, b: mf.LogisticMF) -> bool:
    return a.mu == b.mu and all(np.array_equal(getattr(a, k), getattr(b, k))
                                for k in ("user_bias", "item_bias", "user_factors", "item_factors", "weights"))


def test_warm_started_tuning_is_deterministic_for_a_seed_and_picks_what_cold_tuning_picks(monkeypatch):
    fits: list[dict] = []
    real = mf._fit

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        fits.append({"l2": args[6], "warm": kwargs.get("start") is not None, "steps": out[1], "loss": out[2]})
        return out

    monkeypatch.setattr(mf, "_fit", spy)
    (a, choice_a), (b, choice_b), (c, _) = tune(True), tune(True), tune(True, seed=1)
    assert same(a, b) and choice_a == choice_b and not same(a, c)
    warm = fits[:4]
    assert [f["l2"] for f in warm] == [0.3, 0.1, 0.03, 0.03]  # L2 from the largest down, then the chosen one on every row
    assert [f["warm"] for f in warm] == [False, True, True, True]
    fits.clear()
    cold_model, cold_choice = tune(False)
    assert [f["warm"] for f in fits] == [False] * 4
    assert (choice_a["factors"], choice_a["l2"]) == (cold_choice["factors"], cold_choice["l2"]) == (4.0, 0.03)
    assert choice_a["valid_log_loss"] == pytest.approx(cold_choice["valid_log_loss"], abs=2e-3)
    assert sum(f["steps"] for f in warm) < sum(f["steps"] for f in fits)  # the point of warm starts
    u, i, y, x, _ = toy()
    assert np.corrcoef(a.logit(u, i, x), cold_model.logit(u, i, x))[0, 1] > 0.999  # the same model, reached sooner


def test_cold_tuning_is_every_fit_from_the_seed_and_the_final_fit_from_scratch():
    """warm_start=False is the rule before warm starts: its model is the plain fit of the chosen setting on every row."""
    model, choice = tune(False)
    u, i, y, x, _ = toy()
    again, _, _ = fit_logistic_mf(u, i, y, 80, 50, factors=int(choice["factors"]), l2=choice["l2"], x=x,
                                  epochs=int(choice["epochs"]), sample_weight=np.ones(len(y)))
    assert same(model, again)


def test_the_ml100k_task_pins_cold_tuning_and_the_old_step_size_and_keeps_its_cache_key(tmp_path, monkeypatch):
    from recoworld.tasks import worlds
    from recoworld.users.calibration import CalibrationConfig

    pinned_config = CalibrationConfig(**worlds.ML100K_CALIBRATION)
    assert CalibrationConfig().warm_start and not pinned_config.warm_start
    assert CalibrationConfig().step_size != mf.LR == pinned_config.step_size  # Adam's step size before the setting existed
    for name in ("ml-100k.inter", "ml-100k.item"):
        (tmp_path / name).write_text(name)
    pinned = worlds.ml100k_calibration_path(tmp_path)
    before = pinned_config.model_dump(mode="json")
    for name in ("warm_start", "step_size"):  # the settings as they were keyed before these fields existed
        before.pop(name)
    digest = hashlib.sha256()
    for name in ("ml-100k.inter", "ml-100k.item"):
        digest.update((tmp_path / name).read_bytes())
    old = CalibrationConfig.model_validate(before).model_dump_json(exclude={"warm_start", "step_size"})
    key = hashlib.sha256((digest.hexdigest() + old + str(worlds.ML100K_CATALOG_SEED)).encode()).hexdigest()[:16]
    assert pinned.name == f"ml100k-calibration-{key}.parquet"
    monkeypatch.setattr(worlds, "ML100K_CALIBRATION", {})  # warm starts: another calibration, another file
    assert worlds.ml100k_calibration_path(tmp_path) != pinned


def test_calibrate_passes_the_setting_to_liking_and_mf_and_selection_tunes_cold(tmp_path, monkeypatch):
    from recoworld.tasks.worlds import ML100K_CALIBRATION
    from recoworld.users.calibration import CalibrationConfig, write_ground_truth
    from recoworld.users.calibration.fit import fit_models, load_for_calibration, Prepared

    write_ground_truth(tmp_path, n_users=40, sessions=3)
    seen: list[tuple[bool, float]] = []
    real = mf.tune_logistic_mf

    def spy(*args, **kwargs):
        seen.append((kwargs["warm_start"], kwargs["lr"]))
        return real(*args, **kwargs)

    for module in ("recoworld.users.calibration.fit", "recoworld.users.calibration.selection"):
        monkeypatch.setattr(f"{module}.tune_logistic_mf", spy)
    quick = dict(factors=[4], l2=[0.1], recency=[0.0], fit_dynamics=False, epochs=20)
    for settings, expected in ((ML100K_CALIBRATION, (False, 0.05)), ({}, (True, 0.1))):
        config = CalibrationConfig(**{**settings, **quick})
        _, catalog, interactions = load_for_calibration(tmp_path, config=config)
        seen.clear()
        fit_models(Prepared(interactions, catalog, config))
        # liking and the MF baseline follow the settings; the selection stage always tunes cold at its own step size
        assert seen == [expected, expected, (False, 0.05)]


def test_scoring_in_blocks_of_rows_gives_the_same_logits(monkeypatch):
    rng = np.random.default_rng(0)
    model = mf.LogisticMF(0.3, rng.normal(size=80), rng.normal(size=50), rng.normal(size=(80, 4)), rng.normal(size=(50, 4)),
                          rng.normal(size=2))
    u, i, x = rng.integers(-1, 80, 1000), rng.integers(-1, 50, 1000), rng.normal(size=(1000, 2))
    whole = model.logit(u, i, x), model.logit(u, i)
    monkeypatch.setattr(mf, "ROWS", 97)
    assert np.array_equal(model.logit(u, i, x), whole[0]) and np.array_equal(model.logit(u, i), whole[1])
