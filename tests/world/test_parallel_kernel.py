"""The threaded kernel gives the serial kernel's results, with two threads really running.

The suite pins numba to one thread (tests/conftest.py), which runs ``prange`` serially; this test
runs a child process with two threads so the parallel step is exercised as in a population run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import numpy as np
import numba
import recoworld.world.step as step
from recoworld.agents.baselines import GreedyRelevance
from recoworld.runs.runner import run_population
from recoworld.scenario import load_scenario

assert numba.get_num_threads() == 2
step_bound = step.step_bound
calls = []


def counted(parallel, state, rows, *args):
    if parallel:  # the step runs world_step_parallel
        calls.append(len(rows))
    return step_bound(parallel, state, rows, *args)


step.step_bound = counted
config = {"seed": 4, "users": {"n_users": 1000}, "catalog": {"synthetic": {"n_items": 800}},
          "env": {"num_candidates": 40, "slate_size": 5, "horizon_days": 3}, "recommenders": [{"name": "greedy"}]}
out = {}
for name, batch in (("parallel", 256), ("serial", 10**9)):
    step.PARALLEL_BATCH = batch
    res = run_population(load_scenario(config), GreedyRelevance())
    out[name] = {k: np.asarray(v).tolist() for k, v in res.totals.items()}
    out[name + "_threaded_steps"] = len(calls)
    calls.clear()
print(json.dumps(out))
"""


def test_two_threads_step_users_exactly_as_one():
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["parallel_threaded_steps"] > 0 and out["serial_threaded_steps"] == 0
    assert out["parallel"]["click"] and sum(out["parallel"]["click"]) > 0
    assert out["parallel"] == out["serial"]
