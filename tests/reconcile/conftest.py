"""The reconciler and the sweep on the in-memory cluster port: no server, virtual time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from jitgrant.approvals.receipts import dump_recorded, parse_recorded, record_decision
from jitgrant.audit.records import EventType
from jitgrant.metrics import Metrics
from jitgrant.models import RequesterStamp
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION, REVOKE_ANNOTATION
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.driver import Reconciler
from jitgrant.settings import OperatorSettings
from jitgrant_testing.fakeport import FakeAudit, FakeCluster, FakeEvents, FakePort

KEY = b"reconcile-unit-test-key-0123456789abcdef"
NS = "agents"
AGENT = RequesterStamp(
    username="system:serviceaccount:agents:oncall-agent",
    uid="uid-agent",
    groups=("system:serviceaccounts", "system:serviceaccounts:agents"),
)
_REQUESTERS = {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]}
AUTO_POLICY = {
    "requesters": _REQUESTERS,
    "namespaces": ["payments", "missing"],
    "grants": [{"clusterRole": "jit-restart-checkout"}],
    "maxDuration": "15m",
    "approval": {"required": False},
    # These tests file several requests for one scope from one agent to test other things: the
    # one-open-request-per-scope guardrail (tests/lifecycle/test_open_requests.py) is off here.
    "limits": {"oneOpenPerScope": False},
}
PROD_POLICY = {
    **AUTO_POLICY,
    "approval": {"required": True, "approvers": {"users": ["alice"]}, "minApprovals": 1},
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    cluster: FakeCluster = field(default_factory=FakeCluster)
    audit: FakeAudit = field(default_factory=FakeAudit)
    events: FakeEvents = field(default_factory=FakeEvents)
    clock: Clock = field(default_factory=Clock)
    port: FakePort = field(init=False)
    runtime: Runtime = field(init=False)

    def __post_init__(self) -> None:
        self.cluster.add_policy("auto", AUTO_POLICY)
        self.cluster.add_policy("prod", PROD_POLICY)
        self.restart()

    def restart(self) -> None:
        """A new operator process on the same cluster: fresh locks, memory and port."""
        self.port = FakePort(self.cluster)
        self.runtime = Runtime(
            settings=OperatorSettings(receipt_key=KEY, audit_stdout=False),
            own=self.port,
            audit=self.audit,
            metrics=Metrics(CollectorRegistry()),
            clock=self.clock,
            events=self.events,
        )

    def file(
        self, name: str, *, policy: str = "auto", duration: str = "10m", namespace: str = "payments"
    ) -> str:
        spec: dict[str, Any] = {
            "policy": policy,
            "namespace": namespace,
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": "INC-1",
        }
        body = self.cluster.file_request(NS, name, spec, requester=AGENT, key=KEY)
        return str(body["metadata"]["uid"])

    def approve(self, name: str, *, by: str = "alice") -> None:
        body = self.cluster.requests[(NS, name)]
        annotations = body["metadata"].get("annotations") or {}
        entries = parse_recorded(annotations.get(APPROVALS_ANNOTATION))
        entries.append(
            record_decision(
                key=KEY,
                request_uid=body["metadata"]["uid"],
                spec=body["spec"],
                approver=by,
                groups=(),
                decision="approve",
                at=self.clock(),
            )
        )
        self.cluster.annotate(NS, name, {APPROVALS_ANNOTATION: dump_recorded(entries)})

    def revoke(self, name: str, why: str = "done") -> None:
        self.cluster.annotate(NS, name, {REVOKE_ANNOTATION: why})

    async def reconcile(self, name: str) -> datetime | None:
        return (await Reconciler(self.runtime).reconcile(NS, name)).requeue_at

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.cluster.requests[(NS, name)].get("status") or {}
        return status

    def objects(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        return sorted(key for key in self.cluster.objects if kind is None or key[0] == kind)

    def audit_types(self, uid: str) -> list[EventType]:
        return self.audit.types(uid)


@pytest.fixture
def world() -> Iterator[World]:
    yield World()
