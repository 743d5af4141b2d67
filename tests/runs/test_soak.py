"""A year-long run: resident memory and open files stay flat after the first month (benchmarks/soak.py prints
both curves for 2,000 users; here 300 users, which keeps every day busy in a couple of minutes). The run lives
in a fresh process, so that what earlier tests left in this one (their files, their garbage) is not measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from recoworld.testing.soak import SoakCurve

DAYS = 365
SOAK = f"""
import dataclasses, json, sys
from recoworld.scenario import load_scenario
from recoworld.testing.soak import soak
scenario = load_scenario("quickstart", {{
    "users": {{"n_users": 300}}, "env": {{"horizon_days": {DAYS}, "churn_window_days": {DAYS + 35}}},
    "recommenders": [{{"name": "greedy"}}, {{"name": "popular"}}],
}})
print(json.dumps(dataclasses.asdict(soak(scenario, sys.argv[1]))))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="samples memory and files from /proc")
def test_a_year_long_run_keeps_memory_and_open_files_flat_after_the_first_month(tmp_path):
    done = subprocess.run([sys.executable, "-c", SOAK, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert done.returncode == 0, done.stderr[-2000:]
    curve = SoakCurve(**json.loads(done.stdout.splitlines()[-1]))
    assert len(curve.rss_mb) == DAYS
    assert min(curve.sessions[300:]) > 50  # the days stay busy to the end: users keep coming back
    base = sorted(curve.rss_mb[30:40])[5]
    assert curve.growth_mb() < max(20.0, 0.05 * base), curve.rss_mb[::30]  # flat within 5% (or 20 MB)
    assert abs(curve.slope_mb_per_100_days()) < 10.0, curve.rss_mb[::30]
    low, high = curve.files_range()
    assert high <= max(curve.files[:30]) + 1 and high - low <= 2, curve.files[::30]  # no descriptor left open
    print(f"soak: RSS {base:.0f} MB at day 30, {curve.growth_mb():+.1f} MB by day {DAYS}, "
          f"{curve.slope_mb_per_100_days():+.2f} MB/100 days; open files {low}-{high}")
