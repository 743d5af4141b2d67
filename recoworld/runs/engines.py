"""Where shard-days run: in this process (``local``) or as Ray tasks (``ray``).

Both call :func:`recoworld.runs.shard.run_shard_day` with the same arguments, so the same scenario
and seed give the same logs on either engine. A shard-day is a function of its arguments alone, so
a Ray task whose worker process dies (killed, out of memory, its node lost) is run again by Ray
(``TASK_RETRIES``) and gives the same result.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

from recoworld.agents.protocol import Recommender
from recoworld.runs.shard import ShardDay, own_arrays, run_shard_day

Job = tuple[Any, ...]  # the arguments of run_shard_day
TASK_RETRIES = 3  # runs of a shard-day after its worker died; an exception raised by the task is not retried


class LocalEngine:
    """Shard-days one after another in this process (the compiled kernel still uses every core)."""

    name = "local"

    def recommenders_for(self, recommenders: dict[int, Recommender], n_shards: int) -> dict[int, Recommender]:
        """What a shard serves with: the recommenders themselves when there is one shard, else copies."""
        return recommenders if n_shards == 1 else copy.deepcopy(recommenders)

    def run_shard_days(self, jobs: Sequence[Job], groups: Sequence[int]) -> list[ShardDay]:
        """Every job's shard-day, one after another in this process."""
        return [run_shard_day(*job) for job in jobs]


class RayEngine:
    """Shard-days as Ray tasks; users are sharded, creators and recommender state stay in the driver."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("run.engine: 'ray' needs the ray package (pip install 'recoworld[ray]')") from None
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        self._ray = ray
        self._task = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(_writable_shard_day)

    def recommenders_for(self, recommenders: dict[int, Recommender], n_shards: int) -> dict[int, Recommender]:
        """The recommenders each shard starts from: the same objects, which Ray serialises into every task."""
        return recommenders  # serialised for each task: every shard gets its own copy

    def run_shard_days(self, jobs: Sequence[Job], groups: Sequence[int]) -> list[ShardDay]:
        """Run each job's shard-day as a Ray task (each world's catalog and recommenders put in the object store
        once); results in job order."""
        shared: dict[int, Any] = {}  # one object-store copy of each world's catalog and recommenders
        refs = []
        for (shard, recs, catalog, *rest), group in zip(jobs, groups):
            if group not in shared:
                shared[group] = (self._ray.put(recs), self._ray.put(catalog))
            recs_ref, catalog_ref = shared[group]
            refs.append(self._task.remote(shard, recs_ref, catalog_ref, *rest))
        return self._ray.get(refs)


def _writable_shard_day(shard, recommenders, catalog, *rest) -> ShardDay:
    """:func:`run_shard_day` in a Ray task, whose arguments arrive zero-copy with read-only arrays."""
    for part in (shard, catalog, *recommenders.values()):
        own_arrays(part)
    return run_shard_day(shard, recommenders, catalog, *rest)


def make_engine(name: str, address: str | None = None) -> LocalEngine | RayEngine:
    if name == "local":
        return LocalEngine()
    if name == "ray":
        return RayEngine(address)
    raise ValueError(f"run.engine: unknown engine '{name}' (local or ray)")
