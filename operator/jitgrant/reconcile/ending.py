"""Ending a grant: expiry, revocation, deletion; the access goes first, the record follows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from jitgrant.audit.records import audit_event
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.port import StoredRequest
from jitgrant.lifecycle import Action, Step
from jitgrant.lifecycle.revoker import named_deleter
from jitgrant.metrics import Metrics
from jitgrant.models import (
    AccessRequest,
    Condition,
    GrantPolicySpec,
    Phase,
)
from jitgrant.models.vocabulary import (
    REMOVAL_OVERDUE_CONDITION,
    EventType,
    Reason,
    format_time,
)
from jitgrant.reconcile.effects import Note, Pass, Record, record, record_transition, status_patch
from jitgrant.reconcile.policies import policy_spec
from jitgrant.reconcile.removal import cluster_of, remove_recorded

log = logging.getLogger("jitgrant.reconcile")


async def end_grant(
    p: Pass,
    step: Step,
    *,
    stored: StoredRequest,
    request: AccessRequest,
    write_status: bool = True,
    policy: GrantPolicySpec | None = None,
    policy_read: bool = False,
) -> None:
    """Expiry or revocation: the access goes first, the record follows and never holds it up."""
    engine = p.engine
    grant = request.status.grant
    if not policy_read:  # the pass read it already (None: missing or invalid, as here)
        policy = await policy_spec(engine.own, request.spec.policy, engine.watched_policies)
    if grant is not None:
        try:
            await remove_recorded(p, grant, request=request, policy=policy)
        except ClusterAccessError as exc:
            if not (exc.retryable and write_status):
                raise
            await removal_overdue(p, step, stored=stored, request=request, cluster=cluster_of(grant), exc=exc)
            return
        engine.removal_overdue(cluster_of(grant), stored.uid, False)
    now = p.now()
    status = status_patch(
        phase=step.consequence.phase, reason=step.reason, message=step.message, ended_at=now
    )
    if grant is not None:
        cluster = cluster_of(grant)
    else:
        cluster = policy.target.cluster if policy is not None else "unknown"
    await record_transition(
        p,
        step,
        stored=stored,
        request=request,
        cluster=cluster,
        now=now,
        write=(lambda: p.write_status(stored, request, status)) if write_status else None,
        measure=_ended(step, request, cluster=cluster, now=now) if grant is not None else None,
    )


def _ended(step: Step, request: AccessRequest, *, cluster: str, now: datetime) -> Callable[[Metrics], None]:
    """A live grant's end, measured: one grant fewer, and an expiry's lag behind its expiresAt."""

    def measure(metrics: Metrics) -> None:
        if request.status.phase is not Phase.ACTIVE:
            return
        metrics.grant_ended(cluster)
        if step.action is Action.EXPIRE and request.status.expires_at is not None:
            lag = (now - request.status.expires_at).total_seconds()
            metrics.observe_revocation_lag(cluster=cluster, seconds=max(lag, 0.0))

    return measure


async def removal_overdue(
    p: Pass,
    step: Step,
    *,
    stored: StoredRequest,
    request: AccessRequest,
    cluster: str,
    exc: ClusterAccessError,
) -> None:
    """The grant should be gone and its cluster does not answer: the request stays Active (its
    objects may still exist) with the `RemovalOverdue` condition saying where, since when and
    when the next attempt is. The trail and an Event hear of it once, when it becomes overdue;
    the gauge behind the alert counts it until the removal is done."""
    engine = p.engine
    now = p.now()
    engine.cluster_failed(cluster, exc)
    engine.removal_overdue(cluster, stored.uid, True)
    retry_at = engine.next_attempt(cluster, (stored.namespace, stored.name), at_least=exc.retry_after)
    p.retry_at = retry_at
    shown = [c for c in request.status.conditions if c.type == REMOVAL_OVERDUE_CONDITION]
    before = next((c for c in shown if c.status == "True"), None)
    expires_at = request.status.expires_at
    if before is not None:
        since = before.last_transition_time
    elif step.action is Action.EXPIRE and expires_at is not None:
        since = expires_at
    else:
        since = now
    what = "expired" if step.action is Action.EXPIRE else f"was revoked ({step.message})"
    message = (
        f"the grant {what}, but its removal from cluster {cluster} is overdue since "
        f"{format_time(since)}: {exc.message} ({exc.reason}); next attempt at {format_time(retry_at)}"
    )
    condition = Condition(
        type=REMOVAL_OVERDUE_CONDITION,
        status="True",
        reason=exc.reason,
        message=message[:1000],
        last_transition_time=since,
    )
    others = [c for c in request.status.conditions if c.type != REMOVAL_OVERDUE_CONDITION]
    patch = status_patch(reason=Reason.REMOVAL_OVERDUE, message=message, conditions=(*others, condition))
    if before is not None:  # overdue already: only the next attempt in status changes
        await p.write_status(stored, request, patch)
        return
    overdue = audit_event(
        request=request,
        event_type=EventType.REMOVAL_OVERDUE,
        at=now,
        cluster=cluster,
        decision="overdue",
        reason=message,
    )
    await record(
        p,
        stored,
        request,
        records=(Record(overdue, memo=f"{EventType.REMOVAL_OVERDUE.value}/{format_time(since)}"),),
        write=lambda: p.write_status(stored, request, patch),
        note=Note(
            reason=Reason.REMOVAL_OVERDUE, message=message, warning=True, log=message, level=logging.WARNING
        ),
    )


async def revoke_for_deletion(p: Pass, body: Mapping[str, Any]) -> None:
    """The finalizer's work: a deleted request loses its access before it disappears."""
    engine = p.engine
    given = StoredRequest(body)
    async with engine.lock_for(f"{given.namespace}/{given.name}"):
        fresh = await engine.own.get_request(given.namespace, given.name)
        current = fresh if fresh is not None and fresh.uid == given.uid else given
        try:
            request = current.parse()
        except ValidationError:
            return
        if request.status.phase is None or request.status.phase.terminal:
            return
        message = named_deleter(
            key=engine.settings.receipt_key, uid=current.uid, annotations=current.annotations
        )
        step = Step(Action.REVOKE, reason=Reason.DELETED, message=message)
        # No status write: the object is going away, and a write now would make kopf's own
        # finalizer removal conflict and wait for an event that may never come.
        await end_grant(p, step, stored=current, request=request, write_status=False)
