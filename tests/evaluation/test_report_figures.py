"""The report's figures are pinned: small seeded runs give the metrics JSON and the Markdown recorded in
``tests/evaluation/golden/`` (recorded from the in-memory report, before it read its logs out of
core).

The Markdown (every printed digit) must agree byte for byte, and every number of the JSON to 1e-6
relative: the in-memory report added watch seconds up in float32 (relative error about 1e-7), the
out-of-core one adds everything in float64; nothing else moves beyond the last bits. Each case first
checks that the run wrote the logs the golden was recorded from (a SHA-256 of each file's rows: column names,
types and values; not of its bytes, since a Parquet file's footer names the pyarrow version that wrote it), so a
change of the simulation is told apart from a change of the report. After a deliberate change of either, re-record with ``RECOWORLD_RECORD_GOLDEN=1`` and say why in
the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recoworld.evaluation import RunLogs
from recoworld.evaluation.report import write_report
from recoworld.logs.folder import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario

GOLDEN = Path(__file__).parent / "golden"
RECORD = os.environ.get("RECOWORLD_RECORD_GOLDEN") == "1"

CASES: dict[str, list[tuple[str, dict]]] = {
    # the main job's scenario, every arm, fewer users and days
    "quickstart": [("quickstart", {"users": {"n_users": 300}, "env": {"horizon_days": 10}})],
    # creators, an off-policy target and one shared world split between arms
    "split_creators_ope": [("quickstart", {
        "seed": 3, "users": {"n_users": 200}, "env": {"horizon_days": 6}, "catalog": {"synthetic": {"n_items": 800}},
        "creators": {"count": 25},
        "recommenders": [{"name": "greedy"}, {"name": "mmr", "params": {"lambda_": 0.5}},
                         {"name": "instruction_following", "params": {"base": "greedy"}}],
        "run": {"assignment": "split", "ope_targets": [{"name": "greedy"}, {"name": "random"}]},
    })],
    # two runs in one report: arms compared across runs, unpaired
    "two_runs": [
        ("quickstart", {"seed": 1, "users": {"n_users": 120}, "env": {"horizon_days": 5},
                        "recommenders": [{"name": "popular"}, {"name": "greedy"}]}),
        ("quickstart", {"seed": 2, "users": {"n_users": 90}, "env": {"horizon_days": 5}, "creators": {"count": 10},
                        "recommenders": [{"name": "greedy"}, {"name": "linucb"}]}),
    ],
}


def _rows_sha256(path: Path) -> str:
    """SHA-256 of a log file's rows, the same whichever pyarrow wrote the file."""
    if path.suffix != ".parquet":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    table, h = pq.read_table(path), hashlib.sha256()
    for name, column in zip(table.column_names, table.columns):
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        h.update(f"{name}:{kind}:".encode())
        h.update(json.dumps(column.to_pylist(), separators=(",", ":"), default=str).encode())
    return h.hexdigest()


def _digests(folder: Path) -> list[list]:
    run = RunFolder(folder)
    return [[f.table, f.day, f.rows, _rows_sha256(run.path / f.path)] for f in run.read_manifest().files]


def _figures(case: str, tmp: Path) -> tuple[dict, str, list]:
    folders = []
    for k, (name, overrides) in enumerate(CASES[case]):
        folder = tmp / f"run{k}"
        PopulationRun(load_scenario(name, overrides), output=folder).run()
        folders.append(folder)
    paths = write_report([RunLogs.load(f) for f in folders], tmp / "report", seed=0)
    metrics = json.loads(paths.metrics.read_text(encoding="utf-8"))
    for run in metrics["runs"]:
        run.pop("path")  # where the test's temporary folder was
    return metrics, paths.markdown.read_text(encoding="utf-8"), [_digests(f) for f in folders]


def _differences(got, want, where: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for k in want for d in _differences(got[k], want[k], f"{where}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, golden {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _differences(g, w, f"{where}[{i}]")]
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(got, bool) \
                and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
            return []
    elif got == want:
        return []
    return [f"{where}: {got!r}, golden {want!r}"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_figures_equal_the_recorded_ones(case, tmp_path):
    metrics, markdown, digests = _figures(case, tmp_path)
    path = GOLDEN / f"{case}.json"
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps({"logs": digests, "markdown": markdown, "metrics": metrics}, indent=0) + "\n")
        pytest.skip(f"recorded {path.name}")
    golden = json.loads(path.read_text())
    assert digests == golden["logs"], "the simulation wrote other logs than the golden's: re-record (see the docstring)"
    differences = _differences(metrics, golden["metrics"])
    assert not differences, f"{len(differences)} figures differ, first: " + "; ".join(differences[:5])
    assert markdown == golden["markdown"]
