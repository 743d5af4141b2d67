"""A local OpenAI-compatible chat-completions server for offline tests and benchmarks (stdlib only).

    server = FakeLLMServer(responder=lambda req: '{"text": "ok"}', latency=0.2)
    server.start()
    ...  # litellm model "openai/test-model", api_base=server.base_url, api_key="sk-test"
    server.stop()

``responder(request_json) -> str`` produces the assistant content. ``fault(n, request_json)``
(``n`` is the 0-based request number) may return one of

    ("status", 429)      an HTTP error with an OpenAI-style error body
    ("status", 400, msg) the same with this error message
    ("status", 429, msg, {"Retry-After": "2"})  the same with these response headers
    ("hang", 5.0)        sleep that long before answering (to exceed the client timeout)
    ("content", "")      answer with this content instead of the responder's (malformed / empty)
    ("raw", b"\xff")     send these bytes as the HTTP body, status 200 (empty, non-UTF-8, cut JSON)
    ("reset", 0.5)       send the headers and this share of a normal answer's body, then reset the
                         connection (TCP RST)

or ``None`` for a normal answer. The server records every request body, counts requests and
measures the largest number of requests it was handling at once (``max_in_flight``).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

DEFAULT_CONTENT = '{"text": "ok", "score": 1}'

Responder = Callable[[dict[str, Any]], str]
FaultScript = Callable[[int, dict[str, Any]], "tuple[Any, ...] | None"]

_STATUS_ERRORS = {
    400: ("invalid_request_error", "bad request"),
    401: ("invalid_request_error", "invalid api key"),
    404: ("invalid_request_error", "model not found"),
    429: ("rate_limit_exceeded", "rate limit reached, slow down"),
    500: ("server_error", "internal server error"),
    503: ("server_error", "service unavailable"),
}


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words, at least 1."""
    return max(1, len(text.split()))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent clients must not hit the default backlog of 5
    owner: FakeLLMServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        n = owner._enter(body)
        try:
            owner._handle(self, n, body)
        finally:
            owner._leave()

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), headers)

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None, cut: int | None = None) -> None:
        """Send ``data`` as a JSON response; with ``cut``, only its first ``cut`` bytes, then a TCP reset."""
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data if cut is None else data[:cut])
            if cut is not None:
                self.wfile.flush()
                # SO_LINGER on, 0 s: close() sends RST instead of FIN (the connection dies mid-answer)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass


class FakeLLMServer:
    """An OpenAI-compatible ``POST /v1/chat/completions`` on 127.0.0.1 (port chosen by the OS)."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float = 0.0,
        fault: FaultScript | None = None,
        port: int = 0,
    ) -> None:
        self.responder: Responder = responder or (lambda request: DEFAULT_CONTENT)
        self.latency = latency
        self.fault = fault
        self.requested_port = port
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # the chat.completion bodies sent back
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Serve on the requested port (0: any free port) in a daemon thread; returns the server."""
        httpd = _Server(("127.0.0.1", self.requested_port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake any hanging handler, shut the server down and wait for its thread."""
        self._stopping.set()  # wakes up hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on (once started)."""
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL to give a client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        """Forget recorded requests and counters (the responder, latency and fault stay)."""
        with self._lock:
            self.requests.clear()
            self.responses.clear()
            self.count = 0
            self.max_in_flight = self.in_flight

    # -- request handling --------------------------------------------------------------------

    def _enter(self, body: dict[str, Any]) -> int:
        with self._lock:
            n = self.count
            self.count += 1
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return n

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handle(self, handler: _Handler, n: int, body: dict[str, Any]) -> None:
        if self.latency > 0:
            time.sleep(self.latency)
        action = self.fault(n, body) if self.fault is not None else None
        content: str | None = None
        if action is not None:
            kind, arg = action[0], action[1]
            if kind == "status":
                code = int(arg)
                err_type, message = _STATUS_ERRORS.get(code, ("server_error", f"HTTP {code}"))
                if len(action) > 2 and action[2] is not None:
                    message = str(action[2])
                payload = {"error": {"message": message, "type": err_type, "code": str(code)}}
                handler._send_json(code, payload, action[3] if len(action) > 3 else None)
                return
            if kind == "hang":
                self._stopping.wait(float(arg))
            elif kind == "content":
                content = str(arg)
            elif kind == "raw":
                handler._send_bytes(200, bytes(arg))
                return
            elif kind == "reset":
                data = json.dumps(self._completion(body, self.responder(body))).encode()
                handler._send_bytes(200, data, cut=int(len(data) * float(arg)))
                return
            else:
                raise ValueError(f"unknown fault kind {kind!r}")
        if content is None:
            content = self.responder(body)
        handler._send_json(200, self._completion(body, content))

    def _completion(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        prompt = " ".join(str(m.get("content") or "") for m in body.get("messages", []))
        prompt_tokens = count_tokens(prompt)
        completion_tokens = count_tokens(content)
        response = {
            "id": f"chatcmpl-test-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        with self._lock:
            self.responses.append(response)
        return response


HELP = """A local OpenAI-compatible chat-completions server (no network, no real model) for trying LLM users
offline. It prints its URL on the first line of its output, then serves until stopped (Ctrl-C). Point a
run at it with the model string openai/<any name> and that URL, e.g.

    export OPENAI_API_KEY=anything        # any value works: the server ignores the key
    recoworld run quickstart --users 20 --days 2 --set users.backend=llm \\
        --set llm.model=openai/test-model --set llm.api_base=http://127.0.0.1:PORT/v1

It answers every schema RecoWorld sends with a plausible, deterministic JSON answer (LLM users' slate
decisions with short reasons, instruction words, recommender controllers' actions): the run exercises the
whole LLM path with no fallbacks. With --responder fixed it answers '{"text": "ok", "score": 1}' instead."""


def main(argv: list[str] | None = None) -> None:
    """``python -m recoworld.testing.fake_server [--port N] [--latency S] [--responder plausible|fixed]``."""
    import argparse
    import sys

    from recoworld.testing.responders import plausible_answer

    parser = argparse.ArgumentParser(prog="python -m recoworld.testing.fake_server", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="Port to listen on (default: one the OS picks).")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds each answer waits (default 0).")
    parser.add_argument("--responder", choices=["plausible", "fixed"], default="plausible",
                        help="plausible: a valid answer to each request's schema (default); fixed: DEFAULT_CONTENT.")
    args = parser.parse_args(argv)
    responder = plausible_answer if args.responder == "plausible" else None
    server = FakeLLMServer(responder, latency=args.latency, port=args.port).start()
    print(server.base_url, flush=True)
    print(f"model: openai/<any name> with --set llm.api_base={server.base_url}; any OPENAI_API_KEY value works "
          "(Ctrl-C stops the server)", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
