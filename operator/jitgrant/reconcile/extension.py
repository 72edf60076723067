"""A pass over an extension (an AccessRequest with `spec.extends`): decided like any request (seal,
policy, approvals, through `decide`), then held to the extension rules (lifecycle/extension.py); once
approved it is applied: the original grant's `expiresAt` moves later in one status write (no new
object, no gap), recorded `extended` on the original with who approved, and the extension ends
`Applied`. The scheduler sees the new end from the original's watch event (reactor/scheduler.py
`_observe_grant`, which reads every event, the operator's own writes included) and its next pass
over the original waits until then.
"""

from __future__ import annotations

from pydantic import ValidationError

from jitgrant.audit.records import audit_event
from jitgrant.clusters.port import StoredRequest
from jitgrant.lifecycle import Action, Step
from jitgrant.lifecycle.extension import (
    extended_until,
    extension_answer,
    extension_needs_approval,
    extension_refusal,
)
from jitgrant.models import AccessRequest, ExtensionEntry, GrantPolicySpec, Phase
from jitgrant.models.vocabulary import EventType, Reason, format_time
from jitgrant.reconcile.decide import decide
from jitgrant.reconcile.decisions import record_approvals, transition
from jitgrant.reconcile.effects import Note, Pass, Record, approval_entries, record, status_patch
from jitgrant.reconcile.result import RETRY, PassResult

# What the first decision may say before the extension rules are applied: the rest (a failed seal,
# a policy refusal, a duplicate open extension of the same grant) ends it as for any request.
_DECIDED = frozenset({Action.PEND, Action.APPROVE, Action.ACTIVATE})


async def extension_pass(p: Pass, stored: StoredRequest) -> PassResult:
    """One step of an extension; the driver calls it instead of its own loop (an extension never
    becomes Active, so none of the grant's steps apply)."""
    step, request, policy = await decide(p, stored)
    if request is None:
        return RETRY
    if step.action is Action.WAIT:
        return PassResult(requeue_at=step.wake_at)
    if step.action is Action.NONE:
        return RETRY
    if step.action is Action.RECORD_APPROVALS:
        await record_approvals(p, step, stored=stored, request=request, policy=policy)
        return RETRY
    if step.action not in _DECIDED or policy is None:
        await transition(p, step, stored=stored, request=request, policy=policy)
        return RETRY
    original = await _original(p, request)
    refusal = extension_refusal(extension=request.spec, original=original, policy=policy, now=p.now())
    if refusal is not None or original is None:
        await _refuse(p, stored, request, policy, refusal or "the original grant is gone")
    elif stored.phase is None and extension_needs_approval(
        extension=request.spec, original=original, policy=policy
    ):
        message = extension_answer(extension=request.spec, original=original, policy=policy)
        pend = Step(Action.PEND, reason=Reason.AWAITING_APPROVAL, message=message)
        await transition(p, pend, stored=stored, request=request, policy=policy)
    elif stored.phase is None or step.action is not Action.PEND:
        await apply_extension(p, stored, request, policy, step)
    return RETRY


async def _original(p: Pass, request: AccessRequest) -> AccessRequest | None:
    found = await _stored_original(p, request)
    return _parsed(found)


async def _stored_original(p: Pass, request: AccessRequest) -> StoredRequest | None:
    assert request.spec.extends is not None  # the driver sends only extensions here
    namespace = request.metadata.namespace or ""
    return await p.engine.own.get_request(namespace, request.spec.extends)


def _parsed(stored: StoredRequest | None) -> AccessRequest | None:
    if stored is None or stored.deleting:
        return None
    try:
        return stored.parse()
    except ValidationError:
        return None


async def _refuse(
    p: Pass, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec, message: str
) -> None:
    deny = Step(Action.DENY, reason=Reason.EXTENSION_REFUSED, message=message)
    await transition(p, deny, stored=stored, request=request, policy=policy)


async def apply_extension(
    p: Pass, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec, step: Step
) -> None:
    """Move the original's `expiresAt`, then end the extension `Applied`. Under the original's lock,
    so its own pass (an expiry, a revocation) never interleaves; checked again on a fresh read, so a
    grant that ended meanwhile is not extended. Applied twice (a crash between the two writes), the
    original's entry naming this extension says it is done already."""
    namespace, name = stored.namespace, stored.name
    assert request.spec.extends is not None
    async with p.engine.lock_for(f"{namespace}/{request.spec.extends}"):
        found = await _stored_original(p, request)
        original = _parsed(found)
        if found is None or original is None:
            await _refuse(p, stored, request, policy, f"{request.spec.extends} is gone")
            return
        applied = next((e for e in original.status.extensions if e.request == name), None)
        if applied is None:
            refusal = extension_refusal(extension=request.spec, original=original, policy=policy, now=p.now())
            if refusal is not None:
                await _refuse(p, stored, request, policy, refusal)
                return
            applied = await _move_expiry(p, found, original, request, policy, step)
    approved_by = ", ".join(applied.approved_by) or "auto-approved"
    message = (
        f"{request.spec.extends} extended by {applied.by} to {format_time(applied.expires_at)} "
        f"({approved_by})"
    )
    now = p.now()
    fields = {
        "phase": Phase.APPLIED,
        "reason": Reason.EXTENSION_APPLIED,
        "message": message,
        "decided_at": now,
        "ended_at": now,
        "expires_at": applied.expires_at,
        "approvals": approval_entries(step.tally),
    }
    if request.status.requested_at is None:
        fields["requested_at"] = now
    ended = audit_event(
        request=request,
        event_type=EventType.EXTENDED,
        at=now,
        cluster=policy.target.cluster,
        decision=Phase.APPLIED.value,  # the extension's own ending (audit query's outcome "applied")
        reason=message,
        expires_at=applied.expires_at,
        ended_at=now,
        approvals=approval_entries(step.tally) or request.status.approvals,
    )
    await record(
        p,
        stored,
        request,
        records=(Record(ended, memo=f"{EventType.EXTENDED.value}/{Phase.APPLIED.value}"),),
        write=lambda: p.write_status(stored, request, status_patch(**fields)),
        note=Note(reason=Reason.EXTENSION_APPLIED, message=message, log=f"-> Applied: {message}"),
    )


async def _move_expiry(
    p: Pass,
    found: StoredRequest,
    original: AccessRequest,
    request: AccessRequest,
    policy: GrantPolicySpec,
    step: Step,
) -> ExtensionEntry:
    now = p.now()
    approvals = approval_entries(step.tally) or request.status.approvals
    until = extended_until(extension=request.spec, original=original)
    assert request.spec.duration is not None  # extension_refusal: an extension names its duration
    entry = ExtensionEntry(
        request=request.metadata.name,
        by=request.spec.duration,
        at=now,
        approved_by=tuple(sorted({a.approver for a in approvals})),
        expires_at=until,
    )
    who = ", ".join(entry.approved_by) or "auto-approved under spec.extensions"
    message = (
        f"extended by {entry.by} through {entry.request} ({who}); the grant now ends at {format_time(until)}"
    )
    grant = original.status.grant
    extended = audit_event(
        request=original,
        event_type=EventType.EXTENDED,
        at=now,
        cluster=grant.cluster if grant is not None else policy.target.cluster,
        decision="extended",
        reason=f"{message}; justification: {request.spec.justification}",
        expires_at=until,
        approvals=approvals,
    )
    status = status_patch(
        phase=Phase.ACTIVE,
        expires_at=until,
        reason=Reason.EXTENDED,
        message=message,
        extensions=(*original.status.extensions, entry),
    )
    # A Pass of its own: the original's write must not become this pass's latest read.
    own = Pass(p.engine)
    await record(
        own,
        found,
        original,
        # Keyed by the new end: each extension is recorded once, even when its pass is retried.
        records=(Record(extended, memo=f"{EventType.EXTENDED.value}/{format_time(until)}"),),
        write=lambda: own.write_status(found, original, status),
        note=Note(
            reason=Reason.EXTENDED,
            message=message,
            log=f"expiresAt moved to {format_time(until)}: {message}",
            notice=Phase.ACTIVE,
            expires_at=until,
        ),
    )
    return entry
