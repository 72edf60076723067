"""Counting approvals honestly: who may approve, and whether enough distinct people did.

The webhook refuses bad decisions at the door and says why; this module is the second line that the
reconciler applies to whatever is stored, so that a bypassed or missing webhook still grants nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jitgrant.approvals.receipts import RecordedApproval, spec_hash, verify_receipt
from jitgrant.models import ApprovalPolicy, RequesterStamp
from jitgrant.models.vocabulary import CREATED_BY_EXTRA

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
# For OIDC-proven requesters, the Kubernetes identity that created the object on their behalf.


def person_key(username: str) -> str:
    """The key under which approvers are told apart and compared with the requester.

    Kubernetes usernames are exact strings, but folding case and surrounding whitespace can only merge
    identities (fewer distinct approvers, more self-approvals refused), never split one person in two.
    """
    return username.strip().casefold()


def is_service_account(username: str) -> bool:
    return person_key(username).startswith(SERVICE_ACCOUNT_PREFIX)


def eligibility(
    *, policy: ApprovalPolicy, requester: RequesterStamp, approver: str, groups: Sequence[str]
) -> str | None:
    """None if `approver` (with `groups`) may decide on this request, else the reason they may not."""
    if person_key(approver) == person_key(requester.username):
        return f"{approver} is the requester and cannot approve or deny their own request"
    if any(
        person_key(approver) == person_key(creator) for creator in requester.extra.get(CREATED_BY_EXTRA, ())
    ):
        return f"{approver} created this request for {requester.username} and cannot approve or deny it"
    listed_users = policy.approvers.users
    if approver in listed_users:
        return None
    allowed = _describe(policy)
    if is_service_account(approver):
        return (
            f"{approver} is a ServiceAccount; a ServiceAccount may approve only when named in "
            f"approval.approvers.users, never through group membership ({allowed})"
        )
    if set(groups) & set(policy.approvers.groups):
        return None
    return f"{approver} is not an approver for this policy ({allowed})"


def _describe(policy: ApprovalPolicy) -> str:
    users = ", ".join(policy.approvers.users) or "none"
    groups = ", ".join(policy.approvers.groups) or "none"
    return f"approvers: users {users}; groups {groups}"


@dataclass(frozen=True)
class ApprovalTally:
    """The outcome of counting the recorded decisions on one request."""

    approved: bool
    denied_by: RecordedApproval | None
    counted: tuple[RecordedApproval, ...]
    ignored: tuple[tuple[RecordedApproval, str], ...]
    needed: int

    @property
    def missing(self) -> int:
        return max(0, self.needed - len(self.counted))


def tally(
    *,
    policy: ApprovalPolicy,
    requester: RequesterStamp,
    recorded: Sequence[RecordedApproval],
    key: bytes,
    request_uid: str,
    spec: Mapping[str, Any],
) -> ApprovalTally:
    """Count approvals with a valid receipt for this UID and spec, from distinct eligible approvers.

    A single valid deny from an eligible approver denies the request. When the policy requires no
    approval, `needed` is 0 and the request is approved unless an eligible approver denied it.
    """
    digest = spec_hash(spec)
    needed = policy.min_approvals if policy.required else 0
    counted: list[RecordedApproval] = []
    ignored: list[tuple[RecordedApproval, str]] = []
    decided: set[str] = set()
    denied_by: RecordedApproval | None = None
    for entry in recorded:
        if not verify_receipt(key=key, request_uid=request_uid, spec_hash=digest, recorded=entry):
            ignored.append(
                (
                    entry,
                    f"the receipt of {entry.approver}'s {entry.decision} does not verify for this "
                    "request (written without the webhook, altered, or copied from another request)",
                )
            )
            continue
        refusal = eligibility(
            policy=policy, requester=requester, approver=entry.approver, groups=entry.groups
        )
        if refusal is not None:
            ignored.append((entry, refusal))
            continue
        if entry.decision == "deny":
            if denied_by is None:
                denied_by = entry
            else:
                ignored.append((entry, f"already denied by {denied_by.approver}"))
            decided.add(person_key(entry.approver))
            continue
        if person_key(entry.approver) in decided:
            ignored.append((entry, f"{entry.approver} has already decided; each person counts once"))
            continue
        decided.add(person_key(entry.approver))
        counted.append(entry)
    approved = denied_by is None and len(counted) >= needed
    return ApprovalTally(
        approved=approved,
        denied_by=denied_by,
        counted=tuple(counted),
        ignored=tuple(ignored),
        needed=needed,
    )
