"""``recoworld serve`` figures: startup, session start latency, steps/s for one client, RSS of 500 sessions,
the answer to a 10 MB body.

Starts ``recoworld serve`` (quickstart: 5,000 items, 100 candidates, slates of 10) in a subprocess on a free
127.0.0.1 port and measures, with openenv's client (:class:`recoworld.env.agent_client.RecoWorldClient`):

* startup: process start to the first answer of ``/health`` (imports openenv, builds the catalog);
* session start: a new WebSocket session's connect and first ``reset``, sequentially (median, p95);
* steps/s for one client over the WebSocket (slates of ids; and every third step ToolRec tool calls),
  against the same loop on the in-process env, on ``gym.make("RecoWorld-v0")`` (the bare world step) and on
  ``CartPole-v1`` in this process;
* HTTP ``/reset`` (openenv's stateless endpoint: one env built per request) latency;
* server RSS with no session, with 500 sessions open (reset and one step each, opened 50 at a time, and the
  time that took), after closing them, and with 500 new ones (the first ones' memory is reused);
* the time to answer a 10 MB body: HTTP ``POST /step`` declared (413 before the body is read) and chunked
  (413, the rest drained), and a 10 MB WebSocket message (the connection closed with 1009), with the server's
  RSS before and after (median of 5 each).

    python benchmarks/agent_server.py [--seconds 5] [--sessions 500]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import statistics
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import psutil
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import recoworld  # noqa: F401  (registers RecoWorld-v0)
from recoworld.env.agent import RecoWorldAgentEnv
from recoworld.env.agent_client import RecoWorldClient


def ids(obs) -> dict:
    shift = (obs.day + obs.session_step) % 7
    return {"items": [(shift + i) % len(obs.candidates) for i in range(obs.slate_size)]}


def tools_or_ids(obs) -> dict:
    if obs.session_step % 3 == 2:
        return {"tool_calls": [{"name": "retrieve", "attribute": "topic", "value": obs.candidates[0].topic},
                               {"name": "retrieve", "attribute": "recency"}, {"name": "finish"}]}
    return ids(obs)


def loop_steps_per_second(reset, step, policy, seconds: float) -> float:
    """Steps/s of reset/step with ``policy`` (resets included in the time, not counted as steps)."""
    obs, n, seed = reset(0), 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs = step(policy(obs))
        n += 1
        if obs.done or obs.truncated:
            seed += 1
            obs = reset(seed)
    return n / (time.perf_counter() - start)


def gym_steps_per_second(env_id: str, seconds: float, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    slate = np.arange(10) if env_id == "RecoWorld-v0" else 0
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(slate)
        n += 1
        if terminated or truncated:
            env.reset()
    return n / (time.perf_counter() - start)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def wave(url: str, port: int, n: int, seed0: int, pid: int) -> tuple[int, float, float]:
    """(sessions open, server RSS in MB, seconds to open them) with ``n`` sessions, reset and one step each."""
    clients = [RecoWorldClient(base_url=url, message_timeout_s=120) for _ in range(n)]

    async def start(i: int, client: RecoWorldClient) -> None:
        obs = (await client.reset(seed=seed0 + i)).observation
        await client.step(ids(obs))

    try:
        started = time.perf_counter()
        for lo in range(0, n, 50):
            await asyncio.gather(*(start(lo + i, c) for i, c in enumerate(clients[lo:lo + 50])))
        opened = time.perf_counter() - started
        return (json.loads(request(port, "GET", "/sessions")[1])["active"], psutil.Process(pid).memory_info().rss / 1e6,
                opened)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def ten_mb_answers(port: int, repeats: int = 5) -> dict[str, float]:
    """Median seconds from sending a 10 MB body to its answer: HTTP declared, HTTP chunked, WebSocket message."""
    message = "x" * (10 * 2**20)
    body = json.dumps({"action": {"items": list(range(10)), "message": message}}).encode()
    framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 2**16]), body[i:i + 2**16])
                      for i in range(0, len(body), 2**16)) + b"0\r\n\r\n"
    frame = json.dumps({"type": "step", "data": {"items": list(range(10)), "message": message}})

    def websocket() -> None:
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=30) as ws:
            ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
            ws.recv(timeout=60)
            try:
                ws.send(frame)
                ws.recv(timeout=60)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1009, closed

    cases = {"HTTP POST /step, Content-Length": lambda: request(port, "POST", "/step", body),
             "HTTP POST /step, chunked": lambda: request(port, "POST", "/step", framed, {"Transfer-Encoding": "chunked"}),
             "WebSocket message (closed 1009)": websocket}
    medians = {}
    for name, send in cases.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            answer = send()
            times.append(time.perf_counter() - started)
            assert answer is None or answer[0] == 413, answer
        medians[name] = statistics.median(times)
    return medians


def wait_closed(port: int) -> None:
    for _ in range(300):
        if json.loads(request(port, "GET", "/sessions")[1])["active"] == 0:
            return
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=500)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    print(f"load before: {open('/proc/loadavg').read().strip()}")
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "recoworld.cli", "serve", "--port", str(port),
                               "--max-sessions", str(args.sessions + 10)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        print(f"startup (process start to /health)          {time.perf_counter() - started:8.2f} s")
        starts = []
        for i in range(50):
            t = time.perf_counter()
            with RecoWorldClient(base_url=url).sync() as client:
                client.reset(seed=i)
                starts.append(time.perf_counter() - t)
        print(f"session start (connect + reset), 50 sessions  median {1e3 * statistics.median(starts):6.1f} ms, "
              f"p95 {1e3 * sorted(starts)[47]:6.1f} ms")
        resets = []
        for i in range(20):
            t = time.perf_counter()
            request(port, "POST", "/reset", json.dumps({"seed": i}).encode())
            resets.append(time.perf_counter() - t)
        print(f"HTTP /reset (stateless, one env per request)  median {1e3 * statistics.median(resets):6.1f} ms")
        local = RecoWorldAgentEnv()
        cartpole = gym_steps_per_second("CartPole-v1", args.seconds)
        bare = gym_steps_per_second("RecoWorld-v0", args.seconds, scenario="quickstart")
        print(f"CartPole-v1 (gym.make)                       {cartpole:10,.0f} steps/s")
        print(f"RecoWorld-v0 (gym.make, the bare world step) {bare:10,.0f} steps/s")
        for name, policy in (("ids", ids), ("ids + tool calls", tools_or_ids)):
            here = loop_steps_per_second(lambda s: local.reset(seed=s), local.step, policy, args.seconds)
            with RecoWorldClient(base_url=url).sync() as client:
                remote = loop_steps_per_second(lambda s: client.reset(seed=s).observation,
                                               lambda a: client.step(a).observation, policy, args.seconds)
            print(f"{name:17s} in process {here:8,.0f} steps/s ({here / bare:.2f}x bare, {here / cartpole:.4f}x CartPole); "
                  f"WebSocket, one client {remote:6,.0f} steps/s ({remote / here:.2f}x in process)")
        wait_closed(port)
        base = psutil.Process(server.pid).memory_info().rss / 1e6
        active, first, opened = asyncio.run(wave(url, port, args.sessions, 0, server.pid))
        wait_closed(port)
        after = psutil.Process(server.pid).memory_info().rss / 1e6
        active2, again, _ = asyncio.run(wave(url, port, args.sessions, 10_000, server.pid))
        print(f"server RSS: no session {base:.0f} MB; {active} sessions {first:.0f} MB "
              f"({(first - base) / args.sessions:.2f} MB each); closed {after:.0f} MB; {active2} new sessions {again:.0f} MB")
        print(f"{active} sessions opened (connect, reset, one step; 50 at a time) in {opened:.1f} s")
        wait_closed(port)
        before = psutil.Process(server.pid).memory_info().rss / 1e6
        for name, seconds in ten_mb_answers(port).items():
            print(f"10 MB body, {name:34s} answered in {1e3 * seconds:7.1f} ms (median of 5)")
        after_bodies = psutil.Process(server.pid).memory_info().rss / 1e6
        print(f"server RSS before the 15 bodies of 10 MB {before:.0f} MB, after {after_bodies:.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=15)
    print(f"load after: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
