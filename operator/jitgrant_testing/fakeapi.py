"""A fake API server behind jitgrant.client.transport.MockTransport: the fast tier's double of the
HTTP layer. It answers the few routes the client, the CLI and the MCP server call, from objects a
test puts in it, the way kube-apiserver answers them (Status errors, Warning headers, watch lines),
so everything above the wire runs as against a cluster, without starting one per test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from jitgrant.client.transport import HttpRequest, MockResponse, MockTransport, watch_event

GROUP = "/apis/jitgrant.dev/v1alpha1"
ME = "system:serviceaccount:agents:oncall-agent"


def status(code: int, message: str, reason: str = "") -> MockResponse:
    return MockResponse(
        code, json={"kind": "Status", "status": "Failure", "message": message, "reason": reason, "code": code}
    )


def warning(text: str) -> tuple[str, str]:
    """A Warning header as the API server writes it (RFC 7234, quotes escaped)."""
    return ("Warning", '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')


def access_request(name: str, *, phase: str | None = None, **status_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {
            "name": name,
            "namespace": "agents",
            "resourceVersion": "10",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "policy": "prod-restart",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "justification": "INC-1 checkout stuck",
            "requester": {"username": ME},
            "requestKey": "k1",
        },
        "status": {"phase": phase, **status_fields} if phase else dict(status_fields),
    }


@dataclass
class FakeApi:
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Answers a test sets for one route ("POST /apis/..."): used before the defaults below.
    answers: dict[str, MockResponse] = field(default_factory=dict)
    # Lines a watch on requests streams, then it ends (the server's timeoutSeconds).
    watch_events: list[bytes] = field(default_factory=list)
    transport: MockTransport = field(init=False)

    def __post_init__(self) -> None:
        self.transport = MockTransport(self.handle)

    def seen(self, method: str = "") -> list[str]:
        return [f"{r.method} {r.path}" for r in self.transport.requests if not method or r.method == method]

    async def _stream(self) -> AsyncIterator[bytes]:
        events, self.watch_events = self.watch_events, []
        for line in events:
            yield line

    def handle(self, request: HttpRequest) -> MockResponse:
        route = f"{request.method} {request.path}"
        if route in self.answers:
            return self.answers[route]
        if request.path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
            return MockResponse(
                201, json={"status": {"userInfo": {"username": ME, "groups": ["system:authenticated"]}}}
            )
        requests = f"{GROUP}/namespaces/agents/accessrequests"
        if request.path == f"{GROUP}/grantpolicies":
            return MockResponse(
                200, json={"kind": "GrantPolicyList", "metadata": {}, "items": list(self.policies.values())}
            )
        if request.path.startswith(f"{GROUP}/grantpolicies/"):
            name = request.path.rsplit("/", 1)[1]
            if name in self.policies:
                return MockResponse(200, json=self.policies[name])
            return status(403, f'grantpolicies.jitgrant.dev "{name}" is forbidden', "Forbidden")
        if request.path.startswith(f"{requests}/") and request.method == "GET":
            name = request.path.rsplit("/", 1)[1]
            if name in self.requests:
                return MockResponse(200, json=self.requests[name])
            return status(404, f'accessrequests.jitgrant.dev "{name}" not found', "NotFound")
        if request.path.startswith(f"{requests}/") and request.method == "PATCH":
            name = request.path.rsplit("/", 1)[1]
            patch = request.json()
            obj = self.requests[name]
            obj["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])
            return MockResponse(200, json=obj)
        if request.path in (requests, f"{GROUP}/accessrequests") and request.method == "GET":
            if request.query.get("watch") == "true":
                return MockResponse(200, stream=self._stream())
            items = list(self.requests.values())
            return MockResponse(
                200, json={"kind": "AccessRequestList", "metadata": {"resourceVersion": "11"}, "items": items}
            )
        return status(404, f"the fake API server has no route {route}", "NotFound")


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return watch_event(kind, json.loads(json.dumps(obj)))


def grant_policy(name: str) -> dict[str, Any]:
    """A policy offering ME (agents/oncall-agent) a restart of checkout, as examples/oncall-restart."""
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "15m",
            "approval": {"required": False},
        },
    }
