"""Offline evaluation from run logs: metrics, arm comparisons with bootstrap intervals, off-policy
estimates and the HTML / Markdown / JSON report."""

from recoworld.evaluation.data import RunLogs

__all__ = ["RunLogs"]
