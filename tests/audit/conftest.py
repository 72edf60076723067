from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from jitgrant.audit import (
    ApproverRecord,
    AuditEvent,
    EventType,
    RequesterRecord,
    ScopeRecord,
    WindowRecord,
)


@pytest.fixture(scope="session", autouse=True)
def _current_event_loop() -> Iterator[None]:
    # pytest-asyncio <1.4 creates (and never closes) a loop when a sync test runs before an async
    # one, which `filterwarnings = error` turns into a failure (pytest-asyncio#724). Owning the
    # current loop for the session avoids that.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

MakeEvent = Callable[..., AuditEvent]


def make_event(
    type: EventType = EventType.GRANTED,
    *,
    uid: str = "uid-1",
    name: str = "restart-checkout",
    namespace: str = "payments",
    requester: str = "system:serviceaccount:agents:oncall",
    approver: str | None = "alice@example.com",
    cluster: str = "prod-eu",
    at: datetime = T0,
    reason: str | None = None,
) -> AuditEvent:
    approvers = (
        (ApproverRecord(approver=approver, at=at - timedelta(minutes=1), receipt="r-1"),) if approver else ()
    )
    return AuditEvent(
        type=type,
        time=at,
        request_uid=uid,
        request_name=name,
        request_namespace="agents",
        policy="oncall-restart",
        cluster=cluster,
        requester=RequesterRecord(
            username=requester, uid="sa-uid", groups=("agents",), proven_by="kubernetes"
        ),
        scope=ScopeRecord(namespace=namespace, cluster_role="jit-restart-deployments"),
        window=WindowRecord(
            requested_duration_seconds=900,
            activated_at=at if type is EventType.GRANTED else None,
            expires_at=at + timedelta(minutes=15),
            ended_at=at if type in (EventType.EXPIRED, EventType.REVOKED) else None,
        ),
        approvers=approvers,
        decision="allowed",
        reason=reason,
        binding="jit-restart-checkout",
    )


@pytest.fixture
def event() -> MakeEvent:
    return make_event
