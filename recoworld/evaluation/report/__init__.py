"""The run report: one self-contained HTML file, a Markdown summary, a metrics JSON and the PNG plots.

``write_report(runs, out_dir)`` computes every metric once (``recoworld.evaluation.metrics``), compares
each arm with a baseline arm by bootstrap (``recoworld.evaluation.compare``), draws the plots
(``recoworld.evaluation.plots``) and renders ``templates/report.html.j2``. The HTML embeds its CSS
and its plots (base64 PNG), links nothing outside itself and needs no JavaScript. Every number the
HTML shows is in ``metrics.json`` (NaN as ``null``). With several run folders the arms are labelled
``<run>/<arm>`` and compared across runs (unpaired).

A section with nothing to show says why (no creators, no instruction voiced, no LLM in use, no
off-policy target logged); what the logs lack (a run still in progress, a missing file) is listed
in the notes section and in the Markdown.

Modules: ``model`` (what the template renders), ``format``, ``compute`` (every figure once),
``sections`` and ``write`` (``write_report``). Names below are re-exported lazily.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("SECTIONS", "METRICS", "NO_OPE", "LEVEL", "N_BOOT", "Table", "Plot", "Bullets", "Section", "ReportPaths"), "model"),
    **dict.fromkeys(("fmt", "kind_of", "title_of", "metric_table", "jsonable"), "format"),
    "write_report": "write",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
