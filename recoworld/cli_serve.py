"""``recoworld serve``: the world as an openenv-core environment for language agents (see
:mod:`recoworld.env.agent_server`). openenv, FastAPI and uvicorn load only when the command runs."""

from __future__ import annotations

import typer


def serve(
    scenario: str = typer.Option("quickstart", "--scenario", "-s", help="Bundled scenario name or YAML path of every session's world."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default; 0.0.0.0 exposes the world to the network)."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port."),
    max_sessions: int = typer.Option(64, "--max-sessions", help="Concurrent sessions (one WebSocket each); one more is refused."),
    idle_timeout: float = typer.Option(300.0, "--idle-timeout", help="Seconds without a message after which a session is closed."),
    max_body_bytes: int = typer.Option(64 * 1024, "--max-body-bytes", help="Largest request body or WebSocket message."),
) -> None:
    """Serve the world to language agents: openenv's reset / step / state over HTTP and WebSocket, one world per session."""
    from recoworld.cli_output import fail

    try:
        from recoworld.env.agent_server import ServeSettings, serve as run_server
    except ImportError as exc:
        raise fail(str(exc).splitlines()[0])
    from pydantic import ValidationError

    from recoworld.scenario import format_validation_error

    try:
        settings = ServeSettings(scenario=scenario, host=host, port=port, max_sessions=max_sessions,
                                 idle_timeout=idle_timeout, max_body_bytes=max_body_bytes)
    except ValidationError as exc:
        raise fail(format_validation_error(exc, "serve"))
    try:
        run_server(settings)
    except (ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
