"""A task's training env: RecoWorld-v0 in the task's world, registered under the task's Gym id.

``gym.make("RecoWorld-Retention-v1")`` (after ``import recoworld``) serves the task's users with the
task's reward and horizon; ``reset(seed=s)`` refuses the held-out seeds (100,000 and up), which only
``recoworld evaluate`` serves. ``gym.make_vec(..., vectorization_mode="vector_entry_point")`` gives
the batched vector env with the same check. The ``ml100k`` task takes ``data=FOLDER`` (default
``$RECOWORLD_DATA/ml-100k``).

A population task's env serves its users one at a time, without the creators, who publish and
quit only in population runs: train there, then ``recoworld evaluate`` scores the policy in the
population.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from recoworld.env.single import RecoWorldEnv
from recoworld.env.vector import RecoWorldVectorEnv
from recoworld.tasks.definitions import HELD_OUT_START, get_task
from recoworld.tasks.worlds import task_world


def check_training_seed(task_id: str, seed: int | None) -> None:
    """One ``ValueError`` line when ``seed`` is a held-out seed of the task."""
    if seed is not None and int(seed) >= HELD_OUT_START:
        raise ValueError(f"seed {seed}: seeds from {HELD_OUT_START:,} are task {task_id}'s held-out users, served only by "
                         f"recoworld evaluate; train on seeds 0..49,999 (validation 50,000..99,999)")


class TaskEnv(RecoWorldEnv):
    """RecoWorld-v0 in a task's world; ``reset`` refuses held-out seeds."""

    def __init__(self, task: str, data: str | Path | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        self.task = get_task(task)
        scenario, config = task_world(self.task, data)
        super().__init__(scenario, config, render_mode, **kwargs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset, refusing a seed of the task's held-out users (only training seeds may train)."""
        check_training_seed(self.task.id, seed)
        return super().reset(seed=seed, options=options)


class TaskVectorEnv(RecoWorldVectorEnv):
    """The batched vector env in a task's world; ``reset`` refuses held-out seeds."""

    def __init__(self, num_envs: int = 1, task: str = "", data: str | Path | None = None, **kwargs: Any) -> None:
        self.task = get_task(task)
        scenario, config = task_world(self.task, data)
        super().__init__(num_envs, scenario, config, **kwargs)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-env, refusing any of their seeds (``seed + i``, or the list given) that belongs to the
        held-out users."""
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            for s in seeds:
                check_training_seed(self.task.id, s)
        return super().reset(seed=seed, options=options)
