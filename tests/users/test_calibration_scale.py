"""Calibration at scale: the solver's determinism, stratified user samples, and stage lines when piped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recoworld.users.calibration import write_ground_truth
from recoworld.users.calibration.data import activity_strata, sample_users
from recoworld.users.calibration.mf import ValidRows, fit_logistic_mf

pytest.importorskip("torch")

QUICK_CLI = ["--factors", "8", "--l2", "0.1", "--recency", "0", "--no-dynamics"]


def toy(seed: int = 0, n: int = 3000) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 60, n), rng.integers(0, 40, n)
    x = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] + 0.3 * (users % 3) - 0.2 * (items % 4))))).astype(float)
    return users, items, y, x


def test_the_solver_gives_the_same_model_for_a_seed_and_another_for_another_seed():
    users, items, y, x = toy()
    valid = ValidRows(users[:500], items[:500], y[:500], x[:500])

    def fit(seed: int):
        return fit_logistic_mf(users[500:], items[500:], y[500:], 60, 40, factors=4, l2=0.1, x=x[500:], seed=seed, valid=valid)

    (a, steps_a, loss_a), (b, steps_b, loss_b), (c, _, _) = fit(3), fit(3), fit(4)
    for name in ("user_bias", "item_bias", "user_factors", "item_factors", "weights"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.mu, steps_a, loss_a) == (b.mu, steps_b, loss_b)
    assert not np.array_equal(a.user_factors, c.user_factors)
    assert 10 < steps_a < 300 and loss_a < np.log(2)  # converged before the step cap
    assert a.weights[0] > 0.5  # the side feature's effect is learned (true weight 1)
    import torch

    assert torch.get_num_threads() >= 1 and not torch.are_deterministic_algorithms_enabled()  # the caller's settings are back


def lbfgs(start: dict[str, np.ndarray], users, items, y, x, w, l2: float) -> tuple[float, float]:
    """The solver's objective, written independently (float64, autograd), at ``start`` and after torch's L-BFGS
    minimised it from there."""
    import torch

    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in start.items()}
    u, i, yt, xt, wt = (torch.from_numpy(a) for a in (users, items, y.astype(float), x.astype(float), w))

    def value() -> torch.Tensor:
        pu, qi, bu, bi = p["P"][u], p["Q"][i], p["bu"][u], p["bi"][i]
        s = p["mu"] + bu + bi + (pu * qi).sum(1) + xt @ p["w"]
        ll = (wt * (torch.nn.functional.softplus(s) - yt * s)).sum() / wt.sum()
        return ll + 0.5 * l2 * ((pu**2).sum(1) + (qi**2).sum(1) + bu**2 + bi**2).mean()

    with torch.no_grad():
        first = float(value())
    opt = torch.optim.LBFGS(list(p.values()), max_iter=3000, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = value()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return first, float(value())


def test_the_solver_reaches_the_maximum_a_posteriori_that_lbfgs_finds():
    users, items, y, x = toy(n=2000)
    w = np.random.default_rng(1).uniform(0.5, 1.5, len(y))
    w /= w.mean()
    model, steps, _ = fit_logistic_mf(users, items, y, 60, 40, factors=3, l2=0.3, x=x, sample_weight=w)
    ours = {"mu": np.array([model.mu]), "bu": model.user_bias, "bi": model.item_bias, "P": model.user_factors,
            "Q": model.item_factors, "w": model.weights}
    rng = np.random.default_rng(2)
    fresh = {"mu": np.zeros(1), "bu": np.zeros(60), "bi": np.zeros(40), "P": rng.normal(0, 0.1, (60, 3)),
             "Q": rng.normal(0, 0.1, (40, 3)), "w": np.zeros(3)}
    value, polished = lbfgs(ours, users, items, y, x, w, 0.3)
    start, best = lbfgs(fresh, users, items, y, x, w, 0.3)
    assert steps < 300 and start - value > 0.05
    assert value - polished < 2e-5 and abs(value - best) < 2e-5, (value, polished, best)


def test_the_gradient_is_the_same_through_the_dense_table_by_blocks_of_users_or_gathered_rows_in_any_chunks(monkeypatch):
    import torch

    from recoworld.users.calibration import solver

    users, items, y, x = toy(n=1000)
    rows = solver.Rows.of(users, items, y, x, np.linspace(0.5, 1.5, len(y)))
    model = solver.BiasedMF(60, 40, 4, 3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.user_bias.normal_(generator=torch.Generator().manual_seed(1))
        model.weights.fill_(0.3)

    def gradient() -> tuple[float, dict[str, torch.Tensor]]:
        return solver.gradient(model, rows, 0.1, 0.05), {k: p.grad.clone() for k, p in model.named_parameters()}

    results = [gradient()]  # the dense table: 2,400 cells for 1,000 rows
    monkeypatch.setattr(solver, "CHUNK", 97)
    results.append(gradient())
    monkeypatch.setattr(solver, "BLOCKED_ABOVE", 0)  # the table a block of users at a time (the rows are not sorted by user)
    results.append(gradient())
    order = np.argsort(users, kind="stable")
    unsorted = rows
    rows = solver.Rows.of(users[order], items[order], y[order], x[order], np.linspace(0.5, 1.5, len(y))[order])
    monkeypatch.setattr(solver, "BLOCK_CELLS", 7 * 40)  # blocks of 7 users (the last one shorter)
    results.append(gradient())
    assert rows.blocks(7, 60) is not None and unsorted.blocks(7, 60) is None
    rows = unsorted
    monkeypatch.setattr(solver, "DENSE_CELLS", 0)  # gathered rows, in chunks of 97
    results.append(gradient())
    monkeypatch.setattr(solver, "CHUNK", 1 << 19)
    results.append(gradient())
    (loss, grads), others = results[0], results[1:]
    assert loss > 0.5 and all(float(g.abs().max()) > 1e-4 for g in grads.values())
    for other_loss, other in others:
        assert other_loss == pytest.approx(loss, rel=1e-6)
        for name, grad in grads.items():
            assert torch.allclose(grad, other[name], rtol=1e-4, atol=1e-7), name


def test_a_user_sample_keeps_the_activity_strata():
    rng = np.random.default_rng(0)
    counts = np.concatenate([rng.integers(10, 20, 700), rng.integers(100, 400, 300)])  # many light users, few heavy ones
    frame = pd.DataFrame({"user_id": np.repeat([f"u{k}" for k in range(len(counts))], counts), "item_id": "i", "timestamp": 0})
    strata = activity_strata(frame)
    sample = sample_users(frame, 200, seed=1)
    kept = strata[sample["user_id"].unique()]
    assert len(kept) == 200
    share_all = strata.value_counts(normalize=True).sort_index()
    share_kept = kept.value_counts(normalize=True).sort_index()
    assert np.allclose(share_all, share_kept, atol=1 / 200)  # each stratum in proportion (within one user)
    heavy = frame.groupby("user_id").size() >= 100
    assert abs(heavy[kept.index].mean() - heavy.mean()) < 0.02  # so the heavy users keep their share
    assert sample.groupby("user_id").size().equals(frame[frame["user_id"].isin(kept.index)].groupby("user_id").size())  # whole histories
    assert sample_users(frame, 200, seed=1).equals(sample) and not sample_users(frame, 200, seed=2).equals(sample)
    assert sample_users(frame, 5000, seed=1) is frame


def test_calibrate_prints_a_line_per_stage_when_piped_and_samples_users(tmp_path):
    from typer.testing import CliRunner

    from recoworld.cli import app
    from recoworld.users.calibration import load_calibration

    write_ground_truth(tmp_path / "gt", n_users=60, sessions=4)
    out = tmp_path / "cal.parquet"
    result = CliRunner().invoke(app, ["calibrate", str(tmp_path / "gt"), "--out", str(out), "--users", "30", *QUICK_CLI])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("loading the data set", "sampling 30 users within activity strata", "splitting by time, features and traits",
                 "tuning the liking model", "refitting the liking model on every training row", "tuning the MF baseline",
                 "tuning the selection stage", "held-out replay (parametric users)"):
        assert any(line.startswith(name + ": ") and line.rstrip().endswith(("s", ")")) for line in lines), name
    assert len(load_calibration(out).profiles) == 30
    bad = CliRunner().invoke(app, ["calibrate", str(tmp_path / "gt"), "--users", "3"])
    assert bad.exit_code != 0 and "users" in bad.output and len(bad.output.strip().splitlines()) == 1
