"""The fidelity suite: every protocol on one split, baselines beside the calibrated users."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from recoworld.fidelity.baselines import BASELINES, register_baseline
from recoworld.fidelity.protocols import pick_score
from recoworld.fidelity.suite import fidelity_suite, format_tables
from recoworld.users.calibration import CalibrationConfig, write_ground_truth

QUICK = CalibrationConfig(factors=[8], l2=[0.1], recency=[0.0], dynamics_users=50, dynamics_rounds=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gt")
    write_ground_truth(folder, n_users=80, sessions=5)
    return folder


def test_pick_scores_count_what_they_say():
    picked = np.array([True, True, False, False])
    label = np.array([True, False, True, False])
    s = pick_score(picked, label, np.array([0, 0, 1, 1]), seed=0)
    assert (s.accuracy, s.precision, s.recall, s.f1) == (0.5, 0.5, 0.5, 0.5)


def test_suite_scores_backends_and_baselines_under_every_protocol(data):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from tests.users.test_llm_users import decision

    from recoworld.llm.scripted import ScriptedModel

    eager = ScriptedModel(lambda m, s: decision(m, click=tuple(range(20))))  # an LLM user that clicks everything
    calls: list[int] = []

    def constant(prep):  # a registered baseline (the SASRec hook): fitted on training rows, scores any pair
        calls.append(int(prep.train.sum()))
        return lambda users, items: np.full(len(items), 0.5)

    register_baseline("constant", constant)
    try:
        report, cal = fidelity_suite(data, config=QUICK, backends={"parametric": None, "llm": eager}, ratios=(1, 3))
    finally:
        BASELINES.pop("constant")
    assert calls and report.engagement.auc["constant"] == pytest.approx(0.5)
    assert set(report.discrimination) == {"1:1", "1:3"}
    for ratio, m in (("1:1", 1), ("1:3", 3)):
        scores = report.discrimination[ratio]
        assert {"parametric", "llm", "mf", "popularity_rate", "popularity_count", "constant", "pick every item",
                "mf (tuned threshold)", "constant (tuned top share)", "mf+selection (tuned threshold)"} <= set(scores)
        assert set(report.pick_rules[ratio]) >= {"mf", "constant", "mf+selection", "parametric"}
        # the calibrated users' rules pick on the kernel's utility; an LLM user has none to tune
        assert {"parametric (tuned threshold)", "parametric (tuned top share)"} <= set(scores)
        assert not any(name.startswith("llm (") for name in scores)
        assert scores["llm"].recall == pytest.approx(1.0)  # it picks everything: every liked item
        assert scores["llm"].precision == pytest.approx(1 / (1 + m), abs=0.02)  # ... and the share of liked among all
    assert report.choice["parametric"].chance == pytest.approx(0.1)
    assert report.engagement.auc["simulator"] > report.engagement.auc["popularity_rate"] + 0.05
    assert {"training period (dynamics fit)", "held-out replay (parametric)", "held-out replay (llm)"} <= set(report.behaviour)
    assert report.held_out_period["real"]["users"] == len(cal.profiles)
    # a simulated life too short to have a held-out part (under 5 items) has no held-out period
    assert 0.9 * len(cal.profiles) <= report.held_out_period["simulated"]["users"] <= len(cal.profiles)
    text = format_tables(report)
    assert "Preference discrimination 1:m" in text and "| 1:3 | mf |" in text

    # the suite travels in the calibration file into a calibrated run's report
    from recoworld.evaluation import RunLogs
    from recoworld.evaluation.report import write_report
    from recoworld.runs.runner import PopulationRun
    from recoworld.scenario import load_scenario

    cal.save(data.parent / "suite.parquet")
    scenario = load_scenario({"catalog": cal.result.catalog, "users": {"from_calibration": str(data.parent / "suite.parquet"),
                              "n_users": 20}, "env": {"num_candidates": 20, "slate_size": 5, "horizon_days": 2},
                              "recommenders": [{"name": "greedy"}]})
    PopulationRun(scenario, output=data.parent / "run").run()
    html = write_report([RunLogs.load(data.parent / "run")], data.parent / "report").html.read_text()
    section = html.split('<section id="fidelity">', 1)[1].split("</section>", 1)[0]
    assert "Preference discrimination 1:m" in section and "Session dynamics fitted by simulation" in section


def test_cli_fidelity_prints_tables_and_writes_json(data, tmp_path):
    from typer.testing import CliRunner

    from recoworld.cli import app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["fidelity", str(data), "--factors", "8", "--l2", "0.1", "--recency", "0", "--ratios", "1",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Engagement on held-out rated items" in result.output and "| 1:1 | parametric |" in result.output
    assert json.loads(out.read_text())["discrimination"]["1:1"]["mf"]["items"] > 0
    if importlib.util.find_spec("torch") is not None:  # SASRec is scored too, and only for that command
        assert "| 1:1 | sasrec |" in result.output and "sasrec" not in BASELINES
    bad = CliRunner().invoke(app, ["fidelity", str(data), "--backends", "robot"])
    assert bad.exit_code != 0 and "--backends" in bad.output
