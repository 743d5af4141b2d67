"""Two runs into one folder: the second is refused in one line (with --overwrite and --resume too) and the
first finishes as if alone; a lock left by a SIGKILLed run names a process that is gone, and the next run
takes it over and proceeds."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recoworld.cli import app
from recoworld.logs.lock import LOCK_NAME, LockRecord, RunFolderBusy, run_lock, this_process
from recoworld.logs.durable import KILL_ENV
from recoworld.logs.folder import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import load_scenario
from tests.runs.test_durability import folder_bytes

DAYS = 4
ARGS = ["--users", "1000", "--days", str(DAYS), "--set", "recommenders=[{name: greedy}, {name: popular}]", "--no-report"]
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "recoworld.cli", "run", "quickstart", *ARGS, "--out", "run", *extra]


def every_file(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def reference(runner, tmp_path: Path, monkeypatch) -> dict[str, str]:
    """An undisturbed run's files, written as ``run`` in its own folder (the scenario it keeps names the folder)."""
    (tmp_path / "ref").mkdir()
    monkeypatch.chdir(tmp_path / "ref")
    assert runner.invoke(app, ["run", "quickstart", *ARGS, "--out", "run"]).exit_code == 0
    return folder_bytes(tmp_path / "ref" / "run")


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"the run ended early: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def freeze(proc: subprocess.Popen, seconds: float = 10) -> None:
    """SIGSTOP ``proc`` and wait until every thread of it has stopped: the signal is only queued when ``kill`` returns,
    and a thread running on the other core (the main one, or a writer) goes on for a moment, long enough to be caught
    mid-checkpoint."""
    os.kill(proc.pid, signal.SIGSTOP)
    tasks, deadline = Path(f"/proc/{proc.pid}/task"), time.monotonic() + seconds
    if not tasks.exists():  # no /proc: give the signal time to land
        time.sleep(0.5)
        return

    def states() -> set[str]:
        found = set()
        for stat in tasks.glob("*/stat"):
            try:
                found.add(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
                pass
        return found

    while not states() <= {"T", "t"}:
        assert time.monotonic() < deadline, f"process {proc.pid} did not stop: its threads are {states()}"
        time.sleep(0.001)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_second_run_into_a_live_folder_is_refused_and_the_first_finishes_as_if_alone(runner, tmp_path, monkeypatch):
    expected = reference(runner, tmp_path, monkeypatch)
    live = tmp_path / "live"
    live.mkdir()
    monkeypatch.chdir(live)
    first = subprocess.Popen(command(), cwd=live, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(live / "run" / "impressions" / "day=001.parquet", first)
        freeze(first)  # frozen mid-run, its lock held: every attempt below meets a live run
        before = every_file(live / "run")
        holder = f"is in use by another run (pid {first.pid}, since "

        overwrite = subprocess.run(command("--overwrite"), cwd=live, env=ENV, capture_output=True, text=True, timeout=120)
        assert overwrite.returncode == 2 and holder in one_error_line(overwrite.stderr), overwrite.stderr
        for extra in ([], ["--resume"]):
            again = runner.invoke(app, ["run", "quickstart", *ARGS, "--out", "run", *extra])
            assert again.exit_code == 2 and holder in one_error_line(again.stderr), again.output
            assert one_error_line(again.stderr).startswith("error: run folder 'run' is in use by another run")
        with pytest.raises(RunFolderBusy, match=f"pid {first.pid}"):  # the library refuses too
            PopulationRun(load_scenario("quickstart", {"run": {"output": "run"}})).run(resume=True)
        assert every_file(live / "run") == before  # nothing touched

        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
    assert folder_bytes(live / "run") == expected and not (live / "run" / LOCK_NAME).exists()


def test_the_lock_of_a_sigkilled_run_is_taken_over_by_the_next_run(runner, tmp_path, monkeypatch):
    expected = reference(runner, tmp_path, monkeypatch)
    live = tmp_path / "live"
    live.mkdir()
    monkeypatch.chdir(live)
    killed = subprocess.run(command(), cwd=live, env={**ENV, KILL_ENV: "40"}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = LockRecord.model_validate_json((live / "run" / LOCK_NAME).read_text())
    assert left.pid != os.getpid() and RunFolder(live / "run").read_manifest().days_completed < DAYS

    resumed = runner.invoke(app, ["run", "quickstart", *ARGS, "--out", "run", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"note: the run that held 'run' (pid {left.pid}, since {left.since}) is gone; its lock was taken over" in resumed.stdout
    assert folder_bytes(live / "run") == expected and not (live / "run" / LOCK_NAME).exists()


# ------------------------------------------------------------------ the record, where flock cannot help
def sleeper() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{proc.pid}/stat").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def record_of(proc: subprocess.Popen, **changes) -> LockRecord:
    ticks = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return this_process().model_copy(update={"pid": proc.pid, "start_ticks": ticks, **changes})


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_record_naming_a_live_process_here_is_refused_even_when_flock_is_granted(tmp_path):
    """A file system that ignores flock: the record is checked against this machine's processes."""
    proc = sleeper()
    alive = record_of(proc)
    try:
        (tmp_path / LOCK_NAME).write_text(alive.model_dump_json())
        with pytest.raises(RunFolderBusy, match=f"pid {proc.pid}, since "):
            with run_lock(tmp_path):
                pass
        # a reused pid (another start time), and a record from another host or PID namespace, are not that run
        for other in (record_of(proc, start_ticks=1), record_of(proc, host="elsewhere"), record_of(proc, pid_namespace="pid:[1]")):
            (tmp_path / LOCK_NAME).write_text(other.model_dump_json())
            with run_lock(tmp_path) as held:
                assert held.stale == other
    finally:
        proc.kill()
        proc.wait()
    (tmp_path / LOCK_NAME).write_text(alive.model_dump_json())  # its process is gone now
    with run_lock(tmp_path) as held:
        assert held.stale == alive
        with run_lock(tmp_path):  # re-entrant in one process (`recoworld run` holds it around the runner's own)
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_refused_command_leaves_no_folder_it_made(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "quickstart", *ARGS, "--out", "nothing-here", "--resume"])
    assert result.exit_code == 2 and "holds no RecoWorld run to resume" in result.stderr
    assert not (tmp_path / "nothing-here").exists()
