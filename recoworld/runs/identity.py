"""What identifies a run: the hash of its scenario that a resume must match (the fields in ``UNHASHED``
aside) and the changed fields named when it does not; how its users are split between arms; the
users table written beside its logs."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from recoworld.scenario import Scenario
from recoworld.users.profile import UserProfile


# Fields that do not change what is simulated, so a resume may differ in them: where the folder
# is (an absolute or relative --out), and the LLM budget caps (a budget stop resumes with a larger one).
UNHASHED = {"run": {"output"}, "llm": {"max_calls", "max_usd"}}


def scenario_sha256(scenario: Scenario) -> str:
    """Hash of the resolved scenario, without the fields in ``UNHASHED``."""
    return hashlib.sha256(scenario.model_dump_json(exclude=UNHASHED).encode()).hexdigest()


def scenario_changes(old: object, new: object, path: str = "") -> list[str]:
    """The fields that differ between two scenario dumps, as ``key.path: old -> new`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new), key=str)
                for c in scenario_changes(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in scenario_changes(a, b, f"{path}.{i}")]
    return [] if old == new else [f"{path or 'scenario'}: {_short(old)} -> {_short(new)}"]


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def split_arms(n: int, shares: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """(n,) arm per user: disjoint groups in proportion to ``shares`` (largest remainder), shuffled."""
    quota = np.asarray(shares, dtype=float) / np.sum(shares) * n
    counts = np.floor(quota).astype(int)
    counts[np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(shares)), counts)).astype(np.int64)


def users_table(profiles: Sequence[UserProfile]) -> pa.Table:
    rows = []
    for p in profiles:
        row = {"user": p.user_id, "segment": p.segment, "interests": ", ".join(p.interests), "dislikes": ", ".join(p.dislikes)}
        row.update({k: v for k, v in p.traits.model_dump().items()})
        rows.append(row)
    return pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
