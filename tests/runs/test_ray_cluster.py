"""The Ray engine on a real cluster of two nodes on this machine (``ray start --head`` and ``ray start
--address``, bound to 127.0.0.1, not local mode): the same logs as the local engine, byte for byte, also
when a worker process is SIGKILLed in the middle of a day (Ray retries the shard-day) and when the
driver is SIGKILLed (``--resume`` finishes the run). The cluster is stopped however a test ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from recoworld.runs.logs import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import deep_merge, load_scenario
from recoworld.testing.ray_cluster import LocalRayCluster
from tests.runs.test_population import SMALL, day_hashes

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

# two shards, so both nodes get shard-days; enough users that a shard-day runs long enough to be killed
SCENARIO = deep_merge(SMALL, {"name": "ray_cluster", "seed": 11, "users": {"n_users": 1600}, "env": {"horizon_days": 5},
                              "recommenders": [{"name": "linucb"}, {"name": "mmr"}], "run": {"shards": 2}})
SHARD_DAY = "_writable_shard_day"  # the Ray task's function (recoworld.runs.engines)


@pytest.fixture(scope="module")
def cluster():
    nodes = LocalRayCluster(nodes=2)
    nodes.start()
    try:
        yield nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.stop()
        assert not nodes.pids(), "a Ray process of the cluster outlived it"


@pytest.fixture(scope="module")
def local_logs(tmp_path_factory) -> list[tuple[str, int, int, str]]:
    out = tmp_path_factory.mktemp("local") / "run"
    PopulationRun(load_scenario(SCENARIO), output=out).run()
    return day_hashes(out)


def on_cluster(cluster: LocalRayCluster) -> dict:
    return deep_merge(SCENARIO, {"run": {"engine": "ray", "ray_address": cluster.address}})


def test_two_nodes_write_the_same_logs_as_the_local_engine(cluster, local_logs, tmp_path):
    try:
        PopulationRun(load_scenario(on_cluster(cluster)), output=tmp_path / "ray").run()
        assert sum(node["Alive"] for node in ray.nodes()) == 2
    finally:
        ray.shutdown()
    assert day_hashes(tmp_path / "ray") == local_logs


def test_a_worker_killed_mid_day_is_retried_and_the_logs_are_identical(cluster, local_logs, tmp_path):
    killed: list[int] = []
    first_day_done = threading.Event()
    stop = threading.Event()

    def kill_a_shard_day() -> None:  # on day 1 or later, SIGKILL the first worker seen running a shard-day
        first_day_done.wait()
        while not stop.is_set() and not killed:
            for pid in cluster.task_workers(SHARD_DAY):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_shard_day, daemon=True)
    killer.start()
    run = PopulationRun(load_scenario(on_cluster(cluster)), output=tmp_path / "ray",
                        on_day=lambda day: first_day_done.set())
    try:
        run.run()
    finally:
        stop.set()
        first_day_done.set()
        killer.join()
        ray.shutdown()
    assert killed, "no shard-day was seen running on a worker"
    assert day_hashes(tmp_path / "ray") == local_logs


def test_the_driver_killed_mid_run_resumes_identically(cluster, local_logs, tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(on_cluster(cluster)))
    out = tmp_path / "ray"
    command = [sys.executable, "-c", "from recoworld.cli import app; app()", "run", str(scenario), "--out", str(out),
               "--no-report"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    folder = RunFolder(out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if folder.exists() and 2 <= folder.read_manifest().days_completed < SCENARIO["env"]["horizon_days"]:
            break
        time.sleep(0.05)
    assert driver.poll() is None, f"the driver ended before it could be killed: {driver.stderr.read().decode()}"
    driver.send_signal(signal.SIGKILL)
    assert driver.wait(timeout=30) == -signal.SIGKILL
    manifest = folder.read_manifest()
    assert manifest.status == "running" and manifest.days_completed < SCENARIO["env"]["horizon_days"]
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert folder.read_manifest().status == "complete"
    assert day_hashes(out) == local_logs
    assert sum(1 for _ in cluster.pids()) > 0  # the cluster outlived its driver
