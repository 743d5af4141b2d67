"""Soak: a population run of 2,000 users × 365 days with its logs and a checkpoint every day; prints the
resident memory and the open files of the process after each day (every ``--every`` days, and the first
month day by day at its start), then how flat both stay after the first month.

The users never churn (``env.churn_window_days`` beyond the horizon), so the days stay busy to the end; the
sessions column shows it. Two arms (greedy, popular) on the quickstart world.

    python benchmarks/soak.py [--users 2000] [--days 365] [--every 10] [--arms greedy,popular]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from recoworld.progress import reporting, stage
from recoworld.scenario import load_scenario
from recoworld.testing.soak import soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--arms", default="greedy,popular")
    args = parser.parse_args()
    scenario = load_scenario("quickstart", {
        "users": {"n_users": args.users},
        "env": {"horizon_days": args.days, "churn_window_days": args.days + 35},
        "recommenders": [{"name": name} for name in args.arms.split(",")],
    })
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, reporting():
        with stage(f"soak: {args.users:,} users × {args.days} days", total=args.days) as progress:
            curve = soak(scenario, Path(tmp) / "run", lambda day, c: progress.advance())
        files_on_disk = sum(1 for p in (Path(tmp) / "run").rglob("*") if p.is_file())
    wall = time.perf_counter() - start
    print(f"soak: {args.users:,} users × {args.days} days × {len(scenario.recommenders)} arms, quickstart world, "
          f"logs and a checkpoint every day ({files_on_disk:,} files written), {wall:.0f} s")
    print(f"{'day':>5} {'RSS MB':>8} {'open files':>11} {'sessions':>9}")
    shown = sorted({0, 1, 2, 5, 10, 20, 29, 30, *range(0, args.days, args.every), args.days - 1})
    for day in shown:
        if day < len(curve.rss_mb):
            print(f"{day:5d} {curve.rss_mb[day]:8.0f} {curve.files[day]:11d} {curve.sessions[day]:9,d}")
    low, high = curve.files_range()
    print(f"RSS after the first month: day 30-39 median {sorted(curve.rss_mb[30:40])[5]:.0f} MB, growth to the last "
          f"10 days {curve.growth_mb():+.1f} MB, slope {curve.slope_mb_per_100_days():+.2f} MB per 100 days; "
          f"max {max(curve.rss_mb[30:]):.0f} MB")
    print(f"open files after the first month: {low}-{high} (first month: {min(curve.files[:30])}-{max(curve.files[:30])})")


if __name__ == "__main__":
    main()
