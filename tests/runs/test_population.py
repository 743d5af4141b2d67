"""Population runs: logs, A/B arms, retraining, creators in the world, kill-and-resume, engines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recoworld.agents.baselines import GreedyRelevance
from recoworld.agents.mf import MatrixFactorization
from recoworld.evaluation.metrics import gini
from recoworld.logs.folder import RunFolder, read_table
from recoworld.logs.records import ImpressionRecord, SessionRecord
from recoworld.runs.runner import PopulationRun, run_population
from recoworld.scenario import bundled_scenarios, deep_merge, load_scenario
from recoworld.testing.ray_cluster import local_ray

SMALL = {
    "name": "small",
    "seed": 7,
    "catalog": {"synthetic": {"n_items": 600, "n_topics": 8, "n_creators": 30}},
    "env": {"num_candidates": 40, "slate_size": 5, "horizon_days": 6, "max_slates_per_session": 8},
    "users": {"n_users": 300},
    "creators": {"count": 40, "items_per_day": 0.5},
    "recommenders": [{"name": "random"}, {"name": "greedy"}],
}


def small(**overrides) -> dict:
    return deep_merge(SMALL, overrides)


def run(data: dict, out: Path | None = None, **kwargs):
    return PopulationRun(load_scenario(data), output=out, **kwargs).run()


def day_hashes(folder: Path) -> list[tuple[str, int, int, str]]:
    manifest = RunFolder(folder).read_manifest()
    return [(f.table, f.day, f.rows, f.sha256) for f in manifest.files]


# ------------------------------------------------------------------ logs
def test_logs_have_one_record_per_shown_item_and_sessions_add_up(tmp_path):
    result = run(small(), tmp_path / "run")
    imp = read_table(tmp_path / "run", "impressions")
    sessions = read_table(tmp_path / "run", "sessions")
    assert list(imp.columns) == list(ImpressionRecord.model_fields)
    assert list(sessions.columns) == list(SessionRecord.model_fields)
    k = 5
    # every slate of every session is in the impressions, all K slots of it
    per_slate = imp.groupby(["arm", "user", "day", "step"], observed=True).size()
    assert (per_slate == k).all()
    # candidates are distinct items, so no slate shows an item twice (greedy scores copies alike)
    assert (imp.groupby(["arm", "user", "day", "step"], observed=True)["item"].nunique() == k).all()
    assert per_slate.groupby(level=["arm", "user", "day"], observed=True).size().sum() == sessions["slates"].sum()
    # session clicks and watch time are the sums of their impressions
    by_session = imp.groupby(["arm", "user", "day"], observed=True).agg(logged_clicks=("clicked", "sum"), watch=("watch_seconds", "sum"))
    merged = sessions.set_index(["arm", "user", "day"]).join(by_session)
    assert (merged["logged_clicks"] == merged["clicks"]).all()
    np.testing.assert_allclose(merged["watch"], merged["watch_seconds"], rtol=1e-4, atol=1e-2)
    # the random arm chose each slot with probability K / M; greedy deterministically
    props = imp.groupby("arm", observed=True)["propensity"].unique()
    assert list(props["random"]) == pytest.approx([5 / 40])
    assert list(props["greedy"]) == [1.0]
    # actions are consistent with the flags, and unseen slots carry no engagement
    unseen = imp["action"] == "unseen"
    assert not imp.loc[unseen, ["clicked", "skipped", "left"]].any().any()
    assert (imp.loc[imp["action"] == "share", "shared"]).all()
    assert imp["left"].sum() == sessions["left"].sum()
    # instruction text appears exactly where compliance was scored
    assert (imp["instruction"].notna() == imp["compliance"].notna()).all()
    assert imp["instruction"].notna().any()
    # the per-user totals the runner returns agree with the logs
    for arm, res in result.arms.items():
        assert res.totals["click"].sum() == imp.loc[imp["arm"] == arm, "clicked"].sum()
    manifest = RunFolder(tmp_path / "run").read_manifest()
    assert manifest.status == "complete" and manifest.days_completed == 6
    assert not (tmp_path / "run" / "checkpoint.pkl").exists()


def test_item_rewards_plus_session_terms_make_the_session_reward(tmp_path):
    data = small(rewards={"click": 1.0, "like": 0.5, "watch_minutes": 0.2, "skip": -0.1, "leave": -1.0, "return": 2.0, "churn": -5.0})
    run(data, tmp_path / "run")
    imp = read_table(tmp_path / "run", "impressions")
    sessions = read_table(tmp_path / "run", "sessions").set_index(["arm", "user", "day"])
    item_sum = imp.groupby(["arm", "user", "day"], observed=True)["reward"].sum()
    gap = sessions["return_gap_days"].to_numpy()
    session_terms = np.where(sessions["churned"], -5.0, np.where(gap > 0, 2.0 / np.maximum(gap, 1), 0.0))  # return: 1/gap
    np.testing.assert_allclose(item_sum.reindex(sessions.index) + session_terms, sessions["reward"], atol=1e-3)


def test_split_arms_see_disjoint_users_in_proportion_to_their_shares(tmp_path):
    data = small(
        recommenders=[{"name": "greedy", "share": 3}, {"name": "mmr", "share": 1}],
        run={"assignment": "split"}, users={"n_users": 400},
    )
    result = run(data, tmp_path / "run")
    sessions = read_table(tmp_path / "run", "sessions")
    users = sessions.groupby("arm", observed=True)["user"].unique()
    assert not set(users["greedy"]) & set(users["mmr"])
    assert len(result.arms["greedy"].totals["click"]) == 300
    assert len(result.arms["mmr"].totals["click"]) == 100
    # one shared world: one creators table row per creator and day, labelled as shared
    creators = read_table(tmp_path / "run", "creators")
    assert set(creators["arm"]) == {"shared"} and len(creators) == 40 * 6


def test_copies_serve_the_same_users_to_every_arm(tmp_path):
    run(small(creators={"count": 0}), tmp_path / "run")
    sessions = read_table(tmp_path / "run", "sessions")
    day0 = sessions[sessions["day"] == 0].groupby("arm", observed=True)["user"].apply(set)
    assert day0["random"] == day0["greedy"]  # everyone starts on day 0, in both copies of the world


class CountingGreedy(GreedyRelevance):
    """Greedy that records what it was retrained on."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def retrain(self, impressions: pd.DataFrame) -> None:
        self.calls.append((len(impressions), impressions["user"].nunique()))


def test_recommenders_retrain_on_all_logs_so_far_every_n_days():
    rec = CountingGreedy()
    scn = load_scenario(small(run={"retrain_every": 2}, creators={"count": 0}))
    PopulationRun(scn, [rec]).run()
    assert len(rec.calls) == 3  # after days 2, 4 and 6
    rows = [n for n, _ in rec.calls]
    assert rows == sorted(rows) and rows[0] > 0


def test_mf_retrained_on_logs_runs_in_a_population():
    rec = MatrixFactorization()
    result = run_population(load_scenario(small(creators={"count": 0})), rec, seed=1)
    assert rec.trained and result.summary()["ctr"] > 0


@pytest.mark.slow
# ------------------------------------------------------------------ creators in the world
def test_popularity_ranking_starves_creators_compared_with_a_diversity_reranker(tmp_path):
    data = small(
        users={"n_users": 1500}, env={"horizon_days": 12, "num_candidates": 60, "slate_size": 6},
        creators={"count": 80, "items_per_day": 0.5},
        recommenders=[{"name": "popular"}, {"name": "mmr", "params": {"lambda_": 0.5}}],
    )
    run(data, tmp_path / "run")
    creators = read_table(tmp_path / "run", "creators")
    last = creators[creators["day"] == creators["day"].max()].groupby("arm", observed=True)
    quits = last["active"].apply(lambda a: int((~a).sum()))
    assert quits["popular"] > quits["mmr"] + 10
    imp = read_table(tmp_path / "run", "impressions", ["arm", "creator", "action"])
    n_creators = len(pd.read_parquet(tmp_path / "run" / "catalog.parquet")["creator"].unique()) + 80
    exposure = {}
    for arm, g in imp[imp["action"] != "unseen"].groupby("arm", observed=True):
        counts = g["creator"].value_counts().to_numpy()
        exposure[arm] = gini(np.concatenate([counts, np.zeros(n_creators - len(counts))]))
    assert exposure["popular"] > exposure["mmr"] + 0.1


@pytest.mark.slow
def test_creators_exploit_more_after_better_feedback_in_a_run(tmp_path):
    data = small(users={"n_users": 1500}, env={"horizon_days": 10}, creators={"count": 120, "items_per_day": 0.8},
                 recommenders=[{"name": "mmr"}])
    run(data, tmp_path / "run")
    items = read_table(tmp_path / "run", "items")
    judged = items.dropna(subset=["recent_feedback"])
    low = judged["recent_feedback"] <= judged["recent_feedback"].quantile(0.33)
    high = judged["recent_feedback"] >= judged["recent_feedback"].quantile(0.67)
    exploit_low = 1 - judged.loc[low, "explore"].mean()
    exploit_high = 1 - judged.loc[high, "explore"].mean()
    assert exploit_high > exploit_low + 0.15


def test_published_items_enter_the_catalog_and_get_shown(tmp_path):
    run(small(recommenders=[{"name": "random"}]), tmp_path / "run")
    items = read_table(tmp_path / "run", "items")
    assert len(items) > 50 and (items["created_day"] >= 0).all()
    imp = read_table(tmp_path / "run", "impressions", ["item", "day"])
    shown_new = imp[imp["item"].isin(set(items["item_id"]))]
    assert len(shown_new) > 0
    first_day = items.set_index("item_id")["created_day"]
    assert (shown_new["day"].to_numpy() >= first_day.loc[shown_new["item"].astype(str)].to_numpy()).all()


# ------------------------------------------------------------------ durability
def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "recoworld.cli", "run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_run_killed_mid_way_resumes_to_the_same_logs(tmp_path):
    scenario = tmp_path / "kill.yaml"
    data = small(users={"n_users": 1500}, env={"horizon_days": 8}, creators={"count": 60},
                 recommenders=[{"name": "linucb"}, {"name": "mf"}, {"name": "mmr"}], run={"shards": 2})
    scenario.write_text(yaml.safe_dump(data))
    whole = _cli(str(scenario), "--out", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.wait(timeout=600) == 0, whole.stdout.read()

    killed = _cli(str(scenario), "--out", str(tmp_path / "killed"), cwd=tmp_path)
    manifest = tmp_path / "killed" / "manifest.json"
    deadline = time.time() + 600
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["days_completed"] >= 3:
            break
        assert killed.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    state = json.loads(manifest.read_text())
    assert state["status"] == "running" and state["days_completed"] < 8

    resumed = _cli(str(scenario), "--out", str(tmp_path / "killed"), "--resume", cwd=tmp_path)
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    assert day_hashes(tmp_path / "killed") == day_hashes(tmp_path / "whole")
    for table in ("impressions", "sessions", "creators", "items"):
        pd.testing.assert_frame_equal(read_table(tmp_path / "killed", table), read_table(tmp_path / "whole", table))


def test_resume_refuses_a_changed_scenario_and_a_finished_run(tmp_path):
    data = small(env={"horizon_days": 2})
    run(data, tmp_path / "run")
    with pytest.raises(ValueError, match="already complete"):
        PopulationRun(load_scenario(data), output=tmp_path / "run").run(resume=True)
    folder = RunFolder(tmp_path / "run")
    manifest = folder.read_manifest()
    before = day_hashes(tmp_path / "run")
    manifest.status = "running"
    folder.write_manifest(manifest)
    # no checkpoint (a run killed before its first one): the run starts again and ends with the same files
    PopulationRun(load_scenario(data), output=tmp_path / "run").run(resume=True)
    assert day_hashes(tmp_path / "run") == before
    manifest = folder.read_manifest()
    manifest.status = "running"
    folder.write_manifest(manifest)
    with pytest.raises(ValueError, match="scenario differs"):
        PopulationRun(load_scenario(small(env={"horizon_days": 3})), output=tmp_path / "run").run(resume=True)


def test_output_folder_with_other_files_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        run(small(env={"horizon_days": 1}), tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


# ------------------------------------------------------------------ engines
def test_shards_change_nothing_but_the_random_streams(tmp_path):
    one = run(small(creators={"count": 0}), tmp_path / "one")
    two = run(small(creators={"count": 0}, run={"shards": 3}), tmp_path / "two")
    for arm in one.arms:
        a, b = one.arms[arm].summary(), two.arms[arm].summary()
        assert abs(a["ctr"] - b["ctr"]) < 0.05  # the same population, differently sharded


def test_ray_engine_writes_the_same_logs_as_the_local_engine(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    data = small(users={"n_users": 600}, recommenders=[{"name": "linucb"}, {"name": "mmr"}, {"name": "egreedy"}],
                 run={"shards": 2})
    with local_ray(num_cpus=2):  # a plain ray.init() would leave token auth on for the later cluster tests
        run(deep_merge(data, {"run": {"engine": "ray"}}), tmp_path / "ray")
    run(data, tmp_path / "local")
    assert day_hashes(tmp_path / "ray") == day_hashes(tmp_path / "local")


# ------------------------------------------------------------------ bundled scenarios and LLM parts
@pytest.mark.parametrize("name", bundled_scenarios())
def test_every_bundled_scenario_runs_end_to_end(name, tmp_path, llm_server):
    from tests.users.test_llm_users import decision

    overrides: dict = {"users": {"n_users": 40}, "env": {"horizon_days": 2}}
    if load_scenario(name).users.backend != "parametric":  # the real litellm client against a local server
        llm_server.responder = lambda body: json.dumps(decision(body["messages"], click=(0,)))
        overrides["llm"] = {"model": "openai/test-model", "api_base": llm_server.base_url, "max_retries": 0,
                            "cache_path": str(tmp_path / "cache.sqlite")}
    scn = load_scenario(name, overrides)
    result = PopulationRun(scn, output=tmp_path / "run").run()
    manifest = RunFolder(tmp_path / "run").read_manifest()
    assert manifest.status == "complete" and manifest.arms == [r.label for r in scn.recommenders]
    assert list(result.arms) == manifest.arms
    imp = read_table(tmp_path / "run", "impressions", ["arm", "user_fallback", "clicked"])
    assert set(imp["arm"]) == set(manifest.arms) and imp["clicked"].any()
    if scn.users.backend != "parametric":
        assert len(llm_server.requests) > 0 and not imp["user_fallback"].all()
        from recoworld.evaluation import RunLogs
        from recoworld.evaluation.report import write_report

        report = write_report([RunLogs.load(tmp_path / "run")], tmp_path / "report")
        usage = json.loads(report.metrics.read_text())["llm"]
        assert sum(row["calls"] for row in usage) == len(llm_server.requests)  # cache hits never reach the server
        assert "LLM usage per world and source" in report.html.read_text()


def test_llm_creators_write_the_items_and_fall_back_when_the_model_fails(tmp_path):
    from recoworld.llm.base import LLMServerError
    from recoworld.llm.scripted import ScriptedModel

    calls = {"n": 0}

    def respond(messages, schema):
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise LLMServerError("down")
        return {"topic": "cooking", "explore": False, "title": f"Pan pizza no. {calls['n']}",
                "description": "Crisp and quick.", "tags": ["pizza"]}

    data = small(creators={"backend": "llm", "count": 10, "items_per_day": 1.0}, env={"horizon_days": 2},
                 llm={"max_retries": 0}, recommenders=[{"name": "greedy"}])
    run(data, tmp_path / "run", language_model=ScriptedModel(respond))
    items = read_table(tmp_path / "run", "items")
    from_model = items[~items["fallback"]]
    assert len(from_model) > 0 and (from_model["topic"] == "cooking").all()
    assert from_model["title"].str.startswith("Pan pizza").all()
    assert items["fallback"].any()  # the failed calls became parametric items, flagged


def test_users_extracted_from_an_interaction_log(tmp_path):
    from recoworld.world.simulation import build_catalog

    scn = load_scenario(small(creators={"count": 0}))
    catalog = build_catalog(scn.catalog, scn.seed)
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):  # each logged user watches items of two topics
        topics = rng.choice(catalog.n_topics, 2, replace=False)
        pool = np.flatnonzero(np.isin(catalog.topic, topics))
        for k, item in enumerate(rng.choice(pool, 12, replace=False)):
            rows.append({"user_id": f"L{u}", "item_id": catalog.item_id[item], "timestamp": 1_700_000_000 + 600 * k, "click": 1})
    path = tmp_path / "log.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    data = small(creators={"count": 0}, users={"source": "logs", "n_users": 30, "logs": {"interactions": str(path)}},
                 recommenders=[{"name": "greedy"}])
    result = run(data, tmp_path / "run")
    users = read_table(tmp_path / "run", "users")
    assert len(users) == 30 and users["user"].str.startswith("L").all()
    assert result.arms["greedy"].summary()["ctr"] > 0


def test_recommender_fallbacks_are_flagged_on_the_slates_they_shaped(tmp_path):
    from recoworld.agents.instruction_following import InstructionFollowing
    from recoworld.llm.base import LLMServerError
    from recoworld.llm.scripted import ScriptedModel

    def down(messages, schema):
        raise LLMServerError("parser model down")

    rec = InstructionFollowing(GreedyRelevance(), parser="llm", language_model=ScriptedModel(down))
    scn = load_scenario(small(creators={"count": 0}, env={"horizon_days": 3}))
    PopulationRun(scn, [rec], output=tmp_path / "run").run()
    imp = read_table(tmp_path / "run", "impressions", ["recommender_fallback", "instruction"])
    flagged = imp[imp["recommender_fallback"]]
    assert rec.fallbacks > 0 and len(flagged) == rec.fallbacks * 5  # every slot of each slate that fell back
    assert flagged["instruction"].notna().all()


def test_a_run_with_an_llm_recommender_resumes_after_a_crash_with_its_model_given_again(tmp_path):
    from recoworld.agents.instruction_following import InstructionFollowing
    from recoworld.llm.scripted import ScriptedModel

    def parse(messages, schema):
        return {"include_topics": [], "exclude_topics": [], "more_novelty": True}

    def arm() -> InstructionFollowing:
        return InstructionFollowing(GreedyRelevance(), parser="llm", language_model=ScriptedModel(parse))

    scn = load_scenario(small(creators={"count": 20}, env={"horizon_days": 5}))
    PopulationRun(scn, [arm()], output=tmp_path / "whole").run()

    def crash(day: int) -> None:
        if day == 2:
            raise KeyboardInterrupt  # the analyst pressed Ctrl-C after day 2 was handed to the writer

    with pytest.raises(KeyboardInterrupt):
        PopulationRun(scn, [arm()], output=tmp_path / "cut", on_day=crash).run()
    assert RunFolder(tmp_path / "cut").read_manifest().days_completed == 3
    PopulationRun(scn, [arm()], output=tmp_path / "cut").run(resume=True)
    assert day_hashes(tmp_path / "cut") == day_hashes(tmp_path / "whole")
