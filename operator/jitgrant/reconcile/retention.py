"""Removing a finished request after its retention: recorded first, then deleted."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError

from jitgrant.audit.records import AuditEvent, audit_event, transition_id
from jitgrant.audit.trail import AuditUnavailable
from jitgrant.clusters.port import StoredRequest
from jitgrant.lifecycle.retention import Disposal, Removal, describe_retention, removal
from jitgrant.models.text import log_field
from jitgrant.models.vocabulary import (
    EventType,
    Reason,
    format_time,
)
from jitgrant.reconcile.effects import Pass, post_event, status_patch
from jitgrant.reconcile.policies import policy_spec
from jitgrant.reconcile.removal import cluster_of
from jitgrant.reconcile.result import DONE, RETRY, PassResult

log = logging.getLogger("jitgrant.reconcile")


async def finished(p: Pass, stored: StoredRequest) -> PassResult:
    """A request that ended: when it is due for removal; done when kept forever or removed."""
    engine = p.engine
    retention = engine.settings.finished_retention
    verdict = removal(stored.body.get("status") or {}, retention=retention, now=engine.clock())
    if verdict.disposal is Disposal.WAIT:
        return PassResult(requeue_at=verdict.remove_at)
    if verdict.disposal is Disposal.STAMP:
        now = p.now()
        await engine.own.patch_request_status(
            stored.namespace,
            stored.name,
            status_patch(ended_at=now),
            resource_version=stored.resource_version,
        )
        return PassResult(requeue_at=now + retention)
    if verdict.disposal is Disposal.REMOVE:
        return DONE if await remove_finished(p, stored, verdict) else RETRY
    return DONE  # kept forever: nothing will ever be due, until an event says otherwise


async def remove_finished(p: Pass, stored: StoredRequest, verdict: Removal) -> bool:
    """The removal is recorded (durably, like an intent to grant) before the request is deleted:
    once it is gone the audit trail is the only record, so no record means no deletion.
    Returns whether it is gone (removed, or not there to remove); False: kept, to try again."""
    engine = p.engine
    now = p.now()
    phase = stored.phase.value if stored.phase is not None else "finished"
    ended = format_time(verdict.ended_at) if verdict.ended_at is not None else "?"
    message = (
        f"{phase} since {ended}; removed after the finished-request retention of "
        f"{describe_retention(engine.settings.finished_retention)}"
    )
    try:
        await engine.audit.record_before_grant(await removal_event(p, stored, verdict, now, message))
    except AuditUnavailable as exc:
        # Kept, and tried again with the scheduler's backoff.
        log.warning("%s/%s kept: its removal could not be recorded: %s", stored.namespace, stored.name, exc)
        return False
    # The finalizer is then released as for any deletion: the revocation it waits for finds
    # nothing, since a finished request holds no access.
    if not await engine.own.delete_request(stored.namespace, stored.name, uid=stored.uid):
        return True  # gone already, or recreated under the same name: not this one to delete
    # The object is gone; an Event on it still tells `kubectl get events` for an hour why.
    post_event(p, stored.body, warning=False, reason=Reason.RETENTION_ELAPSED, message=message)
    log.info("%s/%s removed: message=%s", stored.namespace, stored.name, log_field(message))
    return True


async def removal_event(
    p: Pass, stored: StoredRequest, verdict: Removal, now: datetime, message: str
) -> AuditEvent:
    try:
        request = stored.parse()
    except ValidationError:
        request = None  # a request Failed as unparseable: recorded by what identifies it
    if request is None:
        return AuditEvent(
            transition_id=transition_id(stored.uid, EventType.REMOVED),
            type=EventType.REMOVED,
            time=now,
            request_uid=stored.uid,
            request_name=stored.name,
            request_namespace=stored.namespace,
            policy=None,
            cluster="unknown",
            requester=None,
            scope=None,
            window=None,
            decision="removed",
            reason=message,
        )
    grant = request.status.grant
    if grant is not None:
        cluster = cluster_of(grant)
    else:
        policy = await policy_spec(p.engine.own, request.spec.policy, p.engine.watched_policies)
        cluster = policy.target.cluster if policy is not None else "unknown"
    return audit_event(
        request=request,
        event_type=EventType.REMOVED,
        at=now,
        cluster=cluster,
        decision="removed",
        reason=message,
        ended_at=verdict.ended_at,
    )
