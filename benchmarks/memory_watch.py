"""Run a command under a memory guard: the resident memory of its whole process tree is sampled
every 0.2 s, its peak reported, and the tree killed (SIGKILL) if it goes above a limit.

A shared machine must not meet the kernel's out-of-memory killer: the guard stops the experiment
first. Used by ``population_run.py``; on its own::

    python benchmarks/memory_watch.py --limit-gb 10 -- recoworld run creator_economy --users 30000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import psutil


@dataclass
class Watched:
    """How a watched command ended."""

    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    killed_at_limit: bool

    @property
    def peak_gb(self) -> float:
        return self.peak_rss_bytes / 2**30


def tree_rss(root: psutil.Process, extra: Sequence[int] = ()) -> int:
    """Resident bytes of ``root``, its descendants and the ``extra`` processes (each counted once)."""
    procs: dict[int, psutil.Process] = {}
    for pid in (root.pid, *extra):
        try:
            proc = root if pid == root.pid else psutil.Process(pid)
            procs.update({p.pid: p for p in (proc, *proc.children(recursive=True))})
        except psutil.Error:
            continue
    total = 0
    for p in procs.values():
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_watched(command: Sequence[str], limit_gb: float, env: dict[str, str] | None = None,
                also_watch: Callable[[], Sequence[int]] = tuple, stdout=None, interval: float = 0.2) -> Watched:
    """Run ``command`` in its own process group; kill the group if the tree (plus the processes ``also_watch()``
    lists, such as the Ray cluster the command uses) goes above ``limit_gb`` GiB."""
    limit = int(limit_gb * 2**30)
    start = time.perf_counter()
    proc = subprocess.Popen(list(command), env=env, stdout=stdout, stderr=subprocess.STDOUT if stdout else None,
                            start_new_session=True)
    root = psutil.Process(proc.pid)
    peak, killed = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while proc.poll() is None:
            rss = tree_rss(root, also_watch())
            peak = max(peak, rss)
            if rss > limit:
                killed.set()
                os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = proc.wait()
    watcher.join()
    return Watched(code, time.perf_counter() - start, peak, killed.is_set())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gb", type=float, default=10.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    done = run_watched(command, args.limit_gb)
    note = f" KILLED above {args.limit_gb:g} GiB" if done.killed_at_limit else ""
    print(f"exit {done.returncode}, wall {done.wall_seconds:.1f} s, peak resident {done.peak_gb:.2f} GiB{note}",
          file=sys.stderr)
    sys.exit(done.returncode if done.returncode >= 0 else 1)


if __name__ == "__main__":
    main()
