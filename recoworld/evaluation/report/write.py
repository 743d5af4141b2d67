"""The report's outputs: HTML, Markdown, metrics JSON and plots, written atomically."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recoworld import __version__
from recoworld.evaluation.data import RunLogs
from recoworld.evaluation.report.compute import Results, calibrations, compute_results
from recoworld.evaluation.report.format import jsonable
from recoworld.evaluation.report.model import LEVEL, N_BOOT, TEMPLATES, Bullets, ReportPaths, Section, Table
from recoworld.evaluation.report.sections import build_sections, draw_plots, run_notes
from recoworld.logs.durable import atomic_write_bytes


# ------------------------------------------------------------------ outputs
def _markdown(title: str, sections: list[Section]) -> str:
    def table(t: Table) -> str:
        esc = [[c.replace("|", "\\|") for c in row] for row in [t.columns, *t.rows]]
        align = ["---:" if n else "---" for n in t.numeric]
        lines = [f"**{t.caption}**", "", "| " + " | ".join(esc[0]) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
        return "\n".join(lines)

    by_id = {sec.id: sec for sec in sections}
    out = [f"# {title}", ""]
    for sid in ("summary", "comparison", "notes", "not_measured"):
        if sid not in by_id:
            continue
        sec = by_id[sid]
        out += [f"## {sec.title}", ""]
        if sec.empty:
            out += [f"_{sec.empty}_", ""]
        out += [*sec.paragraphs, ""] if sec.paragraphs else []
        out += [*(f"- {b}" for b in sec.bullets), ""] if sec.bullets else []
        for block in sec.blocks:
            if isinstance(block, Table):
                out += [table(block), ""]
            elif isinstance(block, Bullets):
                out += [*(f"- {b}" for b in block.items), ""]
    out.append("Plots, retention, diversity, creator and LLM sections: see report.html.")
    return "\n".join(out).rstrip() + "\n"


def _metrics_json(runs: Sequence[RunLogs], res: Results, base: str, notes: list[str]) -> dict[str, Any]:
    return jsonable({
        "runs": [{
            "name": name, "path": str(logs.path), "scenario": logs.scenario.name, "status": logs.manifest.status,
            "complete": logs.complete, "days_completed": logs.manifest.days_completed, "days_total": logs.manifest.days_total,
            "users": logs.scenario.users.n_users, "arms": logs.arms, "assignment": logs.scenario.run.assignment,
            "slate_size": logs.scenario.env.slate_size, "creators": logs.scenario.creators.count, "seed": logs.scenario.seed,
            "notes": logs.notes,
        } for name, logs in zip(res.run_names, runs)],
        "arms": res.labels,
        "baseline": base,
        "bootstrap": {"n_boot": N_BOOT, "level": LEVEL},
        "notes": notes,
        "summary": {arm: row for arm, row in res.summary.to_dict("index").items()},
        "comparisons": res.comparisons,
        "kaplan_meier": res.km,
        "daily": res.daily,
        "lorenz": {"item": res.lorenz_items, "creator": res.lorenz_creators},
        "creators": {"daily": res.creator_daily, "summary": res.creator_summary},
        "ndcg_retention_2x2": res.quadrants,
        "ope": res.ope,
        "llm": res.llm,
        "fidelity": {name: fit.model_dump() for name, fit in calibrations(runs, res.run_names).items()},
    })


def _render_html(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


PLOT_FILES = ("tradeoff.png", "retention.png", "engagement.png", "lorenz.png", "creators.png", "compliance.png")


def write_report(runs: list[RunLogs], out_dir: Path, baseline: str | None = None, seed: int = 0) -> ReportPaths:
    """Write ``report.html``, ``report.md``, ``metrics.json`` and ``plots/*.png`` for ``runs`` into ``out_dir``.

    ``baseline`` is the arm every other arm is compared with (default: the scenario's ``run.baseline``, else
    greedy or popular when run, else the first arm; with several runs ``<run>/<arm>``, or a bare arm of the first run). ``seed`` seeds the bootstrap. Raises a one-line
    ``ValueError`` for an unknown baseline.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("write_report: no run given")
    out_dir = Path(out_dir)
    res, base = compute_results(runs, baseline, seed)
    notes = run_notes(runs, res)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_dir = out_dir / "plots"
    for name in PLOT_FILES:  # a previous report's plots that this one may not redraw
        (plot_dir / name).unlink(missing_ok=True)
    figs = draw_plots(res, plot_dir)
    sections = build_sections(runs, res, base, notes, figs)
    title = f"RecoWorld report: {', '.join(res.run_names)}"
    html = _render_html({"title": title, "sections": sections, "version": __version__,
                         "subtitle": " · ".join(f"{r.scenario.name}: {r.scenario.users.n_users:,} users, "
                                                f"{r.manifest.days_completed}/{r.manifest.days_total} days, {r.manifest.status}"
                                                for r in runs)})
    paths = ReportPaths(out_dir, out_dir / "report.html", out_dir / "report.md", out_dir / "metrics.json", figs, notes)
    atomic_write_bytes(paths.html, html.encode("utf-8"))
    atomic_write_bytes(paths.markdown, _markdown(title, sections).encode("utf-8"))
    data = _metrics_json(runs, res, base, notes)
    atomic_write_bytes(paths.metrics, (json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8"))
    return paths
