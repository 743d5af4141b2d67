"""POLICY as a URL: :class:`ServedPolicy`, a recommender whose slates come from ``recoworld serve-policy``.

For each decision it sends the users' :class:`AgentObservation` (and, when the server asks for it, the
numeric view, so a RecoWorld recommender ranks exactly as in process) to ``URL/act`` and serves the
candidate ids it gets back. Feedback on a slate travels with the next request (or ``/close``). A server
that is down, times out, or answers anything but valid ids is one :class:`PolicyError` line naming the URL.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ValidationError

from recoworld.agents.baselines import BaseRecommender
from recoworld.agents.language.observe import observe_view
from recoworld.agents.protocol import SlateChoice, UserView
from recoworld.tasks.policy_errors import PolicyError
from recoworld.tasks.policy_wire import (ActReply, ActRequest, Array, CatalogPayload, Feedback, PolicyInfo,
                                         RetrainRequest, SessionRequest, ViewPayload)

TIMEOUT = 30.0  # seconds a server may take to answer one request


class ServedPolicy(BaseRecommender):
    """The policy served at ``url`` (one evaluation session, its id random), as a recommender."""

    needs_text = True  # the observation carries the user's words

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        super().__init__(0)
        import httpx

        self.spec, self.url, self.session = url, url.rstrip("/"), uuid.uuid4().hex
        try:
            parsed = httpx.URL(self.url)
        except Exception as exc:  # noqa: BLE001 - httpx raises several kinds for a malformed URL
            raise self._error(f"not a URL ({exc})") from None
        if not parsed.host:
            raise self._error("not a URL (no host)")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self.info: PolicyInfo = self._call("GET", "/info", None, PolicyInfo)
        self.name = self.info.name
        self.needs_observation = self.info.needs_observation
        self._catalog: tuple[Any, str] | None = None  # the catalog object last sent and its sha256
        self._pending: Feedback | None = None

    # ------------------------------------------------------------------ HTTP
    def _error(self, what: str) -> PolicyError:
        return PolicyError(f"policy '{self.spec}': {' '.join(what.split())}")

    def _call(self, method: str, path: str, body: BaseModel | None, reply: type[BaseModel] | None) -> Any:
        import httpx

        try:
            answer = self._http.request(method, path, content=None if body is None else body.model_dump_json(),
                                        headers={"content-type": "application/json"})
        except httpx.TimeoutException:
            raise self._error(f"{path}: no answer within {self._http.timeout.read} s") from None
        except httpx.HTTPError as exc:
            raise self._error(f"{path}: cannot reach the server (is it running?): {type(exc).__name__}: {exc}") from None
        if answer.status_code >= 400:
            try:
                text = str(answer.json().get("error") or answer.text)
            except Exception:  # noqa: BLE001 - a non-JSON error page
                text = answer.text
            raise _Answered(answer.status_code, str(self._error(f"{path} answered {answer.status_code}: {text[:300]}")))
        if reply is None:
            return None
        try:
            return reply.model_validate_json(answer.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise self._error(f"{path} answered garbage, not a {reply.__name__} ({where}: {first['msg']})") from None

    def _send_catalog(self, view: UserView) -> str:
        if self._catalog is None or self._catalog[0] is not view.catalog:
            payload = CatalogPayload.of(view.catalog)
            digest = payload.digest()
            self._call("PUT", f"/catalog/{digest}", payload, None)
            self._catalog = (view.catalog, digest)
        return self._catalog[1]

    # ------------------------------------------------------------ recommender
    def slate(self, view: UserView) -> SlateChoice:
        """Ask the policy server for the slates of ``view``'s users, with the pending feedback; the catalog is sent
        once per digest, again if the server lost it."""
        b, k, m = len(view), view.slate_size, view.candidates.shape[1]
        request = ActRequest(session=self.session, observations=[observe_view(view, i) for i in range(b)],
                             feedback=self._pending)
        for attempt in range(2):
            if self.info.needs_view:
                request.view = ViewPayload.of(view, self._send_catalog(view))
            try:
                reply: ActReply = self._call("POST", "/act", request, ActReply)
                break
            except _Answered as answered:
                if answered.status != 409 or attempt == 1 or not self.info.needs_view:
                    raise
                self._catalog = None  # the server forgot the catalog: send it again
        self._pending = None
        if len(reply.actions) != b:
            raise self._error(f"/act answered {len(reply.actions)} action(s) for {b} user(s)")
        positions = np.empty((b, k), dtype=np.int64)
        for i, action in enumerate(reply.actions):
            ids = action.items or []
            if len(ids) != k or any(not 0 <= j < m for j in ids):
                raise self._error(f"/act answered ids {ids[:k + 2]} for user {view.user_ids[i]}; expected {k} ids "
                                  f"among the candidates 0..{m - 1}")
            positions[i] = ids
        return SlateChoice(positions=positions, propensities=np.ones((b, k)))

    def observe(self, view: UserView, positions: np.ndarray, clicks: np.ndarray, reviewed: np.ndarray) -> None:
        """Keep the feedback on the last slates, sent with the next request (when the served policy observes)."""
        if self.info.observes:
            self._pending = Feedback(positions=Array.of(np.asarray(positions)), clicks=Array.of(np.asarray(clicks)),
                                     reviewed=Array.of(np.asarray(reviewed)))

    def retrain(self, impressions: Any) -> None:
        """Send the day's impressions to the server (when the served policy learns from logs)."""
        if self.info.learns_from_logs:
            columns = {str(c): impressions[c].tolist() for c in impressions.columns}
            self._call("POST", "/retrain", RetrainRequest(session=self.session, columns=columns), None)

    @property
    def learns_from_logs(self) -> bool:
        """Whether the served policy retrains from logs, as the server said when the session opened."""
        return self.info.learns_from_logs

    def reseed(self, key: Sequence[int]) -> None:
        """Nothing: the served policy keeps the random streams it was built with."""
        pass  # the session's policy keeps the streams it was built with

    def close(self) -> None:
        """End the session on the server (sending the last feedback) and the connection."""
        try:
            self._call("POST", "/close", SessionRequest(session=self.session, feedback=self._pending), None)
        except PolicyError:
            pass  # a server that went away has nothing left to close
        finally:
            self._pending = None
            self._http.close()


class _Answered(PolicyError):
    """A 4xx/5xx answer (one line for the user), with its status."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
