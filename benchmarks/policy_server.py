"""``recoworld serve-policy`` on this machine: /act latency and throughput, and evaluate via URL vs in process.

Starts ``recoworld serve-policy POLICY`` in a child process on a free loopback port (stopped at the end, or
after ``--life`` seconds by itself), then:

1. ``--calls`` sequential /act requests for one held-out user's view of task instruction-following-v1
   (observation + numeric view, as ``recoworld evaluate URL`` sends them): median and p90 latency, calls/s;
2. the task's serving code on ``--users`` held-out users, in process and through the URL: wall seconds
   each, and whether every per-user total is identical.

Prints the load average (``/proc/loadavg``) before and after: the figures depend on it.

Usage: python benchmarks/policy_server.py [--policy greedy --calls 300 --users 100]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(policy: str, port: int, life: float) -> subprocess.Popen:
    code = ("import sys, threading, os; threading.Timer(float(sys.argv[1]), lambda: os._exit(0)).start(); "
            "from recoworld.cli import app; app(sys.argv[2:])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(life), "serve-policy", policy, "--port", str(port)])
    import httpx

    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/info", timeout=1.0)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise SystemExit(f"serve-policy exited with {proc.returncode}")
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("serve-policy did not start within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="greedy")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--life", type=float, default=1800.0, help="Seconds after which the server stops by itself.")
    args = parser.parse_args()

    from recoworld.agents.rl.evaluation import gym_env
    from recoworld.tasks import evaluate as E
    from recoworld.tasks.definitions import get_task
    from recoworld.tasks.policies import resolve_policy
    from recoworld.tasks.worlds import task_world

    task = get_task("instruction-following-v1")
    print(f"load before: {_load()} (1, 5, 15 min); {os.cpu_count()} cores")
    port = _free_port()
    proc = _start(args.policy, port, args.life)
    url = f"http://127.0.0.1:{port}"
    try:
        scenario, config = task_world(task, None)
        env = gym_env(scenario, {**config, "env": {**config.get("env", {}), "action_mode": "slate"}})
        env.reset(seed=task.held_out_seeds.start)
        view = env.unwrapped.sim.view(slice(None), with_text=True)
        policy = resolve_policy(url, task)
        served = policy.recommender.base
        served.slate(view)  # sends the catalog once
        times = []
        for _ in range(args.calls):
            t = time.perf_counter()
            served.slate(view)
            times.append(time.perf_counter() - t)
        policy.close()
        env.close()
        med, p90 = statistics.median(times), statistics.quantiles(times, n=10)[-1]
        print(f"/act ({args.policy}, 1 user, {view.candidates.shape[1]} candidates, slate {view.slate_size}): "
              f"median {med * 1e3:.2f} ms, p90 {p90 * 1e3:.2f} ms, {1 / statistics.mean(times):.0f} calls/s sequential")

        seeds = range(task.held_out_seeds.start, task.held_out_seeds.start + args.users)
        t = time.perf_counter()
        here = E.serve(resolve_policy(args.policy, task), task, seeds)[0]
        t_here = time.perf_counter() - t
        t = time.perf_counter()
        remote = resolve_policy(url, task)
        there = E.serve(remote, task, seeds)[0]
        remote.close()
        t_there = time.perf_counter() - t
        steps = int(here["steps"].sum())
        print(f"{args.users} held-out users ({steps} slates): in process {t_here:.1f} s, via URL {t_there:.1f} s "
              f"(+{(t_there - t_here) / steps * 1e3:.2f} ms a slate); identical totals: {here.equals(there)}")
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"load after: {_load()}")


if __name__ == "__main__":
    main()
