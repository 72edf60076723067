"""What happens next to an AccessRequest: a pure decision, so every transition is unit-testable and
the kopf handlers only carry it out.

Pending -> Approved -> Active -> Expired | Revoked; Pending -> Denied | TimedOut; anything -> Failed.
Terminal phases never change again; the clock starts when the grant becomes active.

Continuous authorization: a live request is held against its policy as it is now, not as it was
when it was decided. At activation the policy is checked again and only approvers it still names
count; an Active grant the policy no longer allows (a namespace, ClusterRole or requester removed, the
policy deleted) ends as Revoked with reason `PolicyChanged`, and one whose window a shortened
maxDuration no longer covers is cut to `activatedAt + maxDuration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from jitgrant.approvals.counting import ApprovalTally
from jitgrant.approvals.release import release_message
from jitgrant.lifecycle.extension import extension_allowance
from jitgrant.lifecycle.open_requests import OpenRequest, already_requested_message
from jitgrant.models import AccessRequest, Condition, GrantPolicySpec, Phase
from jitgrant.models.text import visible
from jitgrant.models.vocabulary import RELEASE_ANNOTATION, REVOKE_ANNOTATION, Reason, format_time
from jitgrant.policy import PolicyDecision, decide
from jitgrant.policy.gate import policy_not_found_message


class Action(StrEnum):
    NONE = "none"  # nothing to do now
    WAIT = "wait"  # nothing to do until wake_at
    FAIL = "fail"
    DENY = "deny"
    PEND = "pend"
    APPROVE = "approve"
    ACTIVATE = "activate"
    EXPIRE = "expire"
    REVOKE = "revoke"
    TIME_OUT = "time-out"
    RECORD_APPROVALS = "record-approvals"  # a valid approval arrived, not yet enough to approve
    SHORTEN = "shorten"  # an Active grant's expiresAt moves earlier to wake_at (maxDuration cut)


@dataclass(frozen=True)
class Consequence:
    """What carrying out an action means besides the objects it creates or removes: the phase the
    request lands in, the audit record's type, the metrics outcome, and whether the Event warns."""

    phase: Phase
    audit_event: str  # a value of audit.records.EventType (that layer sits above this one)
    outcome: str  # the `outcome` label of jitgrant_requests_total
    warning: bool = False


CONSEQUENCES: dict[Action, Consequence] = {
    Action.FAIL: Consequence(Phase.FAILED, "failed", "failed", warning=True),
    Action.DENY: Consequence(Phase.DENIED, "denied", "denied", warning=True),
    Action.PEND: Consequence(Phase.PENDING, "pending", "pending"),
    Action.APPROVE: Consequence(Phase.APPROVED, "approved", "approved"),
    Action.ACTIVATE: Consequence(Phase.ACTIVE, "granted", "active"),
    Action.TIME_OUT: Consequence(Phase.TIMED_OUT, "timed-out", "timed_out", warning=True),
    Action.EXPIRE: Consequence(Phase.EXPIRED, "expired", "expired"),
    Action.REVOKE: Consequence(Phase.REVOKED, "revoked", "revoked"),
}


@dataclass(frozen=True)
class Step:
    action: Action
    reason: str = ""
    message: str = ""
    wake_at: datetime | None = None
    duration: timedelta | None = None
    decision: PolicyDecision | None = None
    tally: ApprovalTally | None = field(default=None, repr=False)

    @property
    def consequence(self) -> Consequence:
        """Raises KeyError for the actions that change no phase (none, wait, record-approvals,
        shorten)."""
        return CONSEQUENCES[self.action]


def _revocation_reason(request: AccessRequest) -> str | None:
    value = request.metadata.annotations.get(REVOKE_ANNOTATION)
    if value is None:
        return None
    # Status messages, Events and audit reasons are read in terminals: the reason on one line.
    return visible(value.strip()) or "revoked by annotation (no reason given)"


def decide_new(
    *,
    request: AccessRequest,
    policy: GrantPolicySpec | None,
    seal_valid: bool,
    inline_rules_enabled: bool,
    operator_namespace: str,
    existing: OpenRequest | None = None,
    limit: str | None = None,
) -> Step:
    """The first decision on a request that has no phase yet.

    `existing`: an open request of the same requester and scope that this one duplicates;
    `limit`: why it is past the policy's spec.limits (lifecycle/open_requests.py). Both found by the
    reconciler or, for a dry run, by admission.
    """
    if request.spec.requester is None or not seal_valid:
        return Step(
            Action.FAIL,
            reason=Reason.REQUESTER_NOT_VERIFIED,
            message=(
                "the requester was not stamped by jitgrant's admission webhook (or the stamp was altered); "
                "nothing was granted. Check that the webhook is installed with failurePolicy: Fail"
            ),
        )
    if policy is None:
        return Step(
            Action.DENY,
            reason=Reason.POLICY_NOT_FOUND,
            message=policy_not_found_message(request.spec.policy),
        )
    if existing is not None:
        same_key = request.spec.request_key is not None and request.spec.request_key == existing.request_key
        return Step(
            Action.DENY,
            reason=Reason.ALREADY_REQUESTED,
            message=already_requested_message(existing, same_key=same_key),
        )
    if limit is not None:
        return Step(Action.DENY, reason=Reason.LIMIT_REACHED, message=limit)
    decision = decide(
        policy_name=request.spec.policy,
        policy=policy,
        request=request.spec,
        requester=request.spec.requester,
        operator_namespace=operator_namespace,
        inline_rules_enabled=inline_rules_enabled,
    )
    if not decision.allowed:
        return Step(
            Action.DENY, reason=Reason.POLICY_REFUSED, message="; ".join(decision.reasons), decision=decision
        )
    if decision.needs_approval:
        return Step(
            Action.PEND,
            reason=Reason.AWAITING_APPROVAL,
            message=(
                f"waiting for {policy.approval.min_approvals} approval(s) under policy {request.spec.policy}"
            ),
            decision=decision,
            duration=decision.duration,
        )
    return Step(
        Action.APPROVE,
        reason=Reason.AUTO_APPROVED,
        message=f"policy {request.spec.policy} approves this scope without a human",
        decision=decision,
        duration=decision.duration,
    )


def next_step(
    *,
    request: AccessRequest,
    policy: GrantPolicySpec | None,
    now: datetime,
    seal_valid: bool,
    tally: ApprovalTally | None,
    inline_rules_enabled: bool,
    operator_namespace: str,
    existing: OpenRequest | None = None,
    limit: str | None = None,
) -> Step:
    status = request.status
    phase = status.phase
    if phase is not None and phase.terminal:
        return Step(Action.NONE)
    revoke_reason = _revocation_reason(request)

    if phase is None:
        return decide_new(
            request=request,
            policy=policy,
            seal_valid=seal_valid,
            inline_rules_enabled=inline_rules_enabled,
            operator_namespace=operator_namespace,
            existing=existing,
            limit=limit,
        )

    if revoke_reason is not None:
        return Step(Action.REVOKE, reason=Reason.REVOKED, message=revoke_reason)
    released = request.metadata.annotations.get(RELEASE_ANNOTATION)
    if released is not None and request.spec.requester is not None:  # only the requester may set it
        message = release_message(request.spec.requester, released)
        return Step(Action.REVOKE, reason=Reason.RELEASED, message=message)

    if phase is Phase.PENDING:
        if policy is None:
            return Step(
                Action.DENY,
                reason=Reason.POLICY_NOT_FOUND,
                message=f"GrantPolicy {request.spec.policy!r} was deleted",
            )
        if tally is not None and tally.denied_by is not None:
            denial = tally.denied_by
            detail = f": {visible(denial.reason)}" if denial.reason else ""
            return Step(
                Action.DENY,
                reason=Reason.DENIED_BY_APPROVER,
                message=f"denied by {denial.approver}{detail}",
                tally=tally,
            )
        if tally is not None and tally.approved:
            approvers = ", ".join(sorted({entry.approver for entry in tally.counted}))
            return Step(
                Action.APPROVE, reason=Reason.APPROVED, message=f"approved by {approvers}", tally=tally
            )
        # Counted by who the policy names now: an approver it no longer names drops out of status
        # too, so status never shows an approval that does not count.
        if tally is not None and {e.approver for e in tally.counted} != {
            a.approver for a in status.approvals
        }:
            missing = tally.missing
            return Step(
                Action.RECORD_APPROVALS,
                reason=Reason.AWAITING_APPROVAL,
                message=f"{len(tally.counted)} of {tally.needed} approval(s); waiting for {missing} more",
                tally=tally,
            )
        started = status.requested_at or now
        deadline = started + policy.approval.pending_timeout_delta
        if now >= deadline:
            return Step(
                Action.TIME_OUT,
                reason=Reason.PENDING_TIMEOUT,
                message=(
                    f"no decision within the policy's pendingTimeout of {policy.approval.pending_timeout}"
                ),
            )
        return Step(Action.WAIT, wake_at=deadline, tally=tally)

    if phase is Phase.APPROVED:
        # The policy is checked again at activation: it may have narrowed while a human approved.
        first = decide_new(
            request=request,
            policy=policy,
            seal_valid=seal_valid,
            inline_rules_enabled=inline_rules_enabled,
            operator_namespace=operator_namespace,
        )
        if first.action in (Action.FAIL, Action.DENY):
            return Step(first.action, reason=first.reason, message=f"at activation: {first.message}")
        if first.action is Action.PEND and (tally is None or not tally.approved):
            # Approvals count only from approvers the policy names when the grant activates: one
            # removed (or a quorum raised) since the approval no longer carries the request.
            return Step(
                Action.DENY,
                reason=Reason.POLICY_CHANGED,
                message=_quorum_lost(request.spec.policy, tally),
                tally=tally,
            )
        return Step(
            Action.ACTIVATE,
            reason=Reason.GRANTED,
            message="the grant is active",
            decision=first.decision,
            duration=first.duration,
        )

    if phase is Phase.ACTIVE:
        expires_at = status.expires_at
        if expires_at is None or now >= expires_at:
            return Step(Action.EXPIRE, reason=Reason.EXPIRED, message="the grant's window closed")
        live = live_grant_step(
            request=request,
            policy=policy,
            now=now,
            inline_rules_enabled=inline_rules_enabled,
            operator_namespace=operator_namespace,
        )
        return live or Step(Action.WAIT, wake_at=expires_at)

    return Step(Action.NONE)


def _quorum_lost(policy_name: str, tally: ApprovalTally | None) -> str:
    counted = ", ".join(sorted({entry.approver for entry in tally.counted})) if tally else ""
    no_longer = sorted({f"{entry.approver} ({why})" for entry, why in tally.ignored}) if tally else []
    parts = [
        f"at activation: policy {policy_name} changed and the approvals no longer reach its quorum "
        f"({len(tally.counted) if tally else 0} of {tally.needed if tally else '?'} count"
        + (f": {counted}" if counted else "")
        + ")"
    ]
    if no_longer:
        parts.append(f"not counted under the policy as it is now: {'; '.join(no_longer)}")
    parts.append("nothing was granted; file the request again")
    return "; ".join(parts)


def live_grant_step(
    *,
    request: AccessRequest,
    policy: GrantPolicySpec | None,
    now: datetime,
    inline_rules_enabled: bool,
    operator_namespace: str,
) -> Step | None:
    """An Active grant held against its policy as it is now; None while the policy still allows it.

    The scope, requester and justification rules are checked as at decision time; approvals are
    not counted again (they counted at activation). A deleted policy ends its grants: the operator
    records the end itself instead of holding the policy back with a finalizer (docs/architecture.md).
    """
    name = request.spec.policy
    if policy is None:
        return Step(
            Action.REVOKE,
            reason=Reason.POLICY_CHANGED,
            message=f"GrantPolicy {name!r} was deleted: the grants it allowed end with it",
        )
    if request.spec.requester is None:
        return None  # cannot be Active (decide_new fails it); nothing to hold against the policy
    decision = decide(
        policy_name=name,
        policy=policy,
        request=request.spec,
        requester=request.spec.requester,
        operator_namespace=operator_namespace,
        inline_rules_enabled=inline_rules_enabled,
        check_duration=False,
    )
    if not decision.allowed:
        return Step(
            Action.REVOKE,
            reason=Reason.POLICY_CHANGED,
            message=f"policy {name} changed and no longer allows this grant: {decision.message}",
            decision=decision,
        )
    activated, expires_at = request.status.activated_at, request.status.expires_at
    if activated is None or expires_at is None:
        return None
    # An applied extension runs past maxDuration by what the policy's spec.extensions still allows.
    latest = activated + policy.max_duration_delta + extension_allowance(request, policy)
    if latest >= expires_at:
        return None
    maximum = policy.max_duration
    if now >= latest:
        return Step(
            Action.REVOKE,
            reason=Reason.POLICY_CHANGED,
            message=f"policy {name}'s maxDuration is now {maximum}: the grant's window closed at "
            f"{format_time(latest)}",
        )
    return Step(
        Action.SHORTEN,
        reason=Reason.POLICY_CHANGED,
        message=f"policy {name}'s maxDuration is now {maximum}: the grant now ends at {format_time(latest)}",
        wake_at=latest,
    )


GRANTED_CONDITION = "Granted"


def granted_condition(
    *, phase: Phase, reason: str, message: str, previous: tuple[Condition, ...], now: datetime
) -> Condition:
    """The `Granted` condition for a phase: True only while Active. Its lastTransitionTime moves only
    when the status flips, as the Kubernetes API conventions ask."""
    status: Literal["True", "False"] = "True" if phase is Phase.ACTIVE else "False"
    before = next((c for c in previous if c.type == GRANTED_CONDITION), None)
    since = before.last_transition_time if before is not None and before.status == status else now
    return Condition(
        type=GRANTED_CONDITION, status=status, reason=reason, message=message, last_transition_time=since
    )
