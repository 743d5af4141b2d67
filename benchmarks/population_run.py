"""Whole population runs as an analyst runs them, report included: ``creator_economy`` (parametric users
× 30 days × 3 arms, 300 creators, Parquet logs and a checkpoint every day, then the report written from
the logs), at several sizes, each in a child process under a memory guard.

For each size it prints the wall time of the run and of the report, their sum against the five-minute
target, their CPU seconds (the run's main thread apart: on a quiet machine it sets the run's wall time), the
peak resident memory of the whole process tree (and of the report alone) against the 8 GiB target, the
impressions logged, and the run's user-steps/s as a ratio to CartPole-v1 steps/s measured
in this process; with several sizes, how each figure grew from the smallest to the largest. The guard
kills a child above ``--limit-gb`` (10 GiB by default) before the machine's out-of-memory killer would.

With ``--engine ray`` the runs go to a Ray cluster of ``--nodes`` nodes that the benchmark starts on
this machine (``ray start --head`` and ``ray start --address``, small object stores) and
stops at the end; ``--compare`` also runs the local engine with the same shards and says whether the
logs are byte-identical.

    python benchmarks/population_run.py --users 10000 30000 100000
    python benchmarks/population_run.py --users 10000 --engine ray --nodes 2 --shards 2 --compare
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from memory_watch import run_watched  # noqa: E402

TARGET_SECONDS = 300.0
TARGET_GIB = 8.0


def cartpole_steps_per_second(seconds: float = 2.0) -> float:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        n += 1
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


# ------------------------------------------------------------------ one size, in a child process
def child(args: argparse.Namespace) -> None:
    """Run one size and print its figures as one JSON line (the parent watches this process's memory)."""
    import psutil

    from recoworld.evaluation import RunLogs
    from recoworld.evaluation.report import write_report
    from recoworld.progress import reporting
    from recoworld.runs.runner import PopulationRun
    from recoworld.scenario import load_scenario

    me = psutil.Process()
    peak = {"now": 0}

    def sample() -> None:
        while True:
            peak["now"] = max(peak["now"], me.memory_info().rss)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    run_overrides = {"engine": args.engine, "shards": args.shards, "ray_address": args.address}
    scenario = load_scenario(args.scenario, {"users": {"n_users": args.users}, "run": run_overrides})
    # compile (or load the cached kernels) outside the timed run
    PopulationRun(load_scenario(scenario, {"users": {"n_users": 300}, "env": {"horizon_days": 2}})).run()
    out = Path(args.out)
    with reporting():
        start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
        result = PopulationRun(scenario, output=out).run()
        run_seconds, run_cpu = time.perf_counter() - start, time.process_time() - cpu
        run_main_cpu = time.thread_time() - main  # the run's critical path on a quiet machine (the writer has a thread)
        run_peak, peak["now"] = peak["now"], 0
        start, cpu = time.perf_counter(), time.process_time()
        write_report([RunLogs.load(out)], out / "report")
        report_seconds, report_cpu = time.perf_counter() - start, time.process_time() - cpu
    manifest = result.manifest
    print(json.dumps({
        "users": args.users, "run_seconds": run_seconds, "report_seconds": report_seconds,
        "run_cpu": run_cpu, "run_main_cpu": run_main_cpu, "report_cpu": report_cpu, "run_peak": run_peak,
        "report_peak": peak["now"],
        "slates": sum(int(r.totals["slates"].sum()) for r in result.arms.values()), "arms": len(result.arms),
        "impressions": sum(f.rows for f in manifest.files if f.table == "impressions"),
        "mb_on_disk": sum(f.stat().st_size for f in out.rglob("*.parquet")) / 1e6,
        "logs": [[f.table, f.day, f.sha256] for f in manifest.files],
    }), flush=True)


# ------------------------------------------------------------------ the parent
def measure(args: argparse.Namespace, users: int, engine: str, address: str | None, watch) -> dict:
    work = Path(tempfile.mkdtemp(prefix="population-run-"))
    try:
        command = [sys.executable, __file__, "--child", "--users", str(users), "--scenario", args.scenario,
                   "--engine", engine, "--shards", str(args.shards), "--out", str(work / "run")]
        if address:
            command += ["--address", address]
        lines = work / "child.out"
        with open(lines, "w") as fh:
            done = run_watched(command, args.limit_gb, also_watch=watch, stdout=fh)
        text = lines.read_text()
        if done.killed_at_limit:
            raise SystemExit(f"{users:,} users: killed above {args.limit_gb:g} GiB (peak {done.peak_gb:.2f} GiB)")
        if done.returncode != 0:
            raise SystemExit(f"{users:,} users: the run failed (exit {done.returncode}):\n{text[-3000:]}")
        figures = json.loads([line for line in text.splitlines() if line.startswith("{")][-1])
        figures["peak_gib"] = done.peak_gb
        figures["engine"] = engine
        # the report again, from the logs alone, in a fresh process: what `recoworld report RUN_DIR` costs
        alone = run_watched([sys.executable, "-c", "from recoworld.cli import app; app()", "report", str(work / "run"),
                             "--out", str(work / "report-again")], args.limit_gb, stdout=subprocess.DEVNULL)
        if alone.returncode != 0 or alone.killed_at_limit:
            raise SystemExit(f"{users:,} users: recoworld report failed (exit {alone.returncode}, peak {alone.peak_gb:.2f} GiB)")
        figures["report_alone_seconds"], figures["report_alone_gib"] = alone.wall_seconds, alone.peak_gb
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def show(f: dict, cartpole: float) -> None:
    total = f["run_seconds"] + f["report_seconds"]
    print(f"{f['users']:>8,} users {f['engine']:>5}: run {f['run_seconds']:7.1f} s + report {f['report_seconds']:5.1f} s = "
          f"{total:7.1f} s ({total / TARGET_SECONDS:.2f}× the {TARGET_SECONDS:.0f} s target); peak {f['peak_gib']:.2f} GiB "
          f"(during the report {f['report_peak'] / 2**30:.2f} GiB; target {TARGET_GIB:g}); `recoworld report` alone "
          f"{f['report_alone_seconds']:.1f} s, peak {f['report_alone_gib']:.2f} GiB; {f['impressions']:,} impressions, "
          f"{f['mb_on_disk']:,.0f} MB; {f['slates'] / f['run_seconds']:,.0f} user-steps/s = "
          f"{f['slates'] / f['run_seconds'] / cartpole:.2f}× CartPole-v1; CPU run {f['run_cpu']:.0f} s (its main thread "
          f"{f['run_main_cpu']:.0f} s), report {f['report_cpu']:.0f} s (all threads of the process)", flush=True)


def scaling(small: dict, large: dict) -> None:
    """From the smallest size to the largest: how CPU time, wall time and peak memory grew against the users."""
    def grew(key: str) -> str:
        return f"{large[key] / small[key]:.1f}×"

    print(f"{small['users']:,} -> {large['users']:,} users ({large['users'] / small['users']:.0f}×): run CPU {grew('run_cpu')}, "
          f"wall {grew('run_seconds')}; report CPU {grew('report_cpu')}, wall {grew('report_seconds')}; peak memory "
          f"{grew('peak_gib')}; `recoworld report` alone {grew('report_alone_seconds')}, its peak {grew('report_alone_gib')}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="creator_economy")
    parser.add_argument("--users", type=int, nargs="+", default=[10_000])
    parser.add_argument("--engine", default="local", choices=["local", "ray"])
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=2, help="Ray nodes started on this machine (with --engine ray).")
    parser.add_argument("--object-store-mb", type=int, default=512, help="Object store of each Ray node.")
    parser.add_argument("--compare", action="store_true", help="Also run the local engine and compare the logs.")
    parser.add_argument("--limit-gb", type=float, default=10.0, help="Kill a run whose process tree exceeds this.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.users = args.users[0]
        child(args)
        return
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # the other core is someone else's on a shared machine
    cartpole = cartpole_steps_per_second()
    print(f"CartPole-v1 {cartpole:,.0f} steps/s; load average {os.getloadavg()[0]:.2f} at the start; "
          f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}", flush=True)
    cluster = None
    if args.engine == "ray":
        from recoworld.testing.ray_cluster import LocalRayCluster

        cluster = LocalRayCluster(nodes=args.nodes, object_store_bytes=args.object_store_mb * 2**20)
        started = time.perf_counter()
        cluster.start()
        print(f"ray cluster: {args.nodes} nodes on this machine ({cluster.address}), {args.object_store_mb} MB object "
              f"store each, started in {time.perf_counter() - started:.0f} s", flush=True)
    measured: list[dict] = []
    try:
        for users in args.users:
            figures = measure(args, users, args.engine, cluster.address if cluster else None,
                              cluster.pids if cluster else tuple)
            show(figures, cartpole)
            measured.append(figures)
            if args.compare and args.engine == "ray":
                local = measure(args, users, "local", None, tuple)
                show(local, cartpole)
                same = local["logs"] == figures["logs"]
                print(f"{users:,} users: the Ray logs are {'byte-identical to' if same else 'DIFFERENT from'} the local "
                      f"engine's ({len(figures['logs'])} day files compared by SHA-256)", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    if len(measured) > 1:
        scaling(measured[0], measured[-1])
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    main()
