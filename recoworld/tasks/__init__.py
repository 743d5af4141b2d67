"""Tasks: versioned definitions of what a score on RecoWorld means, their Gym ids, and scoring a policy
on held-out users (``recoworld evaluate``); the leaderboard is generated from the result files.

What lives here: ``definitions`` (the Task model and the registered tasks), ``worlds`` (a task's
scenario, or the world built from the user's MovieLens-100K), ``env`` (the Gym entry points),
``policies`` (POLICY -> something a task can serve), ``evaluate`` (serving, metrics, the normalised
score, the result file) and ``leaderboard`` (the page from the result files).

May import: ``recoworld.agents``, ``recoworld.env``, ``recoworld.runs``, ``recoworld.evaluation``,
``recoworld.users``; nothing imports it but the CLI. Names are re-exported lazily.
"""

from recoworld.lazy import lazy_exports

_EXPORTS = {
    "TASKS": "definitions",
    "Task": "definitions",
    "get_task": "definitions",
    "task_names": "definitions",
    "TaskResult": "evaluate",
    "evaluate_task": "evaluate",
    "PolicyError": "policy_errors",
    "resolve_policy": "policies",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
