"""Offline evaluation from run logs (import: ``recoworld.evaluation``).

What lives here: reading a run folder (``data.RunLogs``), metrics, arm comparisons with bootstrap
intervals (``compare``), off-policy estimates (``ope``), plots and the HTML / Markdown / JSON
report (``report``).

May import: ``recoworld.logs`` (the run folder and its schema), ``recoworld.stats``, ``recoworld.scenario``, ``recoworld.progress``, ``recoworld.world``
(catalog), pandas, matplotlib, jinja2; never the runner or the env. Names below are re-exported
lazily.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {"RunLogs": "data"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
