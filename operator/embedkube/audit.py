"""The API server's audit log: one ``audit.k8s.io/v1`` Event per request, as JSON lines.

What kube-apiserver writes with ``--audit-log-path`` and the policy the real control plane of the
tests uses (``RequestResponse`` for RBAC and ``jitgrant.dev`` objects, ``Metadata`` for the rest): the same
fields and the same ``authorization.k8s.io/decision`` and ``authorization.k8s.io/reason``
annotations (``allow``/``forbid``; the RBAC authorizer's ``RBAC: allowed by RoleBinding
"<name>/<namespace>" of ClusterRole "<role>" to ServiceAccount "<sa>/<namespace>"``, empty when
refused or allowed by ``system:masters``). One Event per request, at stage ``ResponseComplete``
(the real server also writes ``RequestReceived``; readers keep only the last stage anyway).

The server stashes on each request what only it knows: the authenticated user
(``AUTHENTICATED_USER``), the user after impersonation (``EFFECTIVE_USER``) and the authorization
reason (``AUTHORIZATION_REASON``, present only when authorization allowed the request).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .authn import User
from .clock import Clock


def _request_key(name: str, kind: type[Any]) -> Any:
    # aiohttp >= 3.12 warns on plain string keys (an error under -W error); older ones only have those.
    factory = getattr(web, "RequestKey", None)
    return name if factory is None else factory(name, kind)


AUTHENTICATED_USER = _request_key("embedkube.audit.user", User)
EFFECTIVE_USER = _request_key("embedkube.audit.effective_user", User)
AUTHORIZATION_REASON = _request_key("embedkube.audit.reason", object)  # str, or None: authorization off
REQUEST_INFO = _request_key("embedkube.audit.info", object)  # server.RequestInfo

DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: API groups logged at level RequestResponse (request and response bodies), as in
#: jitgrant_testing/controlplane.py's audit policy; everything else at Metadata.
REQUEST_RESPONSE_GROUPS = frozenset({"rbac.authorization.k8s.io", "jitgrant.dev"})


def _micro(clock_time: Any) -> str:
    """``metav1.MicroTime``: microseconds, UTC, ``Z``."""
    return str(clock_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None  # YAML or protobuf bodies are not logged as objects


def _user(user: User) -> dict[str, Any]:
    data: dict[str, Any] = {"username": user.name}
    if user.uid:
        data["uid"] = user.uid
    if user.groups:
        data["groups"] = list(user.groups)
    if user.extra:
        data["extra"] = {key: list(values) for key, values in user.extra.items()}
    return data


class AuditLogWriter:
    """Appends Events to a file, one line each, flushed per line (a reader may tail it)."""

    def __init__(
        self, path: Path, clock: Clock, *, request_response_groups: frozenset[str] = REQUEST_RESPONSE_GROUPS
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._bodies_for = request_response_groups
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as log:
            log.write(line)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        received = self._clock.now()
        response = await handler(request)
        user: User | None = request.get(AUTHENTICATED_USER)
        if user is not None:  # unauthenticated requests and health checks are not audited here
            event = self.event(request, response, user=user, received=received)
            info = request.get(REQUEST_INFO)
            ref = event.get("objectRef")
            if ref is not None and "name" not in ref and info is not None and info.verb == "create":
                # Upstream completes objectRef with the created object's name (LogRequestObject).
                created = _json_or_none(await request.read())
                name = (created.get("metadata") or {}).get("name") if isinstance(created, dict) else None
                if name:
                    ref["name"] = name
            if info is not None and info.resource_request and info.group in self._bodies_for:
                await self._add_bodies(event, request, response)
            self.write(event)
        return response

    @staticmethod
    async def _add_bodies(event: dict[str, Any], request: web.Request, response: web.StreamResponse) -> None:
        """Level RequestResponse: the request's and the response's objects, where they are JSON."""
        event["level"] = "RequestResponse"
        bodies: dict[str, Any] = {}
        if request.can_read_body or request.body_exists:
            bodies["requestObject"] = _json_or_none(await request.read())  # cached by the handler's read
        body = getattr(response, "body", None)
        if isinstance(body, bytes):
            bodies["responseObject"] = _json_or_none(body)
        # Upstream's field order: the objects come right after responseStatus.
        tail: dict[str, Any] = {
            key: event.pop(key)
            for key in ("requestReceivedTimestamp", "stageTimestamp", "annotations")
            if key in event
        }
        event.update({key: value for key, value in bodies.items() if value is not None})
        event.update(tail)

    def event(
        self, request: web.Request, response: web.StreamResponse, *, user: User, received: Any
    ) -> dict[str, Any]:
        effective: User = request.get(EFFECTIVE_USER) or user
        info = request.get(REQUEST_INFO)
        reason: str | None = request.get(AUTHORIZATION_REASON)
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": request.headers.get("Audit-ID") or str(uuid.uuid4()),
            "stage": "ResponseComplete",
            "requestURI": request.path_qs,
            "verb": getattr(info, "verb", "") or request.method.lower(),
            "user": _user(user),
            "sourceIPs": [request.remote] if request.remote else [],
            "userAgent": request.headers.get("User-Agent", ""),
        }
        if effective is not user:
            event["impersonatedUser"] = _user(effective)
        if info is not None and info.resource_request:
            ref = {
                "resource": info.resource,
                "namespace": info.namespace,
                "name": info.name,
                "apiGroup": info.group,
                "apiVersion": info.version,
                "subresource": info.subresource,
            }
            event["objectRef"] = {key: value for key, value in ref.items() if value}
        event["responseStatus"] = self._status(response)
        event["requestReceivedTimestamp"] = _micro(received)
        event["stageTimestamp"] = _micro(self._clock.now())
        if reason is not None:
            event["annotations"] = {DECISION_ANNOTATION: "allow", REASON_ANNOTATION: reason}
        elif response.status == 403:
            event["annotations"] = {DECISION_ANNOTATION: "forbid", REASON_ANNOTATION: ""}
        return event

    @staticmethod
    def _status(response: web.StreamResponse) -> dict[str, Any]:
        status: dict[str, Any] = {"metadata": {}, "code": response.status}
        body = getattr(response, "text", None) if response.status >= 400 else None
        if body:
            try:
                failure = json.loads(body)
            except ValueError:
                return status
            for key in ("status", "message", "reason"):
                if isinstance(failure, dict) and failure.get(key):
                    status[key] = failure[key]
        return status
