"""Fixtures: the webhooks served by kopf over HTTPS, a local OIDC issuer, policies and people."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from identity.issuer import AUDIENCE, LocalIssuer, local_issuer
from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier
from jitgrant.lifecycle.open_requests import OpenRequests, RefusalTally
from jitgrant.metrics import Metrics
from jitgrant.models import GrantPolicySpec
from jitgrant.policy.gate import ReadyState
from jitgrant.settings import OperatorSettings
from jitgrant_testing.fakeport import FakeAudit, FakeCluster, FakePort
from jitgrant_testing.tls import client_ssl_context, generate_webhook_tls

from .apiserver import AdmissionChain, WebhookEndpoint, running_webhooks, user

KEY = b"receipt-key-for-tests-0123456789abcdef"
NS = "agents"
AGENT = user("system:serviceaccount:agents:oncall", "system:serviceaccounts", "system:serviceaccounts:agents")
HELPER = user(
    "system:serviceaccount:agents:helper", "system:serviceaccounts", "system:serviceaccounts:agents"
)
ALICE = user("alice")
BOB = user("bob", "sre")
CAROL = user("carol", "sre")
MALLORY = user("mallory", "devs")
OPERATOR = user("system:serviceaccount:jitgrant-system:jitgrant", "system:serviceaccounts")


def policy_spec(
    *, issuer: str, approver_groups: tuple[str, ...] = ("sre",), min_approvals: int = 2
) -> GrantPolicySpec:
    return GrantPolicySpec.model_validate(
        {
            "requesters": {
                "serviceAccounts": [{"namespace": "agents", "name": "oncall"}],
                "oidc": [
                    {"issuer": issuer, "audience": AUDIENCE, "subjects": ["agent-7"], "groups": ["release"]}
                ],
            },
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-deployments"}],
            "maxDuration": "15m",
            "approval": {
                "required": True,
                "approvers": {"users": ["alice"], "groups": list(approver_groups)},
                "minApprovals": min_approvals,
            },
        }
    )


@dataclass
class WebhookRuntime:
    """What the webhooks read from `memo.runtime` (operator/context.py's AdmissionContext, which the
    operator's Runtime is too), over the fake cluster port: nobody may delete a request there."""

    settings: OperatorSettings
    oidc: OIDCVerifier
    policies: dict[str, GrantPolicySpec] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    own: FakePort = field(default_factory=lambda: FakePort(FakeCluster()))
    audit: FakeAudit = field(default_factory=FakeAudit)
    metrics: Metrics = field(default_factory=lambda: Metrics(CollectorRegistry()))
    open_requests: OpenRequests = field(default_factory=OpenRequests)
    refusals: RefusalTally = field(default_factory=RefusalTally)
    watched_policies: dict[str, GrantPolicySpec] = field(default_factory=dict)
    watched_ready: dict[str, ReadyState] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def operator_usernames(self) -> frozenset[str]:
        return frozenset({self.settings.operator_username})

    async def get_policy(self, name: str) -> GrantPolicySpec | None:
        return self.policies.get(name)


def request_body(name: str = "restart-checkout", *, policy: str = "prod", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "policy": policy,
            "namespace": "payments",
            "clusterRole": "jit-restart-deployments",
            "duration": "10m",
            "justification": "INC-4711",
            **spec,
        },
    }


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[LocalIssuer]:
    async with local_issuer(tmp_path / "issuer") as running:
        yield running


@pytest.fixture
def runtime(issuer: LocalIssuer) -> WebhookRuntime:
    return WebhookRuntime(
        settings=OperatorSettings(receipt_key=KEY, operator_namespace="jitgrant-system"),
        oidc=OIDCVerifier(keys=JWKSCache(ssl_context=issuer.ssl_context())),
        policies={
            "prod": policy_spec(issuer=issuer.url),
            "sloppy": policy_spec(issuer=issuer.url, approver_groups=("sre", "system:serviceaccounts")),
        },
    )


@pytest.fixture
async def endpoint(tmp_path: Path, runtime: WebhookRuntime) -> AsyncIterator[WebhookEndpoint]:
    tls = generate_webhook_tls(tmp_path / "webhook", hosts=["127.0.0.1"])
    async with running_webhooks(tls=tls, runtime=runtime, client_ssl=client_ssl_context(tls)) as running:
        yield running


@pytest.fixture
def chain(endpoint: WebhookEndpoint) -> AdmissionChain:
    return AdmissionChain(endpoint=endpoint)
