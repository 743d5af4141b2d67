"""``recoworld serve-policy``: a POLICY (a recommender, package.module:Class, an SB3 zip or a tuned agent
folder) behind HTTP, the other direction from ``recoworld serve`` (which serves the world to an agent).

``POST /act`` answers one :class:`AgentAction` per user of an :class:`ActRequest`; ``GET /info`` names the
policy; ``POST /retrain`` hands impression logs to a policy that learns from them; ``POST /close`` ends a
session. Each session (an id the client picks, e.g. one evaluation) gets its own policy, built fresh with
the same seed, so sessions never touch each other's state; within a session the policy keeps its per-user
state as it does in process. Refusals are one line (``{"error": ...}``, 4xx); a body over ``max_body_bytes``
is 413; nothing a client sends takes the server down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recoworld.agents.baselines import BaseRecommender, WrapsBase
from recoworld.agents.language.protocol import AgentAction
from recoworld.tasks.policies import CheckedSlates, Policy, PolicyError, load_policy
from recoworld.tasks.policy_wire import (ActReply, ActRequest, CatalogPayload, Feedback, PolicyInfo, RetrainRequest,
                                         SessionRequest)
from recoworld.world.catalog import Catalog

log = logging.getLogger("recoworld.serve_policy")
MAX_CATALOGS = 4  # catalogs kept (a population run sends a new one as creators publish); the oldest goes first


class PolicyServeSettings(BaseModel):
    """What ``recoworld serve-policy`` runs: the policy, the address and the limits."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(description="POLICY as recoworld evaluate takes it (not a URL).")
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, description="The seed every session's policy is built with (tasks use 0).")
    host: str = Field("127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(8001, ge=0, le=65535)
    max_sessions: int = Field(16, ge=1, le=10_000, description="Open sessions; one more is refused until one closes.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body (a catalog is ~2 MB).")
    idle_timeout: float = Field(600.0, gt=0, description="Seconds unused after which a session may be dropped for a new one.")


class Refusal(Exception):
    """A request the server answers with one line and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _observes(rec: Any) -> bool:
    """Whether ``rec.observe`` does anything (BaseRecommender's is a no-op; a wrapper observes if its base does)."""
    while True:
        if isinstance(rec, CheckedSlates) or isinstance(rec, WrapsBase) and type(rec).observe is WrapsBase.observe:
            rec = rec.base
            continue
        return type(rec).observe is not BaseRecommender.observe


class _Session:
    def __init__(self, rec: BaseRecommender) -> None:
        self.rec, self.lock, self.last_view, self.used = rec, threading.Lock(), None, time.monotonic()


class PolicyService:
    """The sessions and catalogs of one served policy (thread-safe: a tuned agent's requests run in a thread pool)."""

    def __init__(self, build: Callable[[], Policy], spec: str, max_sessions: int = 16, idle_timeout: float = 600.0) -> None:
        self.build, self.spec, self.max_sessions, self.idle_timeout = build, spec, max_sessions, idle_timeout
        first = build()  # fail at start, not at the first request
        rec = first.as_recommender()
        self.info = PolicyInfo(name=first.name, kind=first.kind, spec=spec, needs_view=True, observes=_observes(rec),
                               needs_observation=bool(rec.needs_observation),
                               learns_from_logs=bool(rec.learns_from_logs), max_sessions=max_sessions)
        self._spare: BaseRecommender | None = rec
        self.sessions: dict[str, _Session] = {}
        self.catalogs: OrderedDict[str, Catalog] = OrderedDict()
        self.lock = threading.Lock()

    def _session(self, sid: str) -> _Session:
        with self.lock:
            now = time.monotonic()
            if sid in self.sessions:
                self.sessions[sid].used = now
                return self.sessions[sid]
            for old in [k for k, v in self.sessions.items() if now - v.used > self.idle_timeout]:
                del self.sessions[old]  # a client that left without closing
            if len(self.sessions) >= self.max_sessions:
                raise Refusal(503, f"{len(self.sessions)} sessions open (the limit); close one (POST /close) first")
            rec, self._spare = self._spare, None
        rec = rec if rec is not None else self.build().as_recommender()  # outside the lock: a model may take seconds
        with self.lock:
            return self.sessions.setdefault(sid, _Session(rec))

    def put_catalog(self, digest: str, payload: CatalogPayload) -> None:
        """Store a catalog under its SHA-256 ``digest``, refusing a payload whose digest differs (400) or that is no
        catalog (422)."""
        if payload.digest() != digest:
            raise Refusal(400, f"catalog: its sha256 is {payload.digest()}, not {digest}")
        try:
            catalog = payload.catalog()
        except (ValueError, TypeError) as exc:
            raise Refusal(422, str(exc).splitlines()[0] if str(exc) else "catalog: invalid")
        with self.lock:
            self.catalogs[digest] = catalog
            while len(self.catalogs) > MAX_CATALOGS:
                self.catalogs.popitem(last=False)

    def _feedback(self, session: _Session, fb: Feedback | None) -> None:
        if fb is None:
            return
        if session.last_view is None:
            raise Refusal(409, "feedback: this session has served no slate yet")
        try:
            pos, clicks, reviewed = fb.positions.numpy(), fb.clicks.numpy(), fb.reviewed.numpy()
        except ValueError as exc:
            raise Refusal(422, f"feedback: {exc}")
        shape = (len(session.last_view), session.last_view.slate_size)
        if any(a.shape != shape for a in (pos, clicks, reviewed)):
            raise Refusal(422, f"feedback: arrays must have the last slates' shape {list(shape)}")
        if pos.size and (pos.min() < 0 or pos.max() >= session.last_view.candidates.shape[1]):
            raise Refusal(422, "feedback: positions outside the last slates' candidates")
        session.rec.observe(session.last_view, pos.astype(np.int64), clicks.astype(bool), reviewed.astype(bool))

    def act(self, req: ActRequest) -> ActReply:
        """Slates for the request's users: the session's feedback first, then the policy on the numeric view over a
        stored catalog (422 without a view, 409 for an unknown catalog)."""
        if req.view is None:
            raise Refusal(422, f"view: policy '{self.spec}' is a RecoWorld recommender; send the numeric view")
        if len(req.view.user_ids) != len(req.observations):
            raise Refusal(422, f"view: {len(req.view.user_ids)} user(s) for {len(req.observations)} observation(s)")
        with self.lock:
            catalog = self.catalogs.get(req.view.catalog)
        if catalog is None:
            raise Refusal(409, f"catalog {req.view.catalog}: unknown; PUT it to /catalog/{req.view.catalog} first")
        try:
            view = req.view.view(catalog)
        except (ValueError, IndexError, TypeError) as exc:
            raise Refusal(422, f"view: {exc}" if not str(exc).startswith("view") else str(exc))
        session = self._session(req.session)
        with session.lock:
            try:
                self._feedback(session, req.feedback)
                choice = session.rec.slate(view)
            except PolicyError as exc:
                raise Refusal(500, str(exc))
            session.last_view = view
        return ActReply(actions=[AgentAction(items=[int(p) for p in row]) for row in choice.positions])

    def retrain(self, req: RetrainRequest) -> None:
        """Retrain the session's policy on the impressions sent as columns of equal length."""
        import pandas as pd

        lengths = {len(v) for v in req.columns.values()}
        if len(lengths) > 1:
            raise Refusal(422, f"columns: of different lengths {sorted(lengths)}")
        session = self._session(req.session)
        with session.lock:
            try:
                session.rec.retrain(pd.DataFrame(req.columns))
            except PolicyError as exc:
                raise Refusal(500, str(exc))

    def close(self, req: SessionRequest) -> bool:
        """End a session, passing its last feedback to the policy first; False when there was no such session."""
        with self.lock:
            session = self.sessions.pop(req.session, None)
        if session is not None and req.feedback is not None:
            with session.lock:
                try:
                    self._feedback(session, req.feedback)
                except PolicyError as exc:
                    raise Refusal(500, str(exc))
        return session is not None


def make_app(settings: PolicyServeSettings, service: PolicyService | None = None) -> Any:
    """The FastAPI app serving ``settings.policy`` (a :class:`PolicyError` line when it cannot be loaded)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from recoworld.env.agent_server import RequestGuard, _refusal, _validation_line

    if settings.policy.startswith(("http://", "https://")):
        raise PolicyError(f"policy '{settings.policy}': serve-policy serves a policy it can load, not another URL")
    service = service or PolicyService(lambda: load_policy(settings.policy, settings.seed, settings.params),
                                       settings.policy, settings.max_sessions, settings.idle_timeout)
    app = FastAPI(title="RecoWorld policy", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.exception_handler(Refusal)
    async def refused(_: Request, exc: Refusal) -> Any:
        return _refusal(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        return _refusal(422, _validation_line(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        return _refusal(exc.status_code, str(exc.detail))

    @app.get("/info")
    def info() -> PolicyInfo:
        return service.info.model_copy(update={"sessions": len(service.sessions)})

    @app.put("/catalog/{digest}")
    def put_catalog(digest: str, payload: CatalogPayload) -> dict[str, str]:
        service.put_catalog(digest, payload)
        return {"catalog": digest}

    from starlette.concurrency import run_in_threadpool

    threaded = service.info.kind != "recommender"  # a language model's slate takes seconds: off the event loop

    @app.post("/act")
    async def act(req: ActRequest) -> ActReply:  # a recommender's slate takes ~1 ms: less than a thread hop
        return await run_in_threadpool(service.act, req) if threaded else service.act(req)

    @app.post("/retrain")
    def retrain(req: RetrainRequest) -> dict[str, bool]:
        service.retrain(req)
        return {"retrained": True}

    @app.post("/close")
    def close(req: SessionRequest) -> dict[str, bool]:
        return {"closed": service.close(req)}

    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    return app


def serve(settings: PolicyServeSettings) -> None:
    """Run the policy server on uvicorn until interrupted."""
    import uvicorn

    app = make_app(settings)
    log.warning("serving policy '%s' on http://%s:%d (POST /act, GET /info)", settings.policy, settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


