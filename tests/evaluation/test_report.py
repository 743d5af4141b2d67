"""The run report: a self-contained HTML file, Markdown, metrics JSON and PNG plots, from real run folders."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq
import pytest
from tests.test_cli import error_lines

from recoworld.cli import app
from recoworld.evaluation import RunLogs
from recoworld.evaluation.report import NO_OPE, SECTIONS, ReportPaths, fmt, kind_of, write_report
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
ARMS = ["random", "greedy", "instruction_following"]


# ------------------------------------------------------------------ fixtures: real small runs
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """Three arms, creators publishing, one off-policy target: every section has something to show."""
    out = tmp_path_factory.mktemp("runs") / "small"
    scenario = load_scenario("quickstart", {
        "users": {"n_users": 150}, "env": {"horizon_days": 4}, "creators": {"count": 20},
        "recommenders": [{"name": "random"}, {"name": "greedy"}, {"name": "instruction_following", "params": {"base": "greedy"}}],
        "run": {"ope_targets": [{"name": "greedy"}]},
    })
    PopulationRun(scenario, output=out).run()
    return out


@pytest.fixture(scope="module")
def bare_dir(tmp_path_factory) -> Path:
    """One arm, no creators, no off-policy targets: the sections say why they are empty."""
    out = tmp_path_factory.mktemp("runs") / "bare"
    scenario = load_scenario("quickstart", {"users": {"n_users": 40}, "env": {"horizon_days": 2}, "recommenders": [{"name": "greedy"}]})
    PopulationRun(scenario, output=out).run()
    return out


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory) -> ReportPaths:
    return write_report([RunLogs.load(run_dir)], tmp_path_factory.mktemp("report"), baseline="greedy")


@pytest.fixture(scope="module")
def html(report) -> str:
    return report.html.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def data(report) -> dict:
    def no_nan(token: str):
        raise AssertionError(f"metrics.json holds {token}")

    return json.loads(report.metrics.read_text(encoding="utf-8"), parse_constant=no_nan)




# ------------------------------------------------------------------ HTML structure
class _Structure(HTMLParser):
    """Checks tags nest and close properly and records each section's first heading."""

    VOID: ClassVar[set[str]] = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sections: dict[str, str | None] = {}
        self._section: str | None = None
        self._in_h2 = False
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = attrs.get("id")
            self.sections[self._section] = None
        if tag == "h2" and self._section is not None and self.sections[self._section] is None:
            self._in_h2 = True
            self.sections[self._section] = ""
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, text):
        if self._in_h2 and self._section is not None:
            self.sections[self._section] += text


def parse(html: str) -> _Structure:
    parser = _Structure()
    parser.feed(html)
    parser.close()
    return parser


def test_html_is_well_formed_with_every_section_and_heading(html):
    assert html.startswith("<!DOCTYPE html>")
    doc = parse(html)
    assert not doc.errors and not doc.stack, (doc.errors, doc.stack)
    shown = list(doc.sections)
    assert shown[0] == "summary" and shown[-1] == "not_measured"  # the answer first, what is missing in one note last
    order = [sid for sid, _ in SECTIONS]
    assert [order.index(sid) for sid in shown[:-1]] == sorted(order.index(sid) for sid in shown[:-1])
    assert "llm" not in shown and "fidelity" not in shown  # empty: collapsed into the note
    for sid, title in SECTIONS:
        assert sid not in doc.sections or doc.sections[sid] == title, sid
    ids = [a["id"] for _, a in doc.tags if "id" in a]
    assert len(ids) == len(set(ids))
    assert all(a.get("alt") for t, a in doc.tags if t == "img")


def test_report_is_self_contained(html):
    assert "http://" not in html and "https://" not in html
    doc = parse(html)
    assert not [t for t, _ in doc.tags if t in ("script", "link", "iframe", "object")]
    for tag, attrs in doc.tags:
        if "src" in attrs:
            assert attrs["src"].startswith("data:image/png;base64,"), tag
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs["href"]
    assert "<style>" in html


def test_every_image_is_a_valid_png(report, html):
    from matplotlib.image import imread

    images = IMG.findall(html)
    assert len(images) == html.count("<img")
    assert len(images) >= 4  # retention, engagement, exposure, creators (and compliance when instructions were voiced)
    for b64 in images:
        raw = base64.b64decode(b64, validate=True)
        assert raw.startswith(PNG_SIGNATURE)
        pixels = imread(io.BytesIO(raw), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
        assert pixels.std() > 0.01  # not a blank canvas
    assert {p.read_bytes() for p in report.plots.values()} == {base64.b64decode(b) for b in images}
    assert {"retention", "engagement", "lorenz", "creators"} <= set(report.plots)


def test_sections_with_data_show_it(html):
    def section(sid: str) -> str:
        return html.split(f'<section id="{sid}">', 1)[1].split("</section>", 1)[0]

    assert "Headline metrics per arm" in section("summary")
    for arm in ARMS:
        assert arm in section("summary")
    assert "95% CI" in section("comparison") and "against greedy" in section("comparison")
    assert "Creator population" in section("creators")
    assert "quadrant" in section("retention")
    for est in ("IPS", "SNIPS", "DR"):
        assert f"<td>{est}</td>" in section("ope")
    assert "LLM usage: no LLM was used" in section("not_measured")  # said once, not as an empty section


def test_metrics_json_holds_the_arms_and_the_numbers_shown(data, html):
    assert data["arms"] == ARMS
    assert data["baseline"] == "greedy"
    assert data["runs"][0]["name"] == "small" and data["runs"][0]["arms"] == ARMS
    assert set(data["summary"]) == set(ARMS)
    assert {c["arm"] for c in data["comparisons"]} == {"random", "instruction_following"}
    assert all(c["baseline"] == "greedy" for c in data["comparisons"])
    assert {r["estimator"] for r in data["ope"]} == {"IPS", "SNIPS", "DR"}
    assert data["kaplan_meier"] and data["daily"] and data["lorenz"]["item"] and data["creators"]["summary"]
    assert isinstance(data["notes"], list)
    # the headline cells of the HTML are the JSON's numbers, formatted
    for arm in ARMS:
        for metric in ("ctr", "watch_minutes_per_user", "churn_rate", "coverage"):
            cell = fmt(data["summary"][arm][metric], kind_of(metric))
            assert f'<td class="num">{cell}</td>' in html, (arm, metric, cell)
    for c in data["comparisons"]:  # each comparison once, as a table row
        assert f'<td class="num">{fmt(c["diff"], kind_of(c["metric"]), signed=True)}</td>' in html
    assert not [c["statement"] for c in data["comparisons"] if c["statement"] in html]  # not repeated as bullets


def test_markdown_has_the_headline_table_comparisons_and_notes(report, data):
    md = report.markdown.read_text(encoding="utf-8")
    assert md.startswith("# RecoWorld report")
    assert "| arm | users | CTR |" in md
    for arm in ARMS:
        assert f"| {arm} |" in md
    assert "95% CI" in md
    for c in data["comparisons"]:
        assert fmt(c["diff"], kind_of(c["metric"]), signed=True) in md
    assert "## Not measured in this run" in md
    for note in data["notes"]:
        assert note in md


def test_empty_sections_say_why(bare_dir, tmp_path):
    paths = write_report([RunLogs.load(bare_dir)], tmp_path / "out")
    html = paths.html.read_text(encoding="utf-8")
    doc = parse(html)
    assert "not_measured" in doc.sections and "creators" not in doc.sections and "ope" not in doc.sections
    missing = html.split('<section id="not_measured">', 1)[1]
    for reason in ("no creators in this run", NO_OPE, "nothing to compare", "no LLM was used"):
        assert reason in missing and html.count(reason) == 1, reason  # said once, in one place
    data = json.loads(paths.metrics.read_text())
    assert data["ope"] is None and data["comparisons"] == [] and data["arms"] == ["greedy"]
    assert "creators.png" not in {p.name for p in paths.plots.values()}


def test_several_runs_compare_arms_across_runs(run_dir, bare_dir, tmp_path):
    paths = write_report([RunLogs.load(run_dir), RunLogs.load(bare_dir)], tmp_path / "out", baseline="bare/greedy")
    data = json.loads(paths.metrics.read_text())
    assert data["arms"] == [*(f"small/{a}" for a in ARMS), "bare/greedy"]
    assert data["baseline"] == "bare/greedy"
    assert {c["arm"] for c in data["comparisons"]} == {f"small/{a}" for a in ARMS}
    html = paths.html.read_text(encoding="utf-8")
    assert "small/greedy" in html and "bare/greedy" in html
    assert "unpaired" in html
    assert any(n.startswith("bare: ") for n in data["notes"])  # each run's notes, named


def test_runs_with_the_same_folder_name_get_distinct_labels(run_dir, tmp_path):
    twin = tmp_path / "elsewhere" / "small"
    shutil.copytree(run_dir, twin)
    paths = write_report([RunLogs.load(run_dir), RunLogs.load(twin)], tmp_path / "out", baseline="greedy")
    data = json.loads(paths.metrics.read_text())
    assert [r["name"] for r in data["runs"]] == ["small", "small#2"]
    assert data["baseline"] == "small/greedy" and "small#2/greedy" in data["arms"]
    twin_vs_base = next(c for c in data["comparisons"] if c["arm"] == "small#2/greedy" and c["metric"] == "days_active")
    assert twin_vs_base["diff"] == 0 and not twin_vs_base["significant"]  # the same logs: no difference


def test_unknown_baseline_is_a_one_line_value_error(run_dir, tmp_path):
    with pytest.raises(ValueError, match="--baseline 'nope'") as info:
        write_report([RunLogs.load(run_dir)], tmp_path / "out", baseline="nope")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the CLI
def test_cli_report_writes_into_the_run_folder(runner, run_dir, tmp_path):
    run = tmp_path / "small"
    shutil.copytree(run_dir, run)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    for name in ("report.html", "report.md", "metrics.json", "plots/retention.png"):
        assert (run / "report" / name).is_file(), name
    assert "report.html" in result.stdout


def test_cli_report_several_runs_writes_next_to_them(runner, run_dir, bare_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", str(run_dir), str(bare_dir), "--baseline", "greedy"])
    assert result.exit_code == 0, result.output
    parent = Path(os.path.commonpath([str(run_dir.parent), str(bare_dir.parent)]))
    data = json.loads((parent / "report" / "metrics.json").read_text())
    assert data["baseline"] == "small/greedy" and not (tmp_path / "report").exists()


def test_summary_leads_with_the_best_arm_per_headline_metric_against_the_incumbent(run_dir, tmp_path):
    paths = write_report([RunLogs.load(run_dir)], tmp_path / "out")  # no --baseline: greedy, the incumbent, not random
    data = json.loads(paths.metrics.read_text())
    assert data["baseline"] == "greedy"
    logs = RunLogs.load(run_dir)
    from recoworld.evaluation.metrics import user_table

    users = user_table(logs)
    md = paths.markdown.read_text(encoding="utf-8")
    summary = md.split("## Summary", 1)[1].split("**Headline metrics", 1)[0]
    assert "Baseline arm: greedy (the incumbent" in summary
    for metric, words in (("days_active", "keeps users longest"), ("watch_minutes", "has the most watch minutes"),
                          ("ctr", "has the best CTR")):
        best = users.groupby("arm", observed=True)[metric].mean().idxmax()
        assert f"- {best} {words}" in summary, (metric, best, summary)
    html = paths.html.read_text(encoding="utf-8")
    assert "What the headline metrics mean" in html and "Retention against CTR" in html
    assert (tmp_path / "out" / "plots" / "tradeoff.png").is_file()


def test_run_baseline_setting_and_the_first_arm_fallback(bare_dir, tmp_path):
    from recoworld.evaluation.report.answer import choose_baseline

    assert choose_baseline(None, None, "r", ["random", "linucb", "popular", "greedy"], False) == "greedy"
    assert choose_baseline(None, "linucb", "r", ["random", "linucb", "greedy"], False) == "linucb"
    assert choose_baseline("random", "linucb", "r", ["random", "linucb"], False) == "random"
    assert choose_baseline(None, None, "r", ["r/mmr", "r/popular", "s/greedy"], True) == "r/popular"
    assert choose_baseline(None, None, "r", ["mmr", "linucb"], False) == "mmr"
    with pytest.raises(ValueError, match="run.baseline 'nope'"):
        choose_baseline(None, "nope", "r", ["mmr"], False)


def test_cli_report_without_manifest_is_one_line_error(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error:") and "manifest" in lines[0], lines
    assert not (tmp_path / "empty" / "report").exists()


def test_cli_report_of_a_missing_folder_is_one_line_error(runner, tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and len(error_lines(result)) == 1


def test_cli_report_of_a_run_in_progress_says_so(runner, run_dir, tmp_path):
    run = tmp_path / "partial"
    shutil.copytree(run_dir, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"], manifest["days_completed"] = "running", 2
    manifest["files"] = [f for f in manifest["files"] if f["day"] < 2]
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert "in progress" in result.stdout
    data = json.loads((run / "report" / "metrics.json").read_text())
    assert any("in progress" in n and "2 of 4" in n for n in data["notes"])
    notes = (run / "report" / "report.html").read_text().split('<section id="notes">', 1)[1]
    assert "in progress" in notes
    assert "in progress" in (run / "report" / "report.md").read_text()
    assert {r["day"] for r in data["daily"]} == {0, 1}


def test_cli_report_missing_required_column_is_one_line_error(runner, run_dir, tmp_path):
    run = tmp_path / "broken"
    shutil.copytree(run_dir, run)
    for path in (run / "impressions").glob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["propensity"]), path)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "propensity" in lines[0], lines
    assert "Traceback" not in result.output


def test_cli_report_unknown_baseline_is_one_line_error(runner, run_dir, tmp_path):
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r"), "--baseline", "nope"])
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and "nope" in lines[0] and "greedy" in lines[0]


def test_cli_run_ends_with_the_report(runner, tmp_path):
    small = ["--users", "30", "--days", "2", "--set", "recommenders=[{name: greedy}, {name: random}]"]
    result = runner.invoke(app, ["run", "quickstart", *small, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "report" / "report.html").is_file()
    assert "report:" in result.stdout and "report.html" in result.stdout
    result = runner.invoke(app, ["run", "quickstart", *small, "--out", str(tmp_path / "b"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "b" / "report").exists()


# ------------------------------------------------------------------ a real browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _render(browser: str, page: Path, shot: Path, profile: Path) -> list[str]:
    """Screenshot ``page`` in headless Chromium; returns the console lines that report a problem."""
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
           "--window-size=1280,2000", "--virtual-time-budget=2000", page.resolve().as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Chromium logs page console messages as "...:INFO:CONSOLE:1] "msg", source: file:///... (1)" (the level
    # word varies by version); dbus, GPU and sandbox warnings on headless machines are other lines, ignored.
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return [line for line in console if "Uncaught" in line or "ERROR" in line or page.resolve().as_uri() in line]


@pytest.mark.timeout(600)
def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH (`apt-get install -y chromium`; .ci/run does)")
    # the check itself catches a broken page, so a silent pass means something
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>x</title></head>'
                      "<body><p>x</p><script>undefinedFunction();</script></body></html>")
    assert _render(browser, broken, tmp_path / "broken.png", tmp_path / "profile-broken")

    shot = tmp_path / "report.png"
    errors = _render(browser, report.html, shot, tmp_path / "profile")
    assert not errors, errors
    raw = shot.read_bytes()
    assert raw.startswith(PNG_SIGNATURE) and len(raw) > 10_000
