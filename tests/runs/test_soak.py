"""A year-long run: resident memory and open files stay flat after the first month (benchmarks/soak.py prints
both curves for 2,000 users; here 300 users, which keeps every day busy in a couple of minutes)."""

from __future__ import annotations

import os

import pytest

from recoworld.scenario import load_scenario
from recoworld.testing.soak import soak

DAYS = 365


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="samples memory and files from /proc")
def test_a_year_long_run_keeps_memory_and_open_files_flat_after_the_first_month(tmp_path):
    scenario = load_scenario("quickstart", {
        "users": {"n_users": 300}, "env": {"horizon_days": DAYS, "churn_window_days": DAYS + 35},
        "recommenders": [{"name": "greedy"}, {"name": "popular"}],
    })
    curve = soak(scenario, tmp_path / "run")
    assert len(curve.rss_mb) == DAYS
    assert min(curve.sessions[300:]) > 50  # the days stay busy to the end: users keep coming back
    base = sorted(curve.rss_mb[30:40])[5]
    assert curve.growth_mb() < max(20.0, 0.05 * base), curve.rss_mb[::30]  # flat within 5% (or 20 MB)
    assert abs(curve.slope_mb_per_100_days()) < 10.0, curve.rss_mb[::30]
    low, high = curve.files_range()
    assert high <= max(curve.files[:30]) + 1 and high - low <= 2, curve.files[::30]  # no descriptor left open
    print(f"soak: RSS {base:.0f} MB at day 30, {curve.growth_mb():+.1f} MB by day {DAYS}, "
          f"{curve.slope_mb_per_100_days():+.2f} MB/100 days; open files {low}-{high}")
