from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
AGENT = "system:serviceaccount:agents:oncall"
BINDING_REASON = (
    'RBAC: allowed by RoleBinding "jit-restart-checkout/payments" of ClusterRole "jit-restart" '
    'to ServiceAccount "oncall/agents"'
)


def audit_event(
    *,
    verb: str = "patch",
    resource: str = "deployments",
    name: str = "checkout",
    namespace: str = "payments",
    user: str = AGENT,
    at: datetime = T0 + timedelta(minutes=1),
    code: int = 200,
    reason: str | None = BINDING_REASON,
    stage: str = "ResponseComplete",
    audit_id: str | None = None,
    extra: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """An Event as kube-apiserver v1.30 writes it at level Metadata (field for field)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or str(uuid.uuid4()),
        "stage": stage,
        "requestURI": f"/apis/apps/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb,
        "user": {
            "username": user,
            "uid": "sa-uid",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.30.0 (linux/amd64) kubernetes/7c48c2b",
        "objectRef": {
            "resource": resource,
            "namespace": namespace,
            "name": name,
            "apiGroup": "apps",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
    }
    if extra:
        event["user"]["extra"] = extra
    if stage == "RequestReceived":
        del event["responseStatus"]
    if code == 403:
        event["responseStatus"].update(status="Failure", reason="Forbidden", message="forbidden")
        event["annotations"] = {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
    elif reason is not None:
        event["annotations"] = {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": reason,
        }
    return event


def jsonl(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            if server._server is not None:  # stop() shuts it down; close its listening socket too
                server._server.server_close()
