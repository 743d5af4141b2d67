"""``recoworld serve``: the language-agent env as openenv-core's app on uvicorn.

One world per session: openenv's WebSocket ``/ws`` gives every connection its own
:class:`~recoworld.env.agent.RecoWorldAgentEnv` (up to ``max_sessions``; idle sessions are closed after
``idle_timeout`` seconds). HTTP ``/reset`` and ``/step`` are openenv's stateless endpoints (a fresh env per
request): ``/step`` there has no episode and is answered 409. openenv's ``/mcp`` is not served (this env has
no MCP tools). Every refusal is one line: HTTP errors as ``{"error": "..."}`` with a 4xx status (413 for a
body over ``max_body_bytes``), WebSocket errors as openenv's error frame; a WebSocket message over the limit
closes that connection (code 1009). No request reaches another session's world, and no request stops the
server.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from openenv.core.env_server import create_app
    from openenv.core.env_server.types import ConcurrencyConfig
    from starlette.exceptions import HTTPException
    from starlette.websockets import WebSocketDisconnect
except ImportError as exc:  # pragma: no cover - the CLI turns this into one line
    raise ImportError(f"recoworld serve needs the agent extra: pip install 'recoworld[agent]' ({exc})") from None

try:
    from starlette.websockets import WebSocketDisconnected  # a send or receive after the client left (starlette 1.x)
except ImportError:  # pragma: no cover - older starlette raises a RuntimeError with the same words
    WebSocketDisconnected = None

from recoworld.env.agent import ReceivedAction, RecoWorldAgentEnv, RecoWorldObservation, SessionError, cached_scenario

log = logging.getLogger("recoworld.serve")


class ServeSettings(BaseModel):
    """What ``recoworld serve`` runs: the world, the address and the limits."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field("quickstart", description="Bundled scenario name or YAML path of every session's world.")
    config: dict[str, Any] = Field(default_factory=dict, description="Scenario overrides for every session.")
    host: str = Field("127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(8000, ge=0, le=65535)
    max_sessions: int = Field(64, ge=1, le=100_000, description="Concurrent WebSocket sessions; one more is refused.")
    idle_timeout: float = Field(300.0, gt=0, description="Seconds without a message after which a session is closed.")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body or WebSocket message.")


def one_line(text: Any) -> str:
    """``text`` as one line (a refusal never spans lines)."""
    return " ".join(str(text).split()) or "error"


def _refusal(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


def _validation_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return f"body: invalid JSON ({first.get('ctx', {}).get('error', 'cannot parse')})"
    where = ".".join(str(p) for p in first.get("loc", ()))
    what = first.get("msg", "invalid")
    return f"{where}: {what}" if where else what


def _client_left(exc: Exception) -> bool:
    """Whether ``exc`` is starlette's answer to a send on a WebSocket whose client has gone."""
    if WebSocketDisconnected is not None:
        return isinstance(exc, WebSocketDisconnected)
    return isinstance(exc, RuntimeError) and str(exc).startswith("Cannot call \"send\"")  # pragma: no cover


class RequestGuard:
    """ASGI middleware: refuses an HTTP body over ``max_body_bytes`` with 413 (declared or streamed) as
    ``{"error": ...}`` like every other refusal, answers an error that escapes the app with a one-line 500, and
    keeps a WebSocket that fails, or whose client leaves mid-step or mid-close, from printing a traceback."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            except WebSocketDisconnect:
                pass  # the client left while openenv was closing the socket: nothing to answer
            except Exception as exc:  # noqa: BLE001 - one session's failure is logged in one line, the server goes on
                if _client_left(exc):  # openenv tried to answer (and then to report that) on a socket the client closed
                    log.warning("a client left before its answer was sent (mid-step): its session is closed")
                else:
                    log.warning("session failed: %s", one_line(f"{type(exc).__name__}: {exc}"))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _refusal(413, f"request body over the limit of {self.limit} bytes")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_large(scope, receive, send)
            return
        seen, refused, started = 0, False, False

        async def limited_receive() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not (refused or started):
                    refused = True
                    await too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already: what the app answers after it is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception as exc:  # noqa: BLE001 - a request never takes the server down
            log.warning("request %s %s failed: %s", scope.get("method"), scope.get("path"), one_line(f"{type(exc).__name__}: {exc}"))
            if not (refused or started):
                await _refusal(500, f"internal error: {type(exc).__name__}")(scope, receive, send)


def make_app(
    scenario: str = "quickstart",
    config: dict[str, Any] | None = None,
    max_sessions: int = 64,
    idle_timeout: float = 300.0,
    max_body_bytes: int = 64 * 1024,
) -> FastAPI:
    """openenv's app over one :class:`RecoWorldAgentEnv` per session, with one-line refusals and
    ``GET /sessions`` (sessions open now, the cap and the idle timeout). The scenario is loaded and its world
    built once here, so a bad scenario fails now and sessions start fast."""
    settings = ServeSettings(scenario=scenario, config=config or {}, max_sessions=max_sessions,
                             idle_timeout=idle_timeout, max_body_bytes=max_body_bytes)
    warm = RecoWorldAgentEnv(settings.scenario, settings.config)
    warm.reset(seed=0)  # loads the scenario (cached) and builds its catalog (shared, read-only)
    warm.close()
    live: weakref.WeakSet[RecoWorldAgentEnv] = weakref.WeakSet()

    def new_session() -> RecoWorldAgentEnv:
        env = RecoWorldAgentEnv(settings.scenario, settings.config)
        live.add(env)
        return env

    new_session.SUPPORTS_CONCURRENT_SESSIONS = True  # type: ignore[attr-defined]
    app = create_app(
        new_session, ReceivedAction, RecoWorldObservation, env_name="recoworld",
        concurrency_config=ConcurrencyConfig(max_concurrent_envs=settings.max_sessions, session_timeout=settings.idle_timeout),
    )
    # openenv's /mcp (HTTP and WebSocket) serves MCP tools, and this env has none (every call answers that it does
    # not support MCP); over HTTP it would still open sessions that no connection holds, each a world until the
    # idle timeout, so a few requests could fill the cap. It is not served: /ws is the one way to a session.
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) != "/mcp"]

    @app.get("/sessions", tags=["Health"], summary="Sessions open now, the cap and the idle timeout")
    def sessions() -> dict[str, Any]:
        return {"active": sum(1 for env in list(live) if env.is_open), "max": settings.max_sessions,
                "idle_timeout_s": settings.idle_timeout, "scenario": settings.scenario}

    async def session_error(request: Request, exc: Exception) -> JSONResponse:
        return _refusal(409, str(exc))

    async def bad_value(request: Request, exc: Exception) -> JSONResponse:
        return _refusal(400, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _refusal(422, _validation_line(exc))

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)[:300]
        return _refusal(exc.status_code, f"{detail}: {request.method} {request.url.path}")

    app.add_exception_handler(SessionError, session_error)
    app.add_exception_handler(ValueError, bad_value)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.state.settings = settings
    return app


def serve(settings: ServeSettings) -> None:
    """Run the app on uvicorn until interrupted (WebSocket messages over ``max_body_bytes`` close their connection)."""
    app = make_app(settings.scenario, settings.config, settings.max_sessions, settings.idle_timeout, settings.max_body_bytes)
    print(f"serving RecoWorld ({settings.scenario}) on http://{settings.host}:{settings.port} "
          f"(WebSocket /ws; at most {settings.max_sessions} sessions, idle ones closed after {settings.idle_timeout:g} s)",
          flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, ws_max_size=settings.max_body_bytes, log_level="warning",
                timeout_graceful_shutdown=5)
