"""``recoworld serve-policy POLICY``: a policy behind HTTP for ``recoworld evaluate URL`` (see
:mod:`recoworld.tasks.policy_server`). FastAPI and uvicorn load only when the command runs."""

from __future__ import annotations

from typing import Optional

import typer


def serve_policy(
    policy: str = typer.Argument(..., help="A registered recommender, package.module:Class, an SB3 .zip or a tuned agent folder."),
    params: Optional[str] = typer.Option(None, "--params", help="The recommender's parameters as a JSON object."),
    seed: int = typer.Option(0, "--seed", help="The seed every session's policy is built with (tasks build with 0)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default; 0.0.0.0 exposes the policy to the network)."),
    port: int = typer.Option(8001, "--port", "-p", help="TCP port."),
    max_sessions: int = typer.Option(16, "--max-sessions", help="Open sessions (one per evaluation); one more is refused."),
    max_body_bytes: int = typer.Option(16 * 1024 * 1024, "--max-body", help="Largest request body in bytes (a catalog is ~2 MB)."),
    idle_timeout: float = typer.Option(600.0, "--idle-timeout", help="Seconds unused after which a session makes way for a new one."),
) -> None:
    """Serve a policy: POST /act answers candidate ids for language-agent observations; score it with recoworld evaluate URL."""
    from pydantic import ValidationError

    from recoworld.cli_evaluate import _params
    from recoworld.cli_output import fail
    from recoworld.scenario import format_validation_error
    from recoworld.tasks.policies import PolicyError

    try:
        from recoworld.tasks.policy_server import PolicyServeSettings, serve
    except ImportError as exc:
        raise fail(str(exc).splitlines()[0])
    try:
        settings = PolicyServeSettings(policy=policy, params=_params(params), seed=seed, host=host, port=port,
                                       max_sessions=max_sessions, max_body_bytes=max_body_bytes,
                                       idle_timeout=idle_timeout)
    except ValidationError as exc:
        raise fail(format_validation_error(exc, "serve-policy"))
    try:
        serve(settings)
    except (PolicyError, ValueError, OSError) as exc:
        raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
