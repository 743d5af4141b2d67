"""Calibration and fidelity at the size of real logs: time, peak memory and recovery, against rows.

Ground-truth logs (``recoworld.users.calibration.write_ground_truth``: 120 interactions per user, 600
items) of each size are written once into the data cache; ``recoworld calibrate`` (and, with
``--fidelity``, ``recoworld fidelity``) runs on each in a child process under the memory guard of
``memory_watch.py``, one thread, its stage lines passed through. Printed per size: wall time, peak
resident memory, the recovered satiation and fatigue weights against the truth (the tolerances of
tests/users/test_calibration.py) and the AUC checks; then the exponent of time against rows (least
squares on log time vs log rows) and, with ``--ml100k``, the same measurements on the real ML-100K.

    OMP_NUM_THREADS=1 python benchmarks/calibration_scale.py --sizes 1e6,3e6 --fidelity 1e6 --ml100k
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from memory_watch import run_watched  # noqa: E402
from ml100k import cache_dir, fetch_ml100k  # noqa: E402

from recoworld.progress import reporting, stage  # noqa: E402
from recoworld.users.calibration import GROUND_TRUTH, load_calibration, write_ground_truth  # noqa: E402

ROWS_PER_USER = 8 * 15  # write_ground_truth's sessions x items per session
TOLERANCE = {"satiation": 0.25, "fatigue": 0.35}  # relative, as in the recovery test


def ground_truth_log(rows: int) -> Path:
    """The cached ground-truth folder with ``rows`` interactions (written the first time)."""
    users = int(np.ceil(rows / ROWS_PER_USER))
    folder = cache_dir() / f"ground-truth-{users}-users"
    if not (folder / "ratings.csv").is_file() or not (folder / "done").is_file():
        with stage(f"writing a ground-truth log of {users * ROWS_PER_USER:,} interactions"):
            write_ground_truth(folder, n_users=users)
            (folder / "done").write_text("ok\n")
    return folder


def one_thread_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: "1" for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    return env


def run_command(args: list[str], limit_gb: float) -> tuple[float, float]:
    """(wall seconds, peak GiB) of ``recoworld <args>`` in a child process; fails loudly if it did."""
    done = run_watched([sys.executable, "-m", "recoworld.cli", *args], limit_gb, env=one_thread_env())
    if done.returncode != 0:
        raise SystemExit(f"recoworld {args[0]} failed (exit {done.returncode}{', killed at the memory limit' if done.killed_at_limit else ''})")
    return done.wall_seconds, done.peak_gb


def recovery(path: Path) -> list[str]:
    """The recovery checks on a calibration file of a ground-truth log."""
    fit = load_calibration(path).result
    w, auc = fit.weights, fit.fidelity.auc
    lines = []
    for name, tol in TOLERANCE.items():
        got, true = getattr(w, name), GROUND_TRUTH[name]
        lines.append(f"{name} {got:+.3f} (true {true:+.3f}, within {tol:.0%}: {'pass' if abs(got - true) <= tol * abs(true) else 'FAIL'})")
    ok = auc["simulator"] > auc["popularity_rate"] + 0.05 and auc["simulator"] > auc["mf"]
    lines.append(f"AUC simulator {auc['simulator']:.3f}, MF {auc['mf']:.3f}, popularity {auc['popularity_rate']:.3f} "
                 f"(simulator > MF and > popularity + 0.05: {'pass' if ok else 'FAIL'})")
    return lines


def exponent(rows: list[int], seconds: list[float]) -> float:
    """Slope of log time against log rows (least squares)."""
    return float(np.polyfit(np.log(rows), np.log(seconds), 1)[0])


def load() -> str:
    """The machine's load averages over 1, 5 and 15 minutes (the benchmark shares its cores)."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e6,3e6", help="Interactions per ground-truth log, comma-separated.")
    parser.add_argument("--fidelity", default="", help="Sizes on which to also run the whole fidelity suite.")
    parser.add_argument("--ml100k", action="store_true", help="Also calibrate the real ML-100K.")
    parser.add_argument("--limit-gb", type=float, default=8.0, help="Memory guard of each child process.")
    args = parser.parse_args()
    sizes = [int(float(v)) for v in args.sizes.split(",") if v.strip()]
    fidelity = {int(float(v)) for v in args.fidelity.split(",") if v.strip()}
    print(f"load average at the start (1, 5, 15 min): {load()}")
    results: list[str] = []
    rows_done, seconds_done = [], []
    with tempfile.TemporaryDirectory() as tmp, reporting():
        for size in sizes:
            folder = ground_truth_log(size)
            rows = int(np.ceil(size / ROWS_PER_USER)) * ROWS_PER_USER
            out = Path(tmp) / f"cal-{rows}.parquet"
            seconds, peak = run_command(["calibrate", str(folder), "--out", str(out)], args.limit_gb)
            rows_done.append(rows)
            seconds_done.append(seconds)
            results.append(f"{rows:,} interactions: calibrate {seconds:.0f} s, peak {peak:.2f} GiB; " + "; ".join(recovery(out)))
            if size in fidelity:
                seconds, peak = run_command(["fidelity", str(folder), "--json", str(Path(tmp) / "fidelity.json")], args.limit_gb)
                results.append(f"{rows:,} interactions: fidelity (whole suite, SASRec included) {seconds:.0f} s, peak {peak:.2f} GiB")
        if args.ml100k:
            out = Path(tmp) / "ml100k.parquet"
            seconds, peak = run_command(["calibrate", str(fetch_ml100k()), "--out", str(out)], args.limit_gb)
            auc = load_calibration(out).result.fidelity.auc
            results.append(f"ML-100K: calibrate {seconds:.0f} s, peak {peak:.2f} GiB; AUC simulator {auc['simulator']:.3f}, MF {auc['mf']:.3f}")
    print("\n".join(["", *results]))
    if len(rows_done) > 1:
        print(f"exponent of calibrate time against rows: {exponent(rows_done, seconds_done):.2f} (target <= 1.1)")
    print(f"load average at the end (1, 5, 15 min): {load()}")


if __name__ == "__main__":
    main()
