"""The Ray engine on a real cluster of two nodes on this machine (``ray start --head`` and ``ray start
--address``, not local mode): the same logs as the local engine, byte for byte, also when a worker
process is SIGKILLed in the middle of a day (Ray retries the shard-day) and when the driver is SIGKILLed
(``--resume`` finishes the run); a driver that ran a local Ray before still reaches every node. The
cluster is stopped however a test ends."""

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

from recoworld.logs.folder import RunFolder
from recoworld.runs.runner import PopulationRun
from recoworld.scenario import deep_merge, load_scenario
from recoworld.testing.ray_cluster import AUTH_MODE, LocalRayCluster
from tests.runs.test_population import SMALL, day_hashes

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

# two shards, so both nodes get shard-days; enough users that a shard-day runs long enough to be killed
SCENARIO = deep_merge(SMALL, {"name": "ray_cluster", "seed": 11, "users": {"n_users": 1600}, "env": {"horizon_days": 5},
                              "recommenders": [{"name": "linucb"}, {"name": "mmr"}], "run": {"shards": 2}})
SHARD_DAY = "_writable_shard_day"  # the Ray task's function (recoworld.runs.engines)


@pytest.fixture(scope="module")
def cluster():
    nodes = LocalRayCluster(nodes=2)
    with nodes.driven_from_here():  # this process drives the cluster in the tests below
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
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                              env=cluster.driver_env())
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
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600,
                             env=cluster.driver_env())
    assert resumed.returncode == 0, resumed.stderr
    assert folder.read_manifest().status == "complete"
    assert day_hashes(out) == local_logs
    assert sum(1 for _ in cluster.pids()) > 0  # the cluster outlived its driver


# What the suite runs before this module (tests/runs/test_population.py): a local Ray in the same process. Then
# the process joins the cluster as a run's driver does and puts an object that a task on each node reads.
LOCAL_RAY_THEN_CLUSTER = """
import sys
import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from recoworld.runs.engines import RayEngine
from recoworld.testing.ray_cluster import local_ray

with local_ray(num_cpus=1):
    pass
RayEngine(sys.argv[1])
shared = ray.put(np.ones(100_000))  # above Ray's inline size: it lives in the object store, owned by this driver


@ray.remote(num_cpus=1, max_retries=0)
def total(values):
    return float(values.sum())


nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
on_each = [total.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(shared)
           for node in nodes]
print(*ray.get(on_each, timeout=300))
"""


def test_a_driver_that_ran_a_local_ray_before_reaches_every_node(cluster, tmp_path):
    env = {name: value for name, value in os.environ.items() if name != AUTH_MODE}  # as a fresh pytest starts
    env["HOME"] = str(tmp_path)  # a token a local Ray may write stays out of the shared ~/.ray
    proc = subprocess.run([sys.executable, "-c", LOCAL_RAY_THEN_CLUSTER, cluster.address], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["100000.0"] * 2  # both nodes' workers read the driver's object


def test_a_process_whose_ray_asks_for_tokens_is_refused_as_a_driver(monkeypatch, tmp_path):
    monkeypatch.setenv(AUTH_MODE, "token")  # what a plain ray.init() of a local Ray leaves in its process
    with pytest.raises(RuntimeError, match="token authentication on"):
        with LocalRayCluster(nodes=2, temp_dir=tmp_path).driven_from_here():
            pass
