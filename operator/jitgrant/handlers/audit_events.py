"""AccessRequest -> AuditEvent: what a reviewer needs to answer who, what, when, why, approved by whom."""

from __future__ import annotations

from datetime import datetime

from jitgrant.audit.records import (
    ApproverRecord,
    AuditEvent,
    EventType,
    RequesterRecord,
    ScopeRecord,
    WindowRecord,
    transition_id,
)
from jitgrant.models import AccessRequest, ApprovalEntry
from jitgrant.models.vocabulary import format_time


def audit_event(
    *,
    request: AccessRequest,
    event_type: EventType,
    at: datetime,
    cluster: str,
    decision: str | None = None,
    reason: str | None = None,
    activated_at: datetime | None = None,
    expires_at: datetime | None = None,
    ended_at: datetime | None = None,
    approvals: tuple[ApprovalEntry, ...] = (),
    binding: str | None = None,
) -> AuditEvent:
    spec = request.spec
    stamp = spec.requester
    requester = (
        RequesterRecord(
            username=stamp.username,
            uid=stamp.uid,
            groups=stamp.groups,
            proven_by=stamp.proven_by.value,
            issuer=stamp.issuer,
            subject=stamp.subject,
        )
        if stamp is not None
        else None
    )
    duration = spec.duration_delta
    status = request.status
    uid = request.metadata.uid or ""
    attempt = ""
    if event_type is EventType.APPROVAL_RECORDED:
        attempt = ",".join(sorted(entry.approver for entry in approvals))
    elif event_type is EventType.SHORTENED and expires_at is not None:
        attempt = format_time(expires_at)
    return AuditEvent(
        transition_id=transition_id(uid, event_type, attempt) if uid else None,
        type=event_type,
        time=at,
        request_uid=uid,
        request_name=request.metadata.name,
        request_namespace=request.metadata.namespace or "",
        policy=spec.policy,
        cluster=cluster,
        requester=requester,
        scope=ScopeRecord(
            namespace=spec.namespace,
            cluster_role=spec.cluster_role,
            rules=tuple(rule.to_k8s() for rule in spec.rules or ()),
        ),
        window=WindowRecord(
            requested_duration_seconds=int(duration.total_seconds()) if duration is not None else None,
            activated_at=activated_at or status.activated_at,
            expires_at=expires_at or status.expires_at,
            ended_at=ended_at,
        ),
        approvers=tuple(
            ApproverRecord(approver=entry.approver, at=entry.at, receipt=entry.receipt or None)
            for entry in (approvals or status.approvals)
        ),
        decision=decision,
        reason=reason,
        binding=binding or (status.grant.role_binding if status.grant else None),
    )
