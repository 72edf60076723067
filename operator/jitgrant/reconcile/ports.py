"""What a pass asks of the process around it: the engine (`reactor.runtime.Runtime` in the operator,
the same object in the unit tests over the fake cluster port), the audit trail and the Event recorder.

Protocols, so this package never imports the reactor above it (the layers contract in pyproject.toml).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from jitgrant.audit.records import AuditEvent
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.port import ClusterPort, GrantTarget, StoredRequest
from jitgrant.lifecycle.open_requests import OpenRequests
from jitgrant.metrics import Metrics
from jitgrant.models import AccessRequest, GrantPolicySpec, Phase, Target
from jitgrant.models.policy import PolicyNotifications
from jitgrant.settings import OperatorSettings


class AuditPort(Protocol):
    """What the engine asks of the audit trail (`audit.trail.AuditTrail` in the operator)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def depth(self) -> int: ...

    async def record_before_grant(self, event: AuditEvent) -> object:
        """Accepted as the audit config demands, or AuditUnavailable: no access without it."""
        ...

    async def record(self, event: AuditEvent) -> object:
        """Accepted into the spool; delivery never holds up the caller."""
        ...


class EventRecorder(Protocol):
    """Kubernetes Events on a request, so `kubectl describe` tells the story too (cert-manager's
    `record.EventRecorder` is the model). Never raises and never waits: an Event is a courtesy."""

    def post(self, body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None: ...

    async def close(self) -> None: ...


class NoEvents:
    """An EventRecorder that posts nothing (a runtime built without one, e.g. an offline tool)."""

    def post(self, body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None:
        return None

    async def close(self) -> None:
        return None


class Notices(Protocol):
    """Notices of transitions to people (`notify.Notifier`): queued, never awaited."""

    def transition(
        self,
        request: AccessRequest,
        *,
        phase: Phase,
        reason: str,
        message: str,
        expires_at: datetime | None = None,
        notifications: PolicyNotifications | None = None,
    ) -> None: ...

    def close(self) -> None:
        """Post what is queued, then stop (at shutdown)."""
        ...


class Engine(Protocol):
    """The process-wide state and adapters a pass works with."""

    settings: OperatorSettings
    own: ClusterPort
    audit: AuditPort
    metrics: Metrics
    events: EventRecorder
    open_requests: OpenRequests
    written_ahead: dict[str, set[str]]
    stopping: bool
    notifier: Notices | None
    # Namespace labels from the replica's Namespace watch (namespaceSelector policies).
    namespace_labels: dict[str, dict[str, str]]

    def clock(self) -> datetime: ...

    def lock_for(self, key: str) -> asyncio.Lock: ...

    def wrote(self, stored: StoredRequest) -> None: ...

    async def get_policy(self, name: str) -> GrantPolicySpec | None: ...

    # GrantPolicies as the watch last delivered them (reconcile/policies.py reads them first).
    @property
    def watched_policies(self) -> Mapping[str, GrantPolicySpec]: ...

    async def cluster_for(
        self, target: Target, *, session_name: str, source_identity: str
    ) -> GrantTarget: ...

    async def housekeeping_cluster(self, target: Target) -> GrantTarget: ...

    def cluster_reached(self, cluster: str) -> None: ...

    def cluster_failed(self, cluster: str, error: ClusterAccessError) -> None: ...

    def next_attempt(self, cluster: str, key: tuple[str, str], *, at_least: float = 0.0) -> datetime: ...

    def removal_overdue(self, cluster: str, uid: str, overdue: bool) -> None: ...
