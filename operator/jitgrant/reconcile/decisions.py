"""Transitions that create nothing: decisions, approvals as they arrive, a shortened window, failures."""

from __future__ import annotations

import logging
from typing import Any

from jitgrant.audit.records import audit_event
from jitgrant.clusters.port import StoredRequest
from jitgrant.lifecycle import Action, Step
from jitgrant.models import (
    AccessRequest,
    GrantPolicySpec,
    GrantRef,
    Phase,
)
from jitgrant.models.text import log_field
from jitgrant.models.vocabulary import (
    EventType,
    Reason,
    format_time,
)
from jitgrant.reconcile.effects import (
    Note,
    Pass,
    Record,
    approval_entries,
    record,
    record_transition,
    status_patch,
)
from jitgrant.reconcile.removal import remove_recorded

log = logging.getLogger("jitgrant.reconcile")


async def transition(
    p: Pass,
    step: Step,
    *,
    stored: StoredRequest,
    request: AccessRequest,
    policy: GrantPolicySpec | None,
    cluster: str | None = None,
    grant: GrantRef | None = None,
) -> None:
    """A phase change that creates nothing: decisions, approvals, time-outs and failures. A
    terminal one first removes whatever a recorded grant plan may have created."""
    now = p.now()
    phase = step.consequence.phase
    grant = grant or request.status.grant
    if phase.terminal and grant is not None:
        await remove_recorded(p, grant, request=request, policy=policy)
    fields: dict[str, Any] = {"phase": phase, "reason": step.reason, "message": step.message}
    if request.status.requested_at is None:
        fields["requested_at"] = now
    if step.action is not Action.PEND:
        fields["decided_at"] = now
    elif policy is not None:
        fields["approvals_required"] = policy.approval.min_approvals
    if phase.terminal:
        fields["ended_at"] = now
    if grant is not None:
        fields["grant"] = grant
    approvals = approval_entries(step.tally)
    if approvals:
        fields["approvals"] = approvals
    if cluster is None:
        cluster = policy.target.cluster if policy is not None else "unknown"
    before: tuple[Record, ...] = ()
    if request.status.phase is None:
        requested = audit_event(
            request=request,
            event_type=EventType.REQUESTED,
            at=now,
            cluster=cluster,
            reason=request.spec.justification or None,
        )
        before = (Record(requested, memo=EventType.REQUESTED, outcome="requested"),)
    waited = request.status.requested_at
    await record_transition(
        p,
        step,
        stored=stored,
        request=request,
        cluster=cluster,
        now=now,
        approvals=approvals,
        write=(
            # Approved is a way station: its fields go out with the pass's next write.
            (lambda: p.defer_async(stored, request, status_patch(**fields)))
            if step.action is Action.APPROVE
            else (lambda: p.write_status(stored, request, status_patch(**fields)))
        ),
        before=before,
        measure=(
            (
                lambda metrics: metrics.observe_approval_wait(
                    policy=request.spec.policy, seconds=(now - waited).total_seconds()
                )
            )
            if step.action is Action.APPROVE and waited is not None
            else None
        ),
    )


async def record_approvals(
    p: Pass,
    step: Step,
    *,
    stored: StoredRequest,
    request: AccessRequest,
    policy: GrantPolicySpec | None,
) -> None:
    """Each counted approval goes into status and the trail as it arrives, not only at quorum."""
    now = p.now()
    entries = approval_entries(step.tally)
    known = {(entry.approver, entry.receipt) for entry in request.status.approvals}
    cluster = policy.target.cluster if policy is not None else "unknown"
    # Each new approval's record follows the status write that shows it (no memo: after the write).
    records = tuple(
        Record(
            audit_event(
                request=request,
                event_type=EventType.APPROVAL_RECORDED,
                at=now,
                cluster=cluster,
                decision="approve",
                reason=f"approved by {entry.approver}" + (f": {entry.reason}" if entry.reason else ""),
                approvals=(entry,),
            )
        )
        for entry in entries
        if (entry.approver, entry.receipt) not in known
    )
    patch = status_patch(reason=step.reason, message=step.message, approvals=entries)
    await record(
        p,
        stored,
        request,
        records=records,
        write=lambda: p.write_status(stored, request, patch),
        note=Note(
            reason=Reason.APPROVAL_RECORDED,
            message=step.message,
            log=f"approval recorded: message={log_field(step.message)}",
            level=logging.DEBUG,  # the transition that counts follows at quorum
        ),
    )


async def shorten(
    p: Pass, step: Step, *, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec | None
) -> None:
    """A shortened maxDuration: expiresAt moves earlier (recorded first, like any transition);
    the timer then ends the grant at the new time. The objects keep the expires-at annotation
    they were issued with (later than the new end): it is the sweep's backstop for an operator
    that is down, and one that starts again ends the grant from status.expiresAt at once."""
    assert step.wake_at is not None  # the lifecycle sets the new end
    grant = request.status.grant
    cluster = grant.cluster if grant is not None else (policy.target.cluster if policy else "unknown")
    shortened = audit_event(
        request=request,
        event_type=EventType.SHORTENED,
        at=p.now(),
        cluster=cluster,
        decision="shortened",
        reason=step.message,
        expires_at=step.wake_at,
    )
    # The phase rides along so the Granted condition's message names the new end too.
    status = status_patch(
        phase=Phase.ACTIVE, expires_at=step.wake_at, reason=step.reason, message=step.message
    )
    await record(
        p,
        stored,
        request,
        # Keyed by the new end: a policy cut twice shortens twice, and each is recorded once.
        records=(Record(shortened, memo=f"{EventType.SHORTENED.value}/{format_time(step.wake_at)}"),),
        write=lambda: p.write_status(stored, request, status),
        note=Note(
            reason=step.reason,
            message=step.message,
            warning=True,
            log=f"expiresAt moved to {step.wake_at}: {step.message}",
            notice=Phase.ACTIVE,
            expires_at=step.wake_at,
        ),
    )


async def fail(
    p: Pass,
    stored: StoredRequest,
    request: AccessRequest,
    *,
    reason: str,
    message: str,
    cluster: str,
    grant: GrantRef | None,
) -> None:
    step = Step(Action.FAIL, reason=reason, message=message)
    await transition(p, step, stored=stored, request=request, policy=None, cluster=cluster, grant=grant)
