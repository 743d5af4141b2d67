"""Bootstrap comparisons of arms: clear differences found and stated, none invented, seeded, paired and unpaired."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recoworld.evaluation.compare import COLUMNS, bootstrap_compare, compare_runs, run_labels
from recoworld.evaluation.data import RunLogs
from recoworld.logs.folder import RunManifest
from recoworld.scenario import load_scenario


def users(values: dict[str, np.ndarray], metric: str = "days_active", ids: dict[str, list[str]] | None = None) -> pd.DataFrame:
    parts = []
    for arm, v in values.items():
        user = ids[arm] if ids else [f"u{k}" for k in range(len(v))]
        parts.append(pd.DataFrame({"arm": arm, "user": user, metric: v}))
    return pd.concat(parts, ignore_index=True)


def test_paired_finds_a_fixed_margin_and_states_the_winner():
    base = np.random.default_rng(1).poisson(5, 200).astype(float)
    frame = users({"greedy": base, "mmr": base + 1.5, "random": base - 0.5})
    out = bootstrap_compare(frame, "days_active", "greedy", paired=True)
    assert list(out.columns) == COLUMNS
    mmr, rnd = out.set_index("arm").loc["mmr"], out.set_index("arm").loc["random"]
    assert mmr["diff"] == pytest.approx(1.5) and mmr["value"] == pytest.approx(base.mean() + 1.5)
    assert mmr["baseline_value"] == pytest.approx(base.mean())
    # every user gains exactly 1.5 days, so every joint resample does: the interval is the point
    assert (mmr["ci_low"], mmr["ci_high"]) == pytest.approx((1.5, 1.5))
    assert mmr["significant"] and mmr["winner"] == "mmr"
    assert mmr["statement"] == "mmr keeps users 1.5 days active longer than greedy (95% CI 1.5 to 1.5)"
    assert rnd["significant"] and rnd["winner"] == "greedy"
    assert rnd["statement"].startswith("random keeps users 0.5 fewer days active than greedy (95% CI −0.5")


def test_unpaired_sees_the_same_margin_through_the_noise():
    base = np.random.default_rng(2).normal(5, 1, 400)
    out = bootstrap_compare(users({"a": base, "b": base + 1.0}), "days_active", "a", paired=False).iloc[0]
    assert out["significant"] and out["winner"] == "b"
    assert out["ci_low"] < 1.0 < out["ci_high"] and out["ci_high"] - out["ci_low"] > 0.1  # wider than the paired point


def test_no_winner_when_arms_are_identical_up_to_noise():
    rng = np.random.default_rng(3)
    base = rng.poisson(5, 400).astype(float)
    noise = rng.normal(0, 0.3, 200)
    other = base + np.concatenate([noise, -noise])  # mean difference exactly 0
    for paired in (True, False):
        row = bootstrap_compare(users({"greedy": base, "mmr": other}), "days_active", "greedy", paired=paired).iloc[0]
        assert row["diff"] == pytest.approx(0.0, abs=1e-12)
        assert row["ci_low"] < 0 < row["ci_high"]
        assert not row["significant"] and row["winner"] is None
        assert row["statement"].startswith("no clear difference between mmr and greedy on days_active (95% CI −")


def test_intervals_are_reproducible_with_the_seed():
    rng = np.random.default_rng(4)
    frame = users({"a": rng.normal(0, 1, 300), "b": rng.normal(0.2, 1, 300)}, metric="ctr")
    one = bootstrap_compare(frame, "ctr", "a", seed=7, paired=True)
    two = bootstrap_compare(frame, "ctr", "a", seed=7, paired=True)
    other = bootstrap_compare(frame, "ctr", "a", seed=8, paired=True)
    pd.testing.assert_frame_equal(one, two)
    assert (one["ci_low"].iloc[0], one["ci_high"].iloc[0]) != (other["ci_low"].iloc[0], other["ci_high"].iloc[0])
    # a row does not depend on the other arms present
    more = users({"a": frame[frame.arm == "a"]["ctr"].to_numpy(), "c": rng.normal(0, 1, 300),
                  "b": frame[frame.arm == "b"]["ctr"].to_numpy()}, metric="ctr")
    again = bootstrap_compare(more, "ctr", "a", seed=7, paired=True).set_index("arm").loc["b"]
    assert again["ci_low"] == one["ci_low"].iloc[0] and again["ci_high"] == one["ci_high"].iloc[0]


def test_unpaired_split_arms_of_different_sizes():
    rng = np.random.default_rng(5)
    a, b = rng.normal(5, 1, 300), rng.normal(6, 1, 120)
    ids = {"a": [f"u{k}" for k in range(300)], "b": [f"u{k}" for k in range(300, 420)]}  # split: disjoint users
    frame = users({"a": a, "b": b}, ids=ids)
    auto = bootstrap_compare(frame, "days_active", "a")  # no shared user: resampled on their own
    explicit = bootstrap_compare(frame, "days_active", "a", paired=False)
    pd.testing.assert_frame_equal(auto, explicit)
    row = auto.iloc[0]
    assert row["value"] == pytest.approx(b.mean()) and row["baseline_value"] == pytest.approx(a.mean())
    assert row["significant"] and row["winner"] == "b" and row["ci_low"] > 0.5
    assert row["ci_low"] < row["diff"] < row["ci_high"]


def test_nan_users_are_left_out_and_lower_churn_wins():
    frame = users({"a": np.array([1.0, 1.0, 1.0, 1.0, np.nan]), "b": np.array([0.0, 0.0, 0.0, 0.0, 1.0])}, metric="churned")
    row = bootstrap_compare(frame, "churned", "a", paired=True).iloc[0]
    assert row["value"] == 0.0 and row["baseline_value"] == 1.0  # the pair with a NaN is dropped
    assert row["winner"] == "b" and "has a churn rate 1 lower than a" in row["statement"]
    with pytest.raises(ValueError, match="unknown baseline arm 'z'"):
        bootstrap_compare(frame, "churned", "z")
    with pytest.raises(ValueError, match="lack column 'ndcg'"):
        bootstrap_compare(frame, "ndcg", "a")


def tiny_run(name: str, extra_days: int) -> RunLogs:
    """Two arms, three users; arm B's users each come back ``extra_days`` more days than arm A's."""
    rows = []
    for arm, days in (("A", 1), ("B", 1 + extra_days)):
        for user in ("u1", "u2", "u3"):
            for day in range(days):
                rows.append({"run": name, "arm": arm, "day": day, "session": day + 1, "user": user, "segment": "casual",
                             "slates": 1, "reviewed": 1, "clicks": 1, "churned": day == days - 1, "return_gap_days": 1})
    sessions = pd.DataFrame(rows)
    imp = sessions[["arm", "day", "session", "user"]].assign(step=1, position=0, item="i1", clicked=True, action="click",
                                                           compliance=np.nan)
    manifest = RunManifest(run=name, scenario_sha256="x", seed=0, engine="local", shards=1, arms=["A", "B"],
                           days_total=5, days_completed=5, status="complete")
    scenario = load_scenario({"name": name, "env": {"horizon_days": 5, "slate_size": 3}})
    empty = pd.DataFrame()
    return RunLogs(Path(f"/tmp/{name}"), manifest, scenario, imp, sessions, empty, empty, empty, empty, empty)


def test_compare_runs_labels_and_unpaired():
    runs = [tiny_run("one", 0), tiny_run("two", 2), tiny_run("one", 1)]
    assert run_labels(runs) == ["one", "two", "one#2"]
    out = compare_runs(runs, "days_active", "one/A", n_boot=200).set_index("arm")
    assert out.index.tolist() == ["one/B", "two/A", "two/B", "one#2/A", "one#2/B"]
    assert out.loc["two/B", "diff"] == 2 and out.loc["two/B", "winner"] == "two/B"
    assert out.loc["one#2/B", "statement"].startswith("one#2/B keeps users 1 day active longer than one/A")
    assert not out.loc["two/A", "significant"]
