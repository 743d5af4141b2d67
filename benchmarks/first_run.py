"""A newcomer's first run: a fresh clone, a new venv, `make run` (pip's cache warm, as on CI).

Clones the repository's committed HEAD into a temporary folder and runs `make run` there with
timestamps, so the core install (venv, pip, the core dependencies) and the first run (numba
compiling the kernels, the quickstart scenario, the report) are timed apart; then `make run` again,
as a returning user runs it. Prints the three times against the 3-minute target and the machine's load.

    python benchmarks/first_run.py [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 180.0


def timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    """Run ``cmd`` in ``cwd``, its output appended to ``log``; the wall time in seconds (a failure raises)."""
    start = time.perf_counter()
    with log.open("a") as out:
        subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="recoworld-first-run-"))
    clone, log = folder / "recoworld", folder / "make.log"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        load = os.getloadavg()[0]
        install = timed(["make", "core"], clone, env, log)
        first = timed(["make", "run"], clone, env, log)
        again = timed(["make", "run"], clone, env, log)
    finally:
        if args.keep:
            print(f"clone kept in {clone} (make's output: {log})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    total = install + first
    print(f"fresh clone, new venv, pip's cache warm (load average {load:.1f} when it started, {os.cpu_count()} cores):")
    print(f"  make run, first time:  {total:6.1f} s  = core install {install:.1f} s + first run {first:.1f} s "
          f"(kernels compiled, quickstart, report); {total / TARGET_SECONDS:.2f}× the {TARGET_SECONDS:.0f} s target")
    print(f"  make run, again:       {again:6.1f} s")


if __name__ == "__main__":
    main()
