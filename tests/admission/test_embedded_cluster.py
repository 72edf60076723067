"""The webhooks behind a real request path: the embedded API server authenticates bearer tokens,
authorizes with RBAC, enforces the CRD schema and CEL rules, and calls the webhooks over HTTPS with
AdmissionReview v1, exactly as configured in Mutating/ValidatingWebhookConfigurations.

RBAC here is deliberately generous (the agent may update and patch its requests): what stops the
attacks below must be the webhooks, not RBAC.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from embedkube import EmbeddedCluster, User
from jitgrant.approvals.counting import tally
from jitgrant.approvals.receipts import parse_recorded
from jitgrant.approvals.review import is_sealed
from jitgrant.models import AccessRequest
from jitgrant.models.crd import all_crds
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION
from jitgrant_testing.tls import client_ssl_context, generate_webhook_tls

from .apiserver import WebhookEndpoint, running_webhooks
from .conftest import KEY, WebhookRuntime, request_body

BASE = "/apis/jitgrant.dev/v1alpha1/namespaces/agents/accessrequests"


@dataclass
class Caller:
    session: aiohttp.ClientSession
    url: str
    token: str

    async def call(self, method: str, path: str, body: Any = None, *, patch: bool = False) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if patch:
            headers["Content-Type"] = "application/merge-patch+json"
        async with self.session.request(method, self.url + path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(crd_manifests=list(all_crds().values())) as running:
        yield running


def _hook(name: str, url: str, ca: bytes, *, resources: list[str], operations: list[str]) -> dict[str, Any]:
    return {
        "name": f"{name}.jitgrant.dev",
        "clientConfig": {"url": f"{url}/{name}", "caBundle": base64.b64encode(ca).decode()},
        "rules": [
            {
                "apiGroups": ["jitgrant.dev"],
                "apiVersions": ["v1alpha1"],
                "operations": operations,
                "resources": resources,
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": "Fail",
        "sideEffects": "NoneOnDryRun",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
    }


@pytest.fixture
async def webhooks(tmp_path: Path, runtime: WebhookRuntime) -> AsyncIterator[WebhookEndpoint]:
    tls = generate_webhook_tls(tmp_path / "webhook", hosts=["127.0.0.1"])
    async with running_webhooks(tls=tls, runtime=runtime, client_ssl=client_ssl_context(tls)) as endpoint:
        yield endpoint


@dataclass
class People:
    admin: Caller
    agent: Caller
    alice: Caller
    bob: Caller
    mallory: Caller


@pytest.fixture
async def people(cluster: EmbeddedCluster, webhooks: WebhookEndpoint) -> AsyncIterator[People]:
    async with aiohttp.ClientSession() as session:
        admin = Caller(session, cluster.url, cluster.admin_token)
        for ns in ("agents", "payments"):
            assert (await admin.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}}))[0] == 201
        ca = webhooks.ca_pem
        mutating = {
            "metadata": {"name": "jitgrant"},
            "webhooks": [
                _hook(
                    "stamp-requester",
                    webhooks.url,
                    ca,
                    resources=["accessrequests"],
                    operations=["CREATE", "UPDATE"],
                )
            ],
        }
        validating = {
            "metadata": {"name": "jitgrant"},
            "webhooks": [
                _hook(
                    "validate-request",
                    webhooks.url,
                    ca,
                    resources=["accessrequests"],
                    operations=["CREATE", "UPDATE"],
                ),
                _hook(
                    "guard-status",
                    webhooks.url,
                    ca,
                    resources=["accessrequests/status"],
                    operations=["UPDATE"],
                ),
            ],
        }
        registration = "/apis/admissionregistration.k8s.io/v1/"
        assert (await admin.call("POST", registration + "mutatingwebhookconfigurations", mutating))[0] == 201
        assert (await admin.call("POST", registration + "validatingwebhookconfigurations", validating))[
            0
        ] == 201
        role = {
            "metadata": {"name": "accessrequests-all", "namespace": "agents"},
            "rules": [
                {
                    "apiGroups": ["jitgrant.dev"],
                    "resources": ["accessrequests", "accessrequests/status"],
                    "verbs": ["create", "get", "list", "watch", "update", "patch"],
                }
            ],
        }
        rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/agents/"
        assert (await admin.call("POST", rbac + "roles", role))[0] == 201
        tokens = {
            "agent": cluster.add_user(
                User(
                    "system:serviceaccount:agents:oncall",
                    "sa-uid",
                    ("system:serviceaccounts", "system:serviceaccounts:agents"),
                )
            ),
            "alice": cluster.add_user(User("alice", "uid-alice", ())),
            "bob": cluster.add_user(User("bob", "uid-bob", ("sre",))),
            "mallory": cluster.add_user(User("mallory", "uid-mallory", ("devs",))),
        }
        binding = {
            "metadata": {"name": "everyone", "namespace": "agents"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "accessrequests-all",
            },
            "subjects": [
                {"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
        assert (await admin.call("POST", rbac + "rolebindings", binding))[0] == 201
        yield People(
            admin=admin, **{name: Caller(session, cluster.url, token) for name, token in tokens.items()}
        )


def _approve(annotation: str = "jitgrant.dev/approve", value: str = "") -> dict[str, Any]:
    return {"metadata": {"annotations": {annotation: value}}}


async def test_prod_approval_story_through_the_api_server(people: People, runtime: WebhookRuntime) -> None:
    forged = request_body("restart-checkout", requester={"username": "alice", "groups": ["sre"]})
    status, created = await people.agent.call("POST", BASE, forged)
    assert status == 201, created
    assert created["spec"]["requester"]["username"] == "system:serviceaccount:agents:oncall"
    assert is_sealed(created, key=KEY)

    status, refusal = await people.mallory.call("PATCH", f"{BASE}/restart-checkout", _approve(), patch=True)
    assert status == 403
    assert refusal["message"] == (
        'admission webhook "validate-request.jitgrant.dev" denied the request: '
        "mallory is not an approver for policy prod (approvers: users alice; groups sre)"
    )

    status, _ = await people.agent.call("PATCH", f"{BASE}/restart-checkout", _approve(), patch=True)
    assert status == 403

    assert (await people.alice.call("PATCH", f"{BASE}/restart-checkout", _approve(value="ok"), patch=True))[
        0
    ] == 200
    status, twice = await people.alice.call(
        "PATCH", f"{BASE}/restart-checkout", _approve(value="again"), patch=True
    )
    assert status == 403 and "alice already approved this request" in twice["message"]

    spec_change = {"spec": {"clusterRole": "cluster-admin"}}
    status, immutable = await people.agent.call("PATCH", f"{BASE}/restart-checkout", spec_change, patch=True)
    assert status in (403, 422) and "spec is immutable" in immutable["message"]

    status_patch = {"status": {"phase": "Approved"}}
    status, guarded = await people.agent.call(
        "PATCH", f"{BASE}/restart-checkout/status", status_patch, patch=True
    )
    assert status == 403 and "written only by the jitgrant operator" in guarded["message"]

    assert (await people.bob.call("PATCH", f"{BASE}/restart-checkout", _approve(), patch=True))[0] == 200
    status, stored = await people.admin.call("GET", f"{BASE}/restart-checkout")
    assert status == 200
    requester = AccessRequest.from_object(stored).spec.requester
    assert requester is not None
    result = tally(
        policy=runtime.policies["prod"].approval,
        requester=requester,
        recorded=parse_recorded(stored["metadata"]["annotations"][APPROVALS_ANNOTATION]),
        key=KEY,
        request_uid=stored["metadata"]["uid"],
        spec=stored["spec"],
    )
    assert result.approved and [entry.approver for entry in result.counted] == ["alice", "bob"]
    assert "jitgrant.dev/approve" not in stored["metadata"]["annotations"]
