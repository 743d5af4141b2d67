"""A Ray cluster of separate nodes on this machine, for tests and benchmarks: a head node and worker
nodes started with ``ray start --head`` / ``ray start --address``, each with its own small object
store (not Ray's local mode, and not one process pretending to be a cluster).

    with LocalRayCluster(nodes=2) as cluster, cluster.driven_from_here():
        scenario.run.ray_address = cluster.address   # what the runner's RayEngine joins
        ...

Each node is a ``ray start --block`` process in a session of its own; every Ray process of the node
(GCS, raylet, agents, workers) runs in that session. Stopping sends SIGTERM to each session, then
SIGKILL, and waits until no process of those sessions is left: the cluster is gone even when the
test failed, and no other Ray on the machine is touched (``ray stop`` would end every Ray process
of the machine, other people's included).

Addresses: the nodes are given 127.0.0.1, but Ray replaces a loopback address by the one the machine
reaches the network with, when it has a route (``resolve_ip_for_localhost``), and its servers listen
on every interface; nodes and drivers all register with that same address, so they reach each other.

Token authentication is off on the nodes and must be off in every driver: a worker that sends no
token cannot reach objects owned by a driver that asks for one (``OwnerDiedError``). A ``ray.init()``
that starts a local Ray switches it on for the rest of its process (Ray sets ``RAY_AUTH_MODE=token``
and writes ``~/.ray/auth_token``), which Ray cannot undo in that process: tests start local Ray with
:func:`local_ray`, drive a cluster from a process inside :meth:`LocalRayCluster.driven_from_here`, and
start driver processes with :meth:`LocalRayCluster.driver_env`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Iterator

OBJECT_STORE_BYTES = 100 * 2**20  # per node; Ray's smallest is 75 MiB
NODE_FLAGS = [  # every listening port chosen by the OS, no dashboard (on the address: see the module doc)
    "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--dashboard-agent-listen-port=0",
    "--dashboard-agent-grpc-port=0", "--runtime-env-agent-port=0", "--metrics-export-port=0",
]


AUTH_MODE = "RAY_AUTH_MODE"  # Ray's switch for token authentication
AUTH_OFF = {AUTH_MODE: "disabled"}  # on the nodes and in every driver of a test cluster


@contextmanager
def _auth_off() -> Iterator[None]:
    """Ray's token authentication off in this process while inside; its environment as it was afterwards."""
    before = os.environ.get(AUTH_MODE)
    os.environ.update(AUTH_OFF)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AUTH_MODE, None)
        else:
            os.environ[AUTH_MODE] = before


@contextmanager
def local_ray(num_cpus: int) -> Iterator[None]:
    """Ray started in this process (``ray.init``, a local cluster) with token authentication off, shut down on
    exit: the process can still drive a :class:`LocalRayCluster` afterwards, and no token lands in ``~/.ray``."""
    import ray

    with _auth_off():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sids: set[int]) -> list[int]:
    """Processes (by /proc) whose session is one of ``sids``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sids and fields[0] != "Z":  # field 6 of stat: the session id; zombies are gone
            found.append(int(entry.name))
    return found


class LocalRayCluster:
    """A head and ``nodes - 1`` worker nodes on this machine with ``cpus_per_node`` CPUs each (see the module doc)."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, object_store_bytes: int = OBJECT_STORE_BYTES,
                 temp_dir: str | Path | None = None, start_timeout: float = 600.0) -> None:
        self.nodes, self.cpus, self.store = nodes, cpus_per_node, object_store_bytes
        self.timeout = start_timeout
        self._own_temp = temp_dir is None
        # Ray's socket paths must stay short: a temp folder of its own under /tmp
        self.temp_dir = Path(temp_dir) if temp_dir is not None else Path(tempfile.mkdtemp(prefix="rw-ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        # the nodes' own home: a Ray token left in the shared ~/.ray by someone else's Ray must not switch on
        # token authentication between the nodes of this cluster
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **AUTH_OFF, "HOME": str(self.temp_dir)}

    # ------------------------------------------------------------------ drivers
    def driver_env(self) -> dict[str, str]:
        """The environment for a driver process of this cluster: this process's, token authentication off."""
        return {**os.environ, **AUTH_OFF}

    @contextmanager
    def driven_from_here(self) -> Iterator["LocalRayCluster"]:
        """This process as a driver of the cluster: token authentication off in it while inside. Refused when a Ray
        started earlier in this process switched it on (see the module doc): that cannot be undone here."""
        if os.environ.get(AUTH_MODE, "").lower() == "token":
            raise RuntimeError("ray cluster: this process has Ray token authentication on (RAY_AUTH_MODE=token, set by "
                               "an earlier ray.init() that started a local Ray), so the cluster's workers could not "
                               "reach its objects; start local Ray with recoworld.testing.ray_cluster.local_ray")
        with _auth_off():
            yield self

    # ------------------------------------------------------------------ start and stop
    def _node(self, head: bool) -> subprocess.Popen:
        role = ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp_dir}"] if head \
            else [f"--address={self.address}"]
        log = open(self._log(len(self.processes)), "wb")
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *role, *NODE_FLAGS,
                   f"--num-cpus={self.cpus}", f"--object-store-memory={self.store}"]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        self.processes.append(proc)
        return proc

    def start(self, attempts: int = 3) -> "LocalRayCluster":
        """Start the nodes; a start that fails (a node exits, or another process took the port between its
        choice and its use) is cleaned up and tried again on a fresh port, ``attempts`` times in all."""
        for attempt in range(attempts):
            try:
                return self._start()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.address = f"127.0.0.1:{self.port}"
                self.processes = []
                if self._own_temp:
                    self.temp_dir = Path(tempfile.mkdtemp(prefix="rw-ray-", dir="/tmp"))
                    self.env["HOME"] = str(self.temp_dir)
        return self

    def _start(self) -> "LocalRayCluster":
        try:
            self._wait_started(self._node(head=True))
            for _ in range(self.nodes - 1):
                self._wait_started(self._node(head=False))
            self._wait_for(self.nodes)
        except BaseException as exc:
            logs = self._log_tails()
            self.stop()
            if isinstance(exc, RuntimeError):
                raise RuntimeError(f"{exc}\n{logs}") from None
            raise
        return self

    def _log(self, k: int) -> Path:
        return self.temp_dir / f"node{k}.log"

    def _log_tails(self, lines: int = 15) -> str:
        out = []
        for k in range(len(self.processes)):
            try:
                text = self._log(k).read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- node {k} ---\n" + "\n".join(text))
        return "\n".join(out)

    def _wait_started(self, proc: subprocess.Popen) -> None:
        """Until ``ray start`` says the node's runtime is up (it prints that once its raylet has joined)."""
        log = self._log(self.processes.index(proc))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ray node exited with code {proc.returncode}")
            if log.exists() and "Ray runtime started" in log.read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"ray cluster: a node did not start within {self.timeout:.0f} s")

    def alive_nodes(self) -> int:
        """Nodes the cluster's GCS counts as alive (asked in a child process, so this one stays unconnected)."""
        probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR');"
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        out = subprocess.run([sys.executable, "-c", probe, self.address], capture_output=True, text=True, env=self.env,
                             timeout=300)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def _wait_for(self, nodes: int) -> None:
        """Until the GCS counts ``nodes`` alive nodes."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"ray node exited with code {proc.returncode}")
            try:
                if self.alive_nodes() >= nodes:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"ray cluster: {nodes} node(s) not up within {self.timeout:.0f} s")

    @property
    def sessions(self) -> set[int]:
        """The process-session ids of the cluster's node processes (each leads its own)."""
        return {p.pid for p in self.processes}  # each node process leads its own session

    def pids(self) -> list[int]:
        """Every live process of the cluster (nodes, GCS, raylets, agents, workers)."""
        return session_pids(self.sessions)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every session of the cluster, SIGKILL what is left after ``grace`` seconds, and wait until
        none of its processes remains."""
        sids = self.sessions
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and session_pids(sids):
                for proc in self.processes:
                    proc.poll()  # reap the node processes
                time.sleep(0.2)
            if not session_pids(sids):
                break
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        left = session_pids(sids)
        if left:
            raise RuntimeError(f"ray cluster: processes {left} did not stop")
        if self._own_temp:
            import shutil

            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def task_workers(self, function: str) -> list[int]:
        """Worker processes of the cluster executing a task of ``function`` now (Ray titles them ``ray::<name>``)."""
        out = []
        for pid in self.pids():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(f"ray::{function}"):
                out.append(pid)
        return out
