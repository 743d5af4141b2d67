"""The disk fills up in the middle of a run: a clean stop with one line naming the disk, nothing half-written
left behind, and once there is room again ``--resume`` ends byte-identical to an undisturbed run.

Two ways to fill it: a write limit injected at the file-writing layer of ``recoworld.logs`` (every
machine), and a real size-limited tmpfs that the test mounts (where it may: root with CAP_SYS_ADMIN, as on
this project's machines and CI), filled by another process while ``recoworld run`` writes its days.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recoworld.logs import durable, folder
from recoworld.logs.disk import DiskFull
from recoworld.logs.folder import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario
from tests.runs.test_durability import folder_bytes

DAYS = 5
ARGS = ["--users", "300", "--days", str(DAYS), "--set", "recommenders=[{name: greedy}, {name: popular}]"]
SCENARIO = {"users": {"n_users": 300}, "env": {"horizon_days": DAYS},
            "recommenders": [{"name": "greedy"}, {"name": "popular"}]}


def live(out: Path, resume: bool = False) -> None:
    PopulationRun(load_scenario("quickstart", SCENARIO), output=out).run(resume=resume)


class WriteLimit:
    """Bytes the run folder may still be given; a write past them fails with ENOSPC as a full disk's does.
    ``written`` counts every byte the run wrote (its checkpoints and manifests again each day)."""

    def __init__(self, budget: float = float("inf")) -> None:
        self.budget, self.written = budget, 0

    def take(self, n: int) -> None:
        if self.written + n > self.budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += n


class _LimitedFile:
    def __init__(self, fh, limit: WriteLimit) -> None:
        self._fh, self._limit = fh, limit

    def write(self, data) -> int:
        self._limit.take(len(data))
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def limit_writes(monkeypatch, limit: WriteLimit) -> None:
    """Every file the run folder writes (Parquet days and tables, manifest, checkpoint, pickles) draws on ``limit``."""
    real_write_table = folder.pq.write_table

    def write_table(table, where, **kwargs):
        real_write_table(table, where, **kwargs)
        limit.take(os.path.getsize(where))  # the partial file stays, as after a real ENOSPC

    monkeypatch.setattr(folder.pq, "write_table", write_table)
    for module in (durable, folder):
        monkeypatch.setattr(module, "open", lambda *a, **k: _LimitedFile(open(*a, **k), limit), raising=False)


def test_a_full_disk_mid_run_stops_cleanly_and_resumes_byte_identical(tmp_path, monkeypatch):
    counted = WriteLimit()
    limit_writes(monkeypatch, counted)
    live(tmp_path / "whole")
    expected = folder_bytes(tmp_path / "whole")

    out = tmp_path / "full"
    limit = WriteLimit(budget=counted.written // 2)  # the disk fills half-way through what the run writes
    limit_writes(monkeypatch, limit)
    with pytest.raises(DiskFull) as err:
        live(out)
    message = str(err.value)
    assert "\n" not in message and message.startswith("disk full: no space left on the disk mounted at ")
    assert str(out) in message and "--resume" in message
    kept = RunFolder(out).read_manifest()
    assert 1 <= kept.days_completed < DAYS and kept.status == "running"
    assert not list(out.rglob("*.tmp")) and not (out / "run.lock").exists()  # nothing half-written, no lock left

    stopped_at, limit.budget = limit.written, float("inf")  # space returns
    live(out, resume=True)
    assert folder_bytes(out) == expected
    assert not list(out.glob("checkpoint*"))
    print(f"disk full: stopped after {kept.days_completed} of {DAYS} days at {stopped_at:,} of {counted.written:,} "
          "bytes; resumed byte-identical")


def test_the_command_says_disk_full_in_one_line_and_exits_resumable(runner, tmp_path, monkeypatch):
    from recoworld.cli import app

    counted = WriteLimit()
    limit_writes(monkeypatch, counted)
    assert runner.invoke(app, ["run", "quickstart", *ARGS, "--out", str(tmp_path / "whole"), "--no-report"]).exit_code == 0
    limit_writes(monkeypatch, WriteLimit(budget=counted.written // 2))
    result = runner.invoke(app, ["run", "quickstart", *ARGS, "--out", str(tmp_path / "full")])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 3, result.output
    assert len(lines) == 1 and lines[0].startswith("error: disk full: no space left on the disk mounted at "), lines
    assert "--resume" in lines[0]


# ------------------------------------------------------------------ a real full file system
def mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses more."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_real_tmpfs_filled_by_another_process_mid_run(runner, tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "64m"):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the injected write limit covers it")
    try:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        cmd = [sys.executable, "-m", "recoworld.cli", "run", "quickstart", *ARGS, "--out", "run", "--no-report"]
        (tmp_path / "ref").mkdir()
        subprocess.run(cmd, env=env, cwd=tmp_path / "ref", capture_output=True, timeout=300, check=True)
        expected = folder_bytes(tmp_path / "ref" / "run")  # the scenario it keeps names the folder: the same "run"
        out = disk / "run"
        proc = subprocess.Popen(cmd, env=env, cwd=disk, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        filled: list[Path] = []

        def fill_when_day_one_is_written() -> None:
            deadline = time.monotonic() + 240
            while not (out / "impressions" / "day=001.parquet").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            filled.append(fill(disk))

        filler = threading.Thread(target=fill_when_day_one_is_written)
        filler.start()
        _, stderr = proc.communicate(timeout=300)
        filler.join()
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert proc.returncode == 3, stderr
        assert len(lines) == 1 and lines[0].startswith(f"error: disk full: no space left on the disk mounted at {disk} "), lines
        assert "while writing run/" in lines[0], lines
        kept = RunFolder(out).read_manifest()
        assert 1 <= kept.days_completed < DAYS
        assert not list(out.rglob("*.tmp")) and not (out / "run.lock").exists()

        filled[0].unlink()  # space returns
        resumed = subprocess.run([*cmd, "--resume"], env=env, cwd=disk, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert folder_bytes(out) == expected
        print(f"tmpfs: stopped after {kept.days_completed} of {DAYS} days ({lines[0][7:90]}...); resumed byte-identical")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)
