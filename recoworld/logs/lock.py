"""One run per folder: ``run.lock``, held by the operating system for as long as the run's process lives.

A run (``PopulationRun.run``, and ``recoworld run`` from before it touches the folder until its report is
written) locks ``run.lock`` in its folder with ``flock``. The kernel drops the lock when the process ends,
however it ends (SIGKILL too), so a second run into a live folder is refused in one line, and a lock whose
process is gone is taken over: the file, left behind by a killed run, still names that process, and the next
run says it is gone and proceeds. A clean end removes the file.

What the lock records (pid, host, boot id, PID namespace, the process's start time) is checked a second
time: a record naming a live process of this machine and PID namespace (the same start time, so not a
reused pid) is refused even when the lock was granted, for file systems that ignore ``flock``. A record
from another host or PID namespace cannot be checked from here; the lock itself is trusted. Assumed: a
folder shared between machines lives on a file system whose locks span them (NFSv4, or NFSv3 with lockd;
not a ``nolock`` mount), and containers that share a folder share the kernel (their locks meet).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field

LOCK_NAME = "run.lock"


class LockRecord(BaseModel):
    """Who holds (or last held) a run folder."""

    model_config = ConfigDict(extra="ignore")

    pid: int
    host: str = ""
    boot_id: str = Field("", description="This boot of the machine (a pid means nothing across reboots).")
    pid_namespace: str = Field("", description="The PID namespace the pid belongs to (containers have their own).")
    start_ticks: int = Field(-1, description="The process's start time in clock ticks after boot (tells a reused pid apart).")
    since: str = Field("", description="When the lock was taken (local time).")
    command: str = ""

    def describe(self) -> str:
        """Who holds the lock, for an error message: pid, host when it is another machine, and since when."""
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"pid {self.pid}{where}, since {self.since or 'an unknown time'}"


class RunFolderBusy(ValueError):
    """Another live run writes this folder (the message is one line naming it and the holder)."""


def _read_first_line(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.readline().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (start time in ticks after boot); -1 where there is no /proc or no such process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return -1


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def this_process() -> LockRecord:
    return LockRecord(
        pid=os.getpid(), host=socket.gethostname(), boot_id=_read_first_line("/proc/sys/kernel/random/boot_id"),
        pid_namespace=_pid_namespace(), start_ticks=_start_ticks(os.getpid()), since=time.strftime("%Y-%m-%d %H:%M:%S"),
        command=" ".join(sys.argv)[:300],
    )


def alive_here(record: LockRecord) -> bool:
    """Whether ``record`` names a live process other than this one on this machine, in this PID namespace
    (False when that cannot be known: another host, boot or namespace)."""
    me = this_process()
    if (record.host, record.boot_id, record.pid_namespace) != (me.host, me.boot_id, me.pid_namespace) or record.pid == me.pid:
        return False
    ticks = _start_ticks(record.pid)
    if ticks >= 0:
        return ticks == record.start_ticks
    try:
        os.kill(record.pid, 0)  # no /proc: whether the pid exists at all
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _record_of(fd: int) -> LockRecord | None:
    try:
        data = os.pread(fd, 65536, 0)
        return LockRecord.model_validate_json(data) if data.strip() else None
    except (OSError, ValueError):
        return None


class RunLock:
    """The held lock of one folder: ``stale`` is the record a killed run left behind (None if there was none)."""

    def __init__(self, folder: Path, fd: int, created: bool, stale: LockRecord | None) -> None:
        self.folder, self.fd, self.created, self.stale = folder, fd, created, stale
        self.depth = 1
        self.pid = os.getpid()

    def release(self) -> None:
        """Remove the file (while still holding the lock), then unlock; the folder too if the lock made it and it is empty."""
        path = self.folder / LOCK_NAME
        try:
            if _same_file(os.fstat(self.fd), path.stat()):
                path.unlink()
        except OSError:
            pass
        os.close(self.fd)  # closing the last descriptor drops the flock
        if self.created:
            try:
                self.folder.rmdir()  # only if empty: a refused or failed run leaves no folder it made
            except OSError:
                pass


_HELD: dict[str, RunLock] = {}  # this process's locks, by resolved folder: a run inside `recoworld run` re-enters
_HELD_GUARD = threading.Lock()


def _take(folder: Path) -> RunLock:
    """Lock ``folder``'s run.lock, creating the folder if needed; RunFolderBusy when a live run holds it."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"run.output: '{folder}' exists and is not a folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    for _ in range(20):  # the file can be removed by a holder between our open and our lock: open it again
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _record_of(fd)
            os.close(fd)
            raise RunFolderBusy(_busy(folder, record)) from None
        except OSError:
            os.close(fd)
            raise
        try:
            same = _same_file(os.fstat(fd), path.stat())
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        previous = _record_of(fd)
        if previous is not None and alive_here(previous):  # a file system that ignores flock: the record decides
            os.close(fd)
            raise RunFolderBusy(_busy(folder, previous))
        os.ftruncate(fd, 0)
        os.pwrite(fd, this_process().model_dump_json().encode(), 0)
        os.fsync(fd)
        return RunLock(folder, fd, created, previous)
    raise RunFolderBusy(f"run folder '{folder}': its lock file keeps changing; another run is starting there")


def _busy(folder: Path, record: LockRecord | None) -> str:
    holder = record.describe() if record is not None else "a process that has not written its name yet"
    return (f"run folder '{folder}' is in use by another run ({holder}); --overwrite and --resume are refused too "
            "while it runs: let it finish or stop it, or choose another folder with --out")


@contextmanager
def run_lock(folder: str | Path) -> Iterator[RunLock]:
    """Hold ``folder``'s lock for the block (re-entrant within one process); see the module docstring."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():
            held.depth += 1
        else:
            held = _HELD[key] = _take(folder)
    try:
        yield held
    finally:
        with _HELD_GUARD:
            held.depth -= 1
            if held.depth == 0:
                _HELD.pop(key, None)
                held.release()


def describe_stale(lock: RunLock) -> str | None:
    """A note for the user when the lock was taken over from a run that is gone, else None."""
    if lock.stale is None:
        return None
    return (f"the run that held '{lock.folder}' ({lock.stale.describe()}) is gone; its lock was taken over")


__all__ = ["LOCK_NAME", "LockRecord", "RunFolderBusy", "RunLock", "alive_here", "describe_stale", "run_lock", "this_process"]
