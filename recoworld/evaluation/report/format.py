"""Numbers and tables as the report shows them; values as JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recoworld.evaluation.report.model import DASH, METRICS, Table


# ------------------------------------------------------------------ formatting
def fmt(value: Any, kind: str, signed: bool = False) -> str:
    """A number for a table cell; NaN / None become a dash."""
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not math.isfinite(float(value))):
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    return _number(float(value), kind, signed).replace("-", "\u2212")  # a true minus, as in the statements


def _number(v: float, kind: str, signed: bool) -> str:
    sign = "+" if signed else ""
    if kind == "int":
        return f"{v:{sign},.0f}"
    if kind == "pct":
        return f"{v * 100:{sign}.1f} pp" if signed else f"{v:.1%}"
    if kind == "usd":
        return f"{'+' if signed and v >= 0 else ''}{'-' if v < 0 else ''}${abs(v):,.4f}"
    digits = {"f1": 1, "f2": 2, "f3": 3}.get(kind, 3)
    return f"{v:{sign}.{digits}f}"


def title_of(metric: str) -> str:
    return METRICS.get(metric, (metric.replace("_", " "), "f3"))[0]


def kind_of(metric: str) -> str:
    return METRICS.get(metric, (metric, "f3"))[1]


def metric_table(frame: pd.DataFrame, metrics: Sequence[str], caption: str, key: str = "arm") -> Table:
    """Rows = arms (``frame`` indexed or keyed by ``key``), columns = the metrics present in ``frame``."""
    frame = frame.reset_index() if key not in frame.columns else frame
    present = [m for m in metrics if m in frame.columns]
    rows = [[str(r[key]), *(fmt(r[m], kind_of(m)) for m in present)] for r in frame.to_dict("records")]
    return Table(caption, [key, *(title_of(m) for m in present)], rows, [False, *([True] * len(present))])


def jsonable(value: Any) -> Any:
    """Plain JSON types: NaN and infinities → None, numpy scalars → Python, frames → records."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict("records")]
    if isinstance(value, pd.Series):
        return jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Path):
        return str(value)
    return str(value)
