"""Who may revoke an AccessRequest: set, change or remove its `jitgrant.dev/revoke` annotation.

RBAC's `patch` is too coarse for this: the chart's `jitgrant-requester` role lets every agent patch
every request in its namespace, so without this check one agent could end another's grant. Standing
to revoke comes from the request itself, checked in this order (the first that holds wins):

1. the operator (its own housekeeping);
2. the request's requester, proven by the seal (`release.is_requester`);
3. an approver eligible under the request's GrantPolicy (`counting.eligibility`, as for approvals);
4. whoever the API server says may `delete` this AccessRequest (a SubjectAccessReview): deleting
   revokes anyway, so this is no new power; it is how platform admins and break-glass roles revoke.

Pure: the webhook asks the API server for (4) only when (1)-(3) do not hold, and passes the answer in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum
from typing import Any

from jitgrant.approvals.counting import eligibility
from jitgrant.approvals.release import is_requester
from jitgrant.approvals.review import Caller, annotations_of, is_sealed, requester_of
from jitgrant.models import GrantPolicySpec
from jitgrant.models.text import MAX_REASON_LENGTH
from jitgrant.models.vocabulary import REVOKE_ANNOTATION


class Standing(Enum):
    """Why a caller may revoke, short of asking the API server."""

    OPERATOR = "operator"
    REQUESTER = "requester"
    APPROVER = "approver"


def revoke_touched(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether this update sets, changes or removes the revoke annotation."""
    return annotations_of(old).get(REVOKE_ANNOTATION) != annotations_of(new).get(REVOKE_ANNOTATION)


def revoker_standing(
    *,
    old: Mapping[str, Any],
    caller: Caller,
    key: bytes,
    policy: GrantPolicySpec | None,
    operator_usernames: Collection[str],
) -> Standing | None:
    """Why `caller` may revoke this request without a SubjectAccessReview, or None."""
    if caller.username and caller.username in operator_usernames:
        return Standing.OPERATOR
    requester = requester_of(old)
    if requester is None or not is_sealed(old, key=key):
        return None  # an unsealed request names no trustworthy requester (and grants nothing)
    if is_requester(caller, requester):
        return Standing.REQUESTER
    if (
        policy is not None
        and eligibility(
            policy=policy.approval, requester=requester, approver=caller.username, groups=caller.groups
        )
        is None
    ):
        return Standing.APPROVER
    return None


def review_revoke(
    *,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    caller: Caller,
    key: bytes,
    policy: GrantPolicySpec | None,
    operator_usernames: Collection[str],
    may_delete: bool | None,
) -> str | None:
    """Why this change of the revoke annotation must be refused, or None (also when it is untouched).

    `may_delete` is the SubjectAccessReview's answer for the caller (verb `delete` on this request),
    or None when it was not asked or could not be answered: then only (1)-(3) can allow it.
    """
    if not revoke_touched(old, new):
        return None
    reason = annotations_of(new).get(REVOKE_ANNOTATION)
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        return (
            f"annotation {REVOKE_ANNOTATION} is {len(reason)} characters; a revoke reason of at most "
            f"{MAX_REASON_LENGTH} is accepted"
        )
    if revoker_standing(
        old=old, caller=caller, key=key, policy=policy, operator_usernames=operator_usernames
    ) is not None or (may_delete is True and caller.username):
        return None
    return refusal_message(old=old, caller=caller, key=key)


def refusal_message(*, old: Mapping[str, Any], caller: Caller, key: bytes) -> str:
    """Says who may revoke this request, and that the caller is none of them."""
    meta = old.get("metadata") or {}
    where = f"AccessRequest {meta.get('namespace')}/{meta.get('name')}"
    requester = requester_of(old)
    named = requester.username if requester is not None and is_sealed(old, key=key) else None
    spec = old.get("spec") or {}
    policy = str(spec.get("policy") or "") if isinstance(spec, Mapping) else ""
    who = caller.username or "an unauthenticated caller"
    return (
        f"only the requester{f' ({named})' if named else ''}, an approver of GrantPolicy {policy}, or "
        f"someone allowed to delete {where} may set, change or remove {REVOKE_ANNOTATION}; {who} is "
        "none of these"
    )
