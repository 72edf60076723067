"""Issuing a grant: target reached, intent audited, plan recorded in status, objects created, Active.

The grant is written ahead: its plan (every object's cluster, kind, namespace and name) goes into
`status.grant` before the first object exists, and every removal works from that record. So a status
write that fails after an object was created (a revoke landing mid-issue makes it a 409) can never
orphan the object, and status never says "no grant" while a binding exists (the invariants
no-orphaned-access and status-tells-the-truth in docs/architecture.md).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from jitgrant.audit.records import audit_event
from jitgrant.audit.trail import AuditUnavailable
from jitgrant.clusters.errors import ClusterAccessError, Conflict, ForeignObjectError
from jitgrant.clusters.port import StoredRequest
from jitgrant.grants.plan import GrantPlan, plan_grant
from jitgrant.lifecycle import Action, Step
from jitgrant.metrics import Metrics
from jitgrant.models import (
    AccessRequest,
    GrantPolicySpec,
    GrantRef,
    Phase,
    TargetType,
)
from jitgrant.models.vocabulary import (
    EventType,
    Reason,
    format_time,
)
from jitgrant.reconcile.decide import decide
from jitgrant.reconcile.decisions import fail
from jitgrant.reconcile.effects import Pass, record_transition, status_patch
from jitgrant.reconcile.objects import WindowClosed, create
from jitgrant.reconcile.policies import grant_refusal
from jitgrant.reconcile.trouble import trouble, window_closed

log = logging.getLogger("jitgrant.reconcile")


async def activate(
    p: Pass, step: Step, *, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec
) -> None:
    engine = p.engine
    assert step.duration is not None and step.decision is not None and request.spec.requester is not None
    cluster = policy.target.cluster
    record = request.status.grant
    # A retry keeps the recorded window, so objects made by an earlier attempt stay in step.
    # Except after waiting for the target namespace: nothing of the grant can exist yet (its
    # target objects live in that namespace, the kubeconfig objects follow the binding), so the
    # clock starts now and the grant runs for all it asked. The namespace wait still counts
    # from the plan's `plannedAt`.
    waited = request.status.reason == Reason.WAITING_FOR_NAMESPACE
    kept = record.planned_at if record is not None and not waited else None
    started = kept or p.now()
    plan = plan_grant(
        request=request,
        decision=step.decision,
        duration=step.duration,
        now=started,
        grants_namespace=engine.settings.grants_namespace,
    )
    if p.now() >= plan.expires_at:
        # A recorded plan whose window passed while its cluster could not be reached (only a
        # recorded plan keeps its start): access is never issued outside its window.
        await window_closed(p, stored, request, cluster=cluster, record=record, plan=plan)
        return
    if p.deferred is not None and policy.target.type is not TargetType.IN_CLUSTER:
        # Reaching another cluster can take seconds (an AssumeRole, a slow endpoint): status
        # says Approved meanwhile instead of nothing.
        base, deferred_request, status = p.deferred
        stored = await p.write_status(base, deferred_request, status)
    # Reaching the target creates nothing, so it comes before the plan: a target that cannot
    # be reached leaves no plan to clean up after.
    try:
        target = await engine.cluster_for(
            policy.target,
            session_name=f"jitgrant-{stored.namespace}-{stored.name}",
            source_identity=request.spec.requester.username,
        )
    except ClusterAccessError as exc:
        await trouble(p, stored, request, exc, cluster=cluster, record=record)
        return
    made: GrantRef | None = None
    try:
        if record is None:
            record = plan.record(
                target=policy.target,
                own_cluster=engine.own.name,
                cluster_role=step.decision.cluster_role,
            )
            written = await write_ahead(p, step, stored=stored, request=request, plan=plan, record=record)
            if written is None:
                return
            stored = written
        refused = await grant_refusal(
            target,
            policy_name=request.spec.policy,
            policy=policy,
            cluster_wide_deny=engine.settings.deny_rules,
            namespace=request.spec.namespace,
            cluster_role=step.decision.cluster_role,
            inline_rules=step.decision.rules,
        )
        if refused is not None:  # a ClusterRole widened since the policy was written, or a deny rule met
            why, message = refused
            await fail(p, stored, request, reason=why, message=message, cluster=cluster, grant=record)
            return
        made = await create(p, plan, record=record, request=request, target=target)
    except WindowClosed:
        pass  # handled below, once the target's client is closed
    except ForeignObjectError as exc:
        await fail(
            p, stored, request, reason=Reason.NAME_COLLISION, message=str(exc), cluster=cluster, grant=record
        )
        return
    except Conflict:
        # Changed since read (a second 409 on the plan's write under load): the pass reads it
        # again and decides again; not a reason to fail the grant.
        raise
    except ClusterAccessError as exc:
        await trouble(p, stored, request, exc, cluster=cluster, record=record, step=step)
        return
    finally:
        if target is not engine.own:
            target.close()
    if made is None:
        assert record is not None
        await window_closed(p, stored, request, cluster=cluster, record=record, plan=plan)
        return
    engine.cluster_reached(cluster)
    await mark_active(p, step, stored=stored, request=request, plan=plan, record=made, cluster=cluster)


async def write_ahead(
    p: Pass, step: Step, *, stored: StoredRequest, request: AccessRequest, plan: GrantPlan, record: GrantRef
) -> StoredRequest | None:
    """The intent goes into the trail (accepted before any access exists), then the plan into
    status, before anything is created. Once the plan is recorded neither is written again."""
    engine = p.engine
    try:
        if p.first_time(stored.uid, EventType.ISSUING):
            await engine.audit.record_before_grant(
                audit_event(
                    request=request,
                    event_type=EventType.ISSUING,
                    at=plan.now,
                    cluster=record.cluster,
                    decision="issuing",
                    # What is about to exist, not the step's "the grant is active": nothing is yet.
                    reason=f"issuing {request.spec.scope_text()} in cluster {record.cluster}",
                    activated_at=plan.now,
                    expires_at=plan.expires_at,
                    binding=plan.binding_name,
                )
            )
            p.wrote_ahead(stored.uid, EventType.ISSUING)
    except AuditUnavailable as exc:
        await fail(
            p,
            stored,
            request,
            reason=Reason.AUDIT_UNAVAILABLE,
            message=f"the grant was not issued because its audit record could not be stored: {exc}",
            cluster=record.cluster,
            grant=None,
        )
        return None
    message = f"issuing {request.spec.scope_text()} in cluster {record.cluster}"
    patch = status_patch(reason=Reason.ISSUING, message=message, grant=record)
    try:
        return await p.write_status(stored, request, patch)
    except Conflict:
        # Something else wrote the request since we read it (often kopf's own bookkeeping). If
        # it is still to be activated, record the same plan on the fresh copy rather than
        # leave it to a retry that would audit the intent a second time.
        fresh = await p.engine.own.get_request(stored.namespace, stored.name)
        if fresh is None or fresh.deleting or fresh.uid != stored.uid:
            raise
        again, current, _ = await decide(p, fresh)
        if again.action is not Action.ACTIVATE or current is None or current.status.grant is not None:
            raise
        return await p.write_status(fresh, current, patch)


async def mark_active(
    p: Pass,
    step: Step,
    *,
    stored: StoredRequest,
    request: AccessRequest,
    plan: GrantPlan,
    record: GrantRef,
    cluster: str,
) -> None:
    # The plan's time is when it was recorded (the `issuing` record); access began only now, once
    # its binding exists, which can be later on a slow cluster: the trail keeps both.
    granted_at = p.now()
    message = f"{request.spec.scope_text()} until {format_time(plan.expires_at)}" + (
        f"; kubeconfig in Secret {plan.secret_name}" if plan.secret_name else ""
    )
    if granted_at > plan.now:
        message += f" (planned at {format_time(plan.now)}, granted at {format_time(granted_at)})"
    fields: dict[str, Any] = {
        "phase": Phase.ACTIVE,
        "reason": step.reason,
        "message": message,
        # The window the policy allowed started with the plan; `expiresAt - activatedAt` stays
        # the approved duration. The trail's `granted` record says when access really began.
        "activated_at": plan.now,
        "expires_at": plan.expires_at,
        "grant": record,
    }
    if request.status.requested_at is None:
        fields["requested_at"] = plan.now
    # A conflict here (a revoke landed meanwhile) loses nothing: the plan is already in status,
    # and the next pass removes from it.
    shown = Step(Action.ACTIVATE, reason=step.reason, message=message)
    started = request.status.requested_at or plan.now
    await record_transition(
        p,
        shown,
        stored=stored,
        request=request,
        cluster=cluster,
        now=granted_at,
        write=lambda: p.write_status(stored, request, status_patch(**fields)),
        measure=lambda metrics: _activated(metrics, request, cluster=cluster, started=started, now=p.now()),
        activated_at=granted_at,
        expires_at=plan.expires_at,
        binding=plan.binding_name,
    )


def _activated(
    metrics: Metrics, request: AccessRequest, *, cluster: str, started: datetime, now: datetime
) -> None:
    metrics.grant_activated(cluster)
    metrics.observe_time_to_active(policy=request.spec.policy, seconds=(now - started).total_seconds())
