"""The answer to a dryRun create of an AccessRequest: the operator's own first decision, unstored.

One pure function, `dry_run_answer`, serves both the validating webhook (operator/dry_run.py turns
it into admission warnings or a refusal) and `jitgrant policy test` (jitgrant.offline), so what a
policy test expects and what `check` answers against a cluster cannot drift apart. It runs the same
`decide_new` the reconciler runs on a new request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from jitgrant.lifecycle.open_requests import OpenRequest
from jitgrant.lifecycle.transitions import Action, decide_new
from jitgrant.models import AccessRequest, GrantPolicySpec, format_duration
from jitgrant.models.dryrun import DryRunWire, encode_refusal, encode_warnings
from jitgrant.models.vocabulary import Reason
from jitgrant.policy.gate import PolicyRefusal


class Outcome(StrEnum):
    """What filing the request would do first."""

    ALLOWED = "allowed"
    PENDING_APPROVAL = "pending-approval"
    DENIED = "denied"


@dataclass(frozen=True)
class DryRunAnswer:
    outcome: Outcome
    reason: str
    message: str
    duration: timedelta | None = None
    approvals: int = 0  # approvals needed (pending-approval only)
    approver_groups: tuple[str, ...] = ()
    approver_users: tuple[str, ...] = ()
    code: int = 403  # the admission refusal's HTTP code when denied
    request: AccessRequest | None = field(default=None, repr=False)

    @property
    def approvers_text(self) -> str:
        parts = [f"groups {', '.join(self.approver_groups)}"] if self.approver_groups else []
        parts += [f"users {', '.join(self.approver_users)}"] if self.approver_users else []
        return " or ".join(parts) + " (never the requester)" if parts else ""

    @property
    def refusal(self) -> str:
        """The admission refusal message of a denied dry run (models/dryrun.py's wire form)."""
        return encode_refusal(self.reason, self.message)

    def warnings(self) -> list[str]:
        """The admission warnings of an allowed or pending dry run (models/dryrun.py's wire form)."""
        duration = format_duration(self.duration) if self.duration is not None else ""
        return encode_warnings(
            DryRunWire(
                outcome="pending-approval" if self.outcome is Outcome.PENDING_APPROVAL else "allowed",
                reason=self.reason,
                message=f"{self.message}; would be granted for {duration}",
                duration=duration or None,
                approvals_needed=self.approvals,
                approvers=self.approvers_text or None,
            )
        )


def parse_request(body: Mapping[str, Any]) -> AccessRequest | DryRunAnswer:
    """The request, or the InvalidRequest answer naming (up to five of) its bad fields."""
    try:
        return AccessRequest.from_object(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return DryRunAnswer(Outcome.DENIED, Reason.INVALID_REQUEST, problems, code=400)


def dry_run_answer(
    *,
    body: Mapping[str, Any],
    policy: GrantPolicySpec | None,
    inline_rules_enabled: bool,
    operator_namespace: str,
    existing: OpenRequest | None = None,
    limit: str | None = None,
    refusal: PolicyRefusal | None = None,
) -> DryRunAnswer:
    """The first decision on a request whose requester the webhook has stamped and sealed;
    `existing` and `limit` are the guardrails' findings, as the reconciler would have them;
    `refusal` the policy gate's (policy/gate.py), which the real create is refused with."""
    request = parse_request(body)
    if isinstance(request, DryRunAnswer):
        return request
    if refusal is not None:
        return DryRunAnswer(Outcome.DENIED, refusal.reason, refusal.message, request=request)
    step = decide_new(
        request=request,
        policy=policy,
        seal_valid=True,  # the webhook verified the seal (review_create) before this runs
        inline_rules_enabled=inline_rules_enabled,
        operator_namespace=operator_namespace,
        existing=existing,
        limit=limit,
    )
    if step.action in (Action.FAIL, Action.DENY) or policy is None:
        return DryRunAnswer(Outcome.DENIED, step.reason, step.message, request=request)
    if step.action is Action.PEND:
        people = policy.approval.approvers
        pending = DryRunAnswer(
            Outcome.PENDING_APPROVAL,
            step.reason,
            "",
            duration=step.duration,
            approvals=policy.approval.min_approvals,
            approver_groups=people.groups,
            approver_users=people.users,
            request=request,
        )
        message = (
            f"needs {pending.approvals} approval(s) from {pending.approvers_text} "
            f"under policy {request.spec.policy}"
        )
        return replace(pending, message=message)
    return DryRunAnswer(Outcome.ALLOWED, step.reason, step.message, duration=step.duration, request=request)
