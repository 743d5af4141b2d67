"""Evaluation metrics on hand-built logs with answers worked out by hand, and orderings on a real small run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recoworld.evaluation import metrics as M
from recoworld.evaluation.data import RunLogs
from recoworld.stats import km_curves
from recoworld.logs.folder import RunManifest
from recoworld.scenario import load_scenario

FLAGS = {  # action -> (clicked, liked, shared, commented, skipped, left)
    "unseen": (0, 0, 0, 0, 0, 0), "skip": (0, 0, 0, 0, 1, 0), "leave": (0, 0, 0, 0, 0, 1),
    "click": (1, 0, 0, 0, 0, 0), "like": (1, 1, 0, 0, 0, 0), "comment": (1, 0, 0, 1, 0, 0), "share": (1, 0, 1, 0, 0, 0),
}
# (arm, user, day, session, step, items, actions, compliance)
SLATES = [
    ("A", "u1", 0, 1, 1, ["i1", "i2", "i3"], ["click", "skip", "share"], math.nan),
    ("A", "u1", 0, 1, 2, ["i4", "i1", "i2"], ["skip", "leave", "unseen"], math.nan),
    ("A", "u1", 2, 2, 1, ["i1", "i2", "i3"], ["skip", "skip", "share"], 0.5),
    ("A", "u2", 1, 1, 1, ["i2", "i3", "i1"], ["like", "comment", "skip"], 1.0),
    ("A", "u2", 4, 2, 1, ["i3", "i2", "i1"], ["skip", "unseen", "unseen"], math.nan),
    ("B", "u1", 0, 1, 1, ["i1", "i2", "i3"], ["click", "skip", "unseen"], math.nan),
    ("B", "u2", 0, 1, 1, ["i2", "i1", "i3"], ["skip", "click", "unseen"], math.nan),
    ("B", "u2", 1, 2, 1, ["i3", "i1", "i2"], ["skip", "unseen", "unseen"], math.nan),
]
SESSION_COLUMNS = ["arm", "user", "day", "session", "slates", "reviewed", "clicks", "likes", "shares", "comments",
                   "watch_seconds", "reward", "churned", "return_gap_days", "instructions", "compliance"]
SESSIONS = [
    ("A", "u1", 0, 1, 2, 5, 2, 0, 1, 0, 60.0, 1.0, False, 2, 0, math.nan),
    ("A", "u1", 2, 2, 1, 3, 1, 0, 1, 0, 120.0, 2.0, True, 9, 1, 0.5),
    ("A", "u2", 1, 1, 1, 3, 2, 1, 0, 1, 180.0, 3.0, False, 3, 1, 1.0),
    ("A", "u2", 4, 2, 1, 1, 0, 0, 0, 0, 0.0, 0.0, False, 1, 0, math.nan),
    ("B", "u1", 0, 1, 1, 2, 1, 0, 0, 0, 30.0, 1.0, True, 8, 0, math.nan),
    ("B", "u2", 0, 1, 1, 2, 1, 0, 0, 0, 30.0, 1.0, False, 1, 0, math.nan),
    ("B", "u2", 1, 2, 1, 1, 0, 0, 0, 0, 0.0, 0.0, False, 4, 0, math.nan),
]
CATALOG = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "creator": ["c1", "c1", "c2", "c3"],
                        "topic": ["t1", "t1", "t2", "t3"], "popularity": [0.5, 0.5, 0.5, 0.5]})
PUBLISHED = pd.DataFrame({"arm": ["A", "A", "B"], "item_id": ["i5", "i6", "i7"], "creator": ["k1", "k2", "k1"],
                          "topic": ["t1", "t2", "t1"], "created_day": [1, 3, 1]})
CREATORS = pd.DataFrame(
    [("A", 0, "k1", True, False, 1, 1, 0), ("A", 0, "k2", True, False, 0, 0, 0),
     ("A", 1, "k1", True, False, 1, 0, 1), ("A", 1, "k2", False, True, 0, 0, 0),
     ("B", 0, "k1", True, False, 1, 1, 0), ("B", 1, "k1", True, False, 0, 0, 0)],
    columns=["arm", "day", "creator", "active", "quit", "published", "explored", "exploited"],
)
LLM = pd.DataFrame({"arm": ["A", "A"], "day": [0, 1], "source": ["users", "creators"], "calls": [3, 2],
                    "cache_hits": [0, 0], "prompt_tokens": [100, 50], "completion_tokens": [20, 10], "cost_usd": [0.01, 0.02]})
E = np.eye(3)
EMBEDDINGS = {"i1": E[0], "i2": E[1], "i3": E[2], "i4": E[0], "i5": E[1], "i6": E[2], "i7": E[0]}  # i4 ∥ i1


def impressions(slates: list[tuple]) -> pd.DataFrame:
    rows = []
    for arm, user, day, session, step, items, actions, comp in slates:
        for pos, (item, action) in enumerate(zip(items, actions)):
            c, lk, sh, cm, sk, lf = (bool(f) for f in FLAGS[action])
            rows.append({"run": "t", "arm": arm, "day": day, "session": session, "step": step, "position": pos,
                         "user": user, "item": item, "creator": "c", "topic": "t", "action": action, "clicked": c,
                         "liked": lk, "shared": sh, "commented": cm, "skipped": sk, "left": lf,
                         "watch_seconds": 10.0 * c, "reward": float(c), "propensity": 1 / 3, "candidate_index": pos,
                         "instruction": "new please" if not math.isnan(comp) else None, "compliance": comp,
                         "user_fallback": False, "recommender_fallback": False})
    return pd.DataFrame(rows)


def hand_logs(assignment: str = "copies", slates: list[tuple] = SLATES, sessions: list[tuple] = SESSIONS,
              creators: pd.DataFrame = CREATORS, llm: pd.DataFrame = LLM) -> RunLogs:
    scenario = load_scenario({"name": "t", "env": {"horizon_days": 5, "slate_size": 3}, "run": {"assignment": assignment}})
    arms = ["A", "B"]
    manifest = RunManifest(run="t", scenario_sha256="x", seed=0, engine="local", shards=1, arms=arms,
                           days_total=5, days_completed=5, status="complete")
    s = pd.DataFrame(sessions, columns=SESSION_COLUMNS)
    s.insert(0, "run", "t")
    s["segment"] = "casual"
    items = PUBLISHED if assignment == "copies" else PUBLISHED.assign(arm="shared")
    logs = RunLogs(Path("/tmp/hand"), manifest, scenario, impressions(slates), s, creators, items,
                   pd.DataFrame({"user": ["u1", "u2"]}), CATALOG, llm)
    logs.embeddings = lambda arm: EMBEDDINGS  # the scenario's encoder is not needed for these items
    return logs


@pytest.fixture
def logs() -> RunLogs:
    return hand_logs()


def ndcg_by_hand(gains: list[int]) -> float:
    dcg = sum(g / math.log2(p + 2) for p, g in enumerate(gains))
    idcg = sum(g / math.log2(p + 2) for p, g in enumerate(sorted(gains, reverse=True)))
    return dcg / idcg if idcg else 0.0


# per-slate NDCG, in SLATES order: gains click 1, like/comment 2, share 3
NDCG = {
    ("A", "u1", 0, 1): (1 + 3 / 2) / (3 + 1 / math.log2(3)),  # [click, skip, share]
    ("A", "u1", 0, 2): 0.0,  # [skip, leave, unseen]
    ("A", "u1", 2, 1): 0.5,  # a share at position 2: (3/log2 4) / 3
    ("A", "u2", 1, 1): 1.0,  # [like, comment, skip] is already ideal
    ("A", "u2", 4, 1): 0.0,
    ("B", "u1", 0, 1): 1.0,
    ("B", "u2", 0, 1): 1 / math.log2(3),  # a click at position 1
    ("B", "u2", 1, 1): 0.0,
}


# ------------------------------------------------------------------ one implementation of each idea
def test_gini_known_values():
    assert M.gini([0, 0, 1, 1]) == pytest.approx(0.5)
    assert M.gini([3, 3, 3]) == 0.0
    assert M.gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert M.gini([0, 0, 0]) == 0.0
    assert math.isnan(M.gini([]))


def test_slate_ndcg_matches_definition():
    assert NDCG[("A", "u1", 0, 1)] == pytest.approx(ndcg_by_hand([1, 0, 3]))
    assert NDCG[("B", "u2", 0, 1)] == pytest.approx(ndcg_by_hand([0, 1, 0]))
    gains = np.array([0, 0, 3, 1, 0, 2, 0, 0, 0], dtype=float)
    slate = np.repeat([0, 1, 2], 3)
    position = np.tile([0.0, 1.0, 2.0], 3)
    got = M.slate_ndcg(slate, position, gains)
    assert got == pytest.approx([0.5, ndcg_by_hand([1, 0, 2]), 0.0])


def test_kaplan_meier_by_hand():
    # durations 1, 2, 2+, 3, 4+: S(1) = 4/5, S(2) = 4/5·3/4, S(3) = 0.6·1/2, S(4) = 0.3
    km = km_curves(np.array([1, 2, 2, 3, 4]), np.array([1, 1, 0, 1, 0]), np.zeros(5, int), 1, horizon=5)
    assert km["survival"][0] == pytest.approx([1.0, 0.8, 0.6, 0.3, 0.3, np.nan], nan_ok=True)
    assert km["at_risk"][0].tolist() == [5, 5, 4, 2, 1, 0]
    # Greenwood log-log at day 1: V = 1/(5·4), se = √V / |ln S|, low = S^exp(1.96·se)
    se = math.sqrt(1 / 20) / abs(math.log(0.8))
    z = 1.959963984540054
    assert km["ci_low"][0][1] == pytest.approx(0.8 ** math.exp(z * se))
    assert km["ci_high"][0][1] == pytest.approx(0.8 ** math.exp(-z * se))
    assert km["ci_low"][0][0] == km["ci_high"][0][0] == 1.0


# ------------------------------------------------------------------ per user
def test_user_table_by_hand(logs):
    u = M.user_table(logs).set_index(["arm", "user"])
    assert list(M.user_table(logs).columns) == M.USER_COLUMNS
    assert len(u) == 4
    a1, a2, b1, b2 = u.loc[("A", "u1")], u.loc[("A", "u2")], u.loc[("B", "u1")], u.loc[("B", "u2")]
    assert (a1["sessions"], a1["days_active"], a1["slates"], a1["reviewed"], a1["clicks"]) == (2, 2, 3, 8, 3)
    assert a1["ctr"] == pytest.approx(3 / 8)
    assert a1["watch_minutes"] == pytest.approx(3.0)
    assert (a1["shares"], a2["likes"], a2["comments"]) == (2, 1, 1)
    assert a1["reward"] == pytest.approx(3.0)
    assert bool(a1["churned"]) and not bool(a2["churned"])
    assert a1["return_rate"] == 0.5 and a2["return_rate"] == 1.0 and b1["return_rate"] == 0.0
    assert a1["instructions"] == 1
    assert a1["compliance"] == 0.5 and a2["compliance"] == 1.0 and math.isnan(b1["compliance"])
    assert a1["ndcg"] == pytest.approx((NDCG[("A", "u1", 0, 1)] + 0 + 0.5) / 3)
    assert a2["ndcg"] == pytest.approx(0.5)
    assert b2["ndcg"] == pytest.approx(1 / math.log2(3) / 2)
    # churned on day 2 after a first session on day 0; u2 first on day 1, censored at the horizon 5
    assert (a1["survival_days"], a1["event"]) == (2, 1)
    assert (a2["survival_days"], a2["event"]) == (4, 0)
    assert (b1["survival_days"], b1["event"]) == (0, 1)
    assert (b2["survival_days"], b2["event"]) == (5, 0)


def test_kaplan_meier_from_logs(logs):
    km = M.kaplan_meier(logs)
    assert list(km.columns) == ["arm", "day", "survival", "ci_low", "ci_high", "at_risk"]
    a = km[km["arm"] == "A"].set_index("day")
    # A: one churn at day 2 of 2 at risk, one user censored at 4
    assert a["survival"].tolist()[:5] == pytest.approx([1, 1, 0.5, 0.5, 0.5])
    assert math.isnan(a.loc[5, "survival"])
    assert a["at_risk"].tolist() == [2, 2, 2, 1, 1, 0]
    b = km[km["arm"] == "B"].set_index("day")
    assert b["survival"].tolist() == pytest.approx([0.5] * 6)  # churn on day 0, the other user censored at 5
    ok = km.dropna()
    assert ((ok["ci_low"] <= ok["survival"]) & (ok["survival"] <= ok["ci_high"])).all()
    assert ok["ci_low"].between(0, 1).all() and ok["ci_high"].between(0, 1).all()


# ------------------------------------------------------------------ per arm
def test_arm_summary_by_hand(logs):
    s = M.arm_summary(logs)
    assert s.index.name == "arm" and s.index.tolist() == ["A", "B"]
    a, b = s.loc["A"], s.loc["B"]
    assert a["users"] == 2
    assert a["ctr"] == pytest.approx(5 / 12) and b["ctr"] == pytest.approx(2 / 5)
    assert a["watch_minutes_per_user"] == pytest.approx(360 / 60 / 2)
    assert (a["likes_per_user"], a["shares_per_user"], a["comments_per_user"]) == pytest.approx((0.5, 1.0, 0.5))
    assert a["slates_per_session"] == pytest.approx(5 / 4)
    assert a["items_per_session"] == pytest.approx(12 / 4)
    assert a["sessions_per_user"] == 2 and b["sessions_per_user"] == 1.5
    assert a["return_rate"] == pytest.approx(3 / 4) and b["return_rate"] == pytest.approx(2 / 3)
    assert a["churn_rate"] == 0.5
    assert a["retention_d1"] == 1.0 and b["retention_d1"] == 0.5
    assert math.isnan(a["retention_d7"]) and math.isnan(a["retention_d14"])  # beyond the 5 days logged
    assert a["instruction_rate"] == 0.5 and b["instruction_rate"] == 0.0
    assert a["compliance"] == pytest.approx(0.75) and math.isnan(b["compliance"])
    # sessions with an instruction: u1's day 2 (churned), u2's day 1 (came back)
    assert a["retention_after_instruction"] == 0.5 and math.isnan(b["retention_after_instruction"])
    # A's slates: [i1,i2,i3] orthogonal -> 1 (three times), [i4,i1,i2] with i4 = i1 -> 1 - 1/3
    assert a["ild"] == pytest.approx((4 + 2 / 3) / 5)
    assert b["ild"] == pytest.approx(1.0)
    # world A: i1..i4 + published i5, i6 -> 4 of 6 shown; B: i1..i3 of i1..i4 + i7
    assert a["coverage"] == pytest.approx(4 / 6) and b["coverage"] == pytest.approx(3 / 5)
    # reviewed counts A: i1 4, i2 3, i3 4, i4 1, i5 0, i6 0; B: i1 2, i2 2, i3 1, i4 0, i7 0
    assert a["exposure_gini_items"] == pytest.approx(M.gini([4, 3, 4, 1, 0, 0])) == pytest.approx(34 / 72)
    assert b["exposure_gini_items"] == pytest.approx(12 / 25)
    # novelty B: i1 clicked by both users (0 bits, reviewed twice), i2 and i3 by nobody (1 bit, 2 + 1 rows)
    assert b["novelty"] == pytest.approx(3 / 5)
    # novelty A: clickers i1 {u1}, i2 {u2}, i3 {u1,u2}, i4 {} -> 1, 1, 0, 1 bits; 8 bits over 12 rows
    assert a["novelty"] == pytest.approx(8 / 12)
    assert a["ndcg"] == pytest.approx(sum(v for k, v in NDCG.items() if k[0] == "A") / 5)
    assert b["ndcg"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert (a["llm_calls"], a["llm_tokens"], a["llm_cost_usd"]) == pytest.approx((5, 180, 0.03))
    assert (b["llm_calls"], b["llm_tokens"], b["llm_cost_usd"]) == (0, 0, 0)


def test_arm_summary_llm_empty_and_split():
    assert (M.arm_summary(hand_logs(llm=pd.DataFrame()))[["llm_calls", "llm_cost_usd"]] == 0).all().all()
    split = hand_logs("split", llm=LLM.assign(arm="shared"))
    assert split.world_of("A") == "shared"
    assert M.arm_summary(split)["llm_calls"].isna().all()  # one world's usage cannot be split between arms


def test_ild_sampling_is_seeded(logs):
    one = [M.arm_summary(logs, seed=s, ild_slates=1).loc["A", "ild"] for s in (0, 0, 1, 2, 3, 4, 5)]
    assert one[0] == one[1]
    assert set(np.round(one, 9)) <= {1.0, round(2 / 3, 9)}


# ------------------------------------------------------------------ per day, exposure, creators, 2x2
def test_daily_by_hand(logs):
    d = M.daily(logs).set_index(["arm", "day"])
    assert list(M.daily(logs).columns) == ["arm", "day", "active_users", "sessions", "ctr", "watch_minutes_per_session",
                                           "compliance", "instructions_per_session", "new_items"]
    assert len(d) == 10
    assert (d.loc[("A", 0), "active_users"], d.loc[("A", 0), "sessions"]) == (1, 1)
    assert d.loc[("A", 0), "ctr"] == pytest.approx(2 / 5)
    assert d.loc[("A", 2), "ctr"] == pytest.approx(1 / 3)
    assert d.loc[("A", 1), "watch_minutes_per_session"] == pytest.approx(3.0)
    assert d.loc[("A", 2), "compliance"] == 0.5 and math.isnan(d.loc[("A", 0), "compliance"])
    assert d.loc[("A", 2), "instructions_per_session"] == 1.0
    assert d.loc[("A", 3), "sessions"] == 0 and math.isnan(d.loc[("A", 3), "ctr"])
    assert d.loc[("B", 0), "active_users"] == 2
    assert d["new_items"].loc["A"].tolist() == [0, 1, 0, 1, 0]
    assert d["new_items"].loc["B"].tolist() == [0, 1, 0, 0, 0]


def test_lorenz_by_hand(logs):
    lz = M.lorenz(logs, "item")
    a = lz[lz["arm"] == "A"]
    assert a["share_of_population"].tolist() == pytest.approx([k / 6 for k in range(7)])
    assert a["share_of_exposure"].tolist() == pytest.approx([0, 0, 0, 1 / 12, 4 / 12, 8 / 12, 1])
    c = M.lorenz(logs, "creator")
    # creators of world B: c1 (i1, i2) 4, c2 (i3) 1, c3 (i4) 0, k1 (i7) 0
    assert c[c["arm"] == "B"]["share_of_exposure"].tolist() == pytest.approx([0, 0, 0, 1 / 5, 1])
    thin = M.lorenz(logs, "item", max_points=3)
    assert thin[thin["arm"] == "A"]["share_of_population"].tolist() == pytest.approx([0, 0.5, 1])
    with pytest.raises(ValueError, match="by must be"):
        M.lorenz(logs, "topic")


def test_creator_health_by_hand(logs):
    daily, summary = M.creator_health(logs)
    assert list(daily.columns) == M.CREATOR_DAILY_COLUMNS and list(summary.columns) == M.CREATOR_SUMMARY_COLUMNS
    a = daily[daily["arm"] == "A"].set_index("day")
    assert a["active_creators"].tolist() == [2, 1] and a["quits"].tolist() == [0, 1]
    assert a["published"].tolist() == [1, 1] and a["explore_share"].tolist() == [1.0, 0.0]
    s = summary.set_index("arm")
    assert (s.loc["A", "creators"], s.loc["A", "active_at_end"], s.loc["A", "quits"]) == (2, 1, 1)
    # exposure of world A's creators: c1 7, c2 4, c3 1, k1 0, k2 0
    assert s.loc["A", "exposure_gini_creators"] == pytest.approx(36 / 60)
    assert s.loc["B", "exposure_gini_creators"] == pytest.approx(13 / 20)
    assert s.loc["A", "genre_entropy"] == pytest.approx(1.0)  # published topics t1, t2
    assert s.loc["B", "genre_entropy"] == pytest.approx(0.0)
    empty_daily, empty_summary = M.creator_health(hand_logs(creators=pd.DataFrame()))
    assert empty_daily.empty and empty_summary.empty and list(empty_summary.columns) == M.CREATOR_SUMMARY_COLUMNS


def test_ndcg_retention_2x2_by_hand(logs):
    q = M.ndcg_retention_2x2(logs).set_index("arm")
    assert list(q.columns) == [*M.QUADRANTS, "ndcg_retention_corr"]
    # users (ndcg, days): A u1 (0.396, 2), A u2 (0.5, 2), B u1 (1.0, 1), B u2 (0.315, 2);
    # pooled medians: ndcg 0.448, days 2 (at or above = high)
    assert q.loc["A"][M.QUADRANTS].tolist() == [0.5, 0.0, 0.5, 0.0]
    assert q.loc["B"][M.QUADRANTS].tolist() == [0.0, 0.5, 0.5, 0.0]
    assert q[M.QUADRANTS].sum(axis=1).tolist() == [1.0, 1.0]
    assert math.isnan(q.loc["A", "ndcg_retention_corr"])  # A's days active are constant
    assert q.loc["B", "ndcg_retention_corr"] == pytest.approx(-1.0)


# ------------------------------------------------------------------ a real small run
def test_small_quickstart_run_orderings(tmp_path):
    from recoworld.runs.runner import PopulationRun

    scn = load_scenario("quickstart", {"users": {"n_users": 200}, "env": {"horizon_days": 5}})
    result = PopulationRun(scn, output=tmp_path / "run").run()
    logs = RunLogs.load(tmp_path / "run")
    s = M.arm_summary(logs)
    summaries = result.summaries()
    for arm in logs.arms:  # the logs agree with the run's own totals
        assert s.loc[arm, "ctr"] == pytest.approx(summaries[arm]["ctr"], rel=1e-6)
        assert s.loc[arm, "churn_rate"] == pytest.approx(summaries[arm]["churn_rate"])
        assert s.loc[arm, "sessions_per_user"] == pytest.approx(summaries[arm]["days_active"])
    assert s["coverage"].idxmax() == "random"
    assert s["exposure_gini_items"].idxmin() == "random"
    assert s.loc["mmr", "ild"] > s.loc["greedy", "ild"]
    assert s["ndcg"].between(0, 1).all() and s["ild"].between(0, 1).all()
    assert (s["users"] == 200).all()
    km = M.kaplan_meier(logs)
    assert (km.groupby("arm")["survival"].apply(lambda v: v.dropna().is_monotonic_decreasing)).all()
    assert set(M.daily(logs)["arm"]) == set(logs.arms)
    assert M.ndcg_retention_2x2(logs)[M.QUADRANTS].sum(axis=1).to_numpy() == pytest.approx(1.0)
