"""What the console shows, decided from API objects alone (pure: no I/O, no framework).

Who may decide is the admission webhook's own rule (`approvals.counting.eligibility`), so the page
never offers a button the webhook would then refuse; the webhook still decides, and a forged form
meets its refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from jitgrant.approvals.counting import eligibility, person_key
from jitgrant.approvals.receipts import RecordedApproval, parse_recorded
from jitgrant.models import ApprovalPolicy, RequesterStamp
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION, CREATED_BY_EXTRA

LIVE_PHASES = frozenset({"Pending", "Approved", "Active"})


@dataclass(frozen=True)
class Decision:
    """Whether the signed-in person may approve or deny a request, and why not."""

    may_decide: bool
    why_not: str
    needed: int | None  # approvals the policy needs in all (None: the policy could not be read)
    counted: int  # distinct approvers so far


def recorded(obj: Mapping[str, Any]) -> list[RecordedApproval]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return parse_recorded(annotations.get(APPROVALS_ANNOTATION))


def approvals_needed(policy: Mapping[str, Any] | None) -> int | None:
    if policy is None:
        return None
    approval = (policy.get("spec") or {}).get("approval") or {}
    if not approval.get("required"):
        return 0
    return int(approval.get("minApprovals", 1))


def requester_of(obj: Mapping[str, Any]) -> RequesterStamp | None:
    stamp = (obj.get("spec") or {}).get("requester")
    if not stamp:
        return None
    try:
        return RequesterStamp.model_validate(stamp)
    except ValidationError:
        return None


def is_mine(obj: Mapping[str, Any], username: str) -> bool:
    stamp = requester_of(obj)
    if stamp is None or not username:
        return False
    return person_key(stamp.username) == person_key(username) or username in stamp.extra.get(
        CREATED_BY_EXTRA, ()
    )


def decision(
    obj: Mapping[str, Any], policy: Mapping[str, Any] | None, *, username: str, groups: Sequence[str]
) -> Decision:
    status = obj.get("status") or {}
    counted = len({entry.get("approver") for entry in status.get("approvals") or []})
    needed = approvals_needed(policy)

    def no(why: str) -> Decision:
        return Decision(may_decide=False, why_not=why, needed=needed, counted=counted)

    if status.get("phase") != "Pending":
        return no(f"the request is {status.get('phase') or 'not yet decided by the operator'}")
    stamp = requester_of(obj)
    if stamp is None:
        return no("the request has no requester stamp")
    if policy is None:
        return no("you cannot read its GrantPolicy, so you are not shown as an approver")
    if needed == 0:
        return no("its policy needs no approval")
    try:
        approval = ApprovalPolicy.model_validate((policy.get("spec") or {}).get("approval") or {})
    except ValidationError:
        return no("its policy's approval section is not valid")
    if person_key(username) in {person_key(entry.approver) for entry in recorded(obj)}:
        return no(f"{username} has already decided on this request")
    why = eligibility(policy=approval, requester=stamp, approver=username, groups=groups)
    if why is not None:
        return no(why)
    return Decision(may_decide=True, why_not="", needed=needed, counted=counted)


def approvers_named(policy: Mapping[str, Any] | None) -> str:
    """Who may approve under a policy, as the page says it ("users alice; groups sre-oncall")."""
    if policy is None:
        return "unknown (the policy cannot be read)"
    approvers = ((policy.get("spec") or {}).get("approval") or {}).get("approvers") or {}
    users = ", ".join(approvers.get("users") or []) or "none"
    groups = ", ".join(approvers.get("groups") or []) or "none"
    return f"users {users}; groups {groups}"


def timeline(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(time, what) in time order, from the request itself: filed, each decision, the status's
    conditions and the grant's start and end."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    events: list[tuple[str, str]] = []
    if meta.get("creationTimestamp"):
        events.append((str(meta["creationTimestamp"]), "filed"))
    for entry in recorded(obj):
        what = "approved" if entry.decision == "approve" else "denied"
        events.append((entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{what} by {entry.approver}"))
    for condition in status.get("conditions") or []:
        if condition.get("lastTransitionTime"):
            text = f"{condition.get('type')}={condition.get('status')} ({condition.get('reason') or '-'})"
            events.append((str(condition["lastTransitionTime"]), text))
    for key, what in (
        ("requestedAt", "seen by the operator"),
        ("decidedAt", "decided"),
        ("activatedAt", "grant active"),
        ("expiresAt" if status.get("phase") in LIVE_PHASES else "", "grant ends on its own"),
        ("endedAt", f"ended: {status.get('phase')}"),
    ):
        if key and status.get(key):
            events.append((str(status[key]), what))
    return sorted(set(events))
