"""Who may revoke an AccessRequest, or change any metadata that decides its fate.

Revoking is setting, changing or removing its `jitgrant.dev/revoke` annotation. The same standing
governs every other field that can end the request (and so its grant) or keep it from going
(`FATE_FIELDS`): `metadata.ownerReferences` (an owner that is missing, or that its setter deletes,
makes the garbage collector delete the request), `metadata.finalizers` (a foreign finalizer holds a
deleted request, and with it its name, for as long as its writer likes; removing one skips its
owner's clean-up) and `metadata.deletionTimestamp` / `deletionGracePeriodSeconds` (changed only by
deleting; the API server refuses them on update too, so this is a second line).

RBAC's `patch` is too coarse for this: the chart's `jitgrant-requester` role lets every agent patch
every request in its namespace, so without this check one agent could end another's grant. Standing
comes from the request itself, checked in this order (the first that holds wins):

1. the operator (its own housekeeping);
2. the request's requester, proven by the seal (`release.is_requester`);
3. an approver eligible under the request's GrantPolicy (`counting.eligibility`, as for approvals);
4. whoever the API server says may `delete` this AccessRequest (a SubjectAccessReview): deleting
   revokes anyway, so this is no new power; it is how platform admins and break-glass roles revoke.

Pure: the webhook asks the API server for (4) only when (1)-(3) do not hold, and passes the answer in.
The operator's own finalizer is stricter still: only the operator removes it (`review.py`). Labels
and other annotations are free: the operator reads no label of an AccessRequest and no webhook
selects on one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum
from typing import Any

from jitgrant.approvals.counting import eligibility
from jitgrant.approvals.release import is_requester
from jitgrant.approvals.review import (
    Caller,
    annotations_of,
    is_sealed,
    operator_finalizer_refusal,
    requester_of,
)
from jitgrant.identity.stamp import Revoker, canonical_value, stamp_deleter
from jitgrant.models import TERMINAL_PHASES, GrantPolicySpec
from jitgrant.models.text import MAX_REASON_LENGTH
from jitgrant.models.vocabulary import (
    DELETED_BY_ANNOTATION,
    FINALIZER,
    GARBAGE_COLLECTOR_USERNAME,
    REVOKE_ANNOTATION,
)


class Standing(Enum):
    """Why a caller may revoke, short of asking the API server."""

    OPERATOR = "operator"
    REQUESTER = "requester"
    APPROVER = "approver"


# Each metadata field that decides when an AccessRequest goes, and why changing it is revoking.
FATE_FIELDS: Mapping[str, str] = {
    "metadata.ownerReferences": (
        "the garbage collector deletes the request, and deleting it ends its grant, once its owners are gone"
    ),
    "metadata.finalizers": "they decide when a deleted request, and its name, are gone",
    "metadata.deletionTimestamp": "it is set only by deleting the request",
    "metadata.deletionGracePeriodSeconds": "it is set only by deleting the request",
}


def revoke_touched(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether this update sets, changes or removes the revoke annotation."""
    return annotations_of(old).get(REVOKE_ANNOTATION) != annotations_of(new).get(REVOKE_ANNOTATION)


def _metadata_value(obj: Mapping[str, Any], field: str) -> Any:
    meta = obj.get("metadata")
    value = meta.get(field.removeprefix("metadata.")) if isinstance(meta, Mapping) else None
    if field == "metadata.finalizers":
        # Order means nothing to the API server; a reordering is no change.
        return sorted({str(item) for item in value}) if isinstance(value, list) else []
    if field == "metadata.ownerReferences":
        return canonical_value(value) if value else []
    return value


def fate_touched(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of `FATE_FIELDS` this update changes (the revoke annotation named as its own)."""
    changed = tuple(f for f in FATE_FIELDS if _metadata_value(old, f) != _metadata_value(new, f))
    if revoke_touched(old, new):
        return (f"metadata.annotations[{REVOKE_ANNOTATION}]", *changed)
    return changed


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
    """Why this change of the revoke annotation, or of any other field of `FATE_FIELDS`, must be
    refused, or None (also when none is touched).

    `may_delete` is the SubjectAccessReview's answer for the caller (verb `delete` on this request),
    or None when it was not asked or could not be answered: then only (1)-(3) can allow it.
    """
    touched = fate_touched(old, new)
    if not touched:
        return None
    reason = annotations_of(new).get(REVOKE_ANNOTATION)
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        return (
            f"annotation {REVOKE_ANNOTATION} is {len(reason)} characters; a revoke reason of at most "
            f"{MAX_REASON_LENGTH} is accepted"
        )
    is_operator = bool(caller.username) and caller.username in operator_usernames
    if not is_operator and (stricter := operator_finalizer_refusal(old=old, new=new)) is not None:
        return stricter  # the operator's own finalizer: not even the requester removes it
    if revoker_standing(
        old=old, caller=caller, key=key, policy=policy, operator_usernames=operator_usernames
    ) is not None or (may_delete is True and caller.username):
        return None
    if revoke_touched(old, new):
        return refusal_message(old=old, caller=caller, key=key)
    return refusal_message(old=old, caller=caller, key=key, field=touched[0])


def refusal_message(*, old: Mapping[str, Any], caller: Caller, key: bytes, field: str | None = None) -> str:
    """Says who may revoke this request (or change `field`, one of `FATE_FIELDS`), and that the caller
    is none of them."""
    meta = old.get("metadata") or {}
    where = f"AccessRequest {meta.get('namespace')}/{meta.get('name')}"
    requester = requester_of(old)
    named = requester.username if requester is not None and is_sealed(old, key=key) else None
    spec = old.get("spec") or {}
    policy = str(spec.get("policy") or "") if isinstance(spec, Mapping) else ""
    who = caller.username or "an unauthenticated caller"
    who_may = (
        f"only the requester{f' ({named})' if named else ''}, an approver of GrantPolicy {policy}, or "
        f"someone allowed to delete {where}"
    )
    if field is None:
        return f"{who_may} may set, change or remove {REVOKE_ANNOTATION}; {who} is none of these"
    return f"{who_may} may change {field} ({FATE_FIELDS[field]}); {who} is none of these"


# --- Who deletes ------------------------------------------------------------------------------------


def owners_followed(old: Mapping[str, Any]) -> str:
    """The owners a garbage collector's deletion followed, as the audit record says them."""
    meta = old.get("metadata") or {}
    refs = meta.get("ownerReferences") if isinstance(meta, Mapping) else None
    named = [
        f"{ref.get('kind')} {meta.get('namespace')}/{ref.get('name')} (uid {ref.get('uid')})"
        for ref in refs or ()
        if isinstance(ref, Mapping)
    ]
    if not named:
        return ""
    return f"following its owner{'s' if len(named) > 1 else ''} {', '.join(named)}"


def deletion_stamp(*, old: Mapping[str, Any], caller: Caller, key: bytes) -> str | None:
    """The `jitgrant.dev/deleted-by` value to record before this DELETE goes ahead, or None when there
    is nothing to record: no grant to revoke (finished, or without the operator's finalizer, so the
    deletion is immediate), already being deleted, or the same stamp already there."""
    meta = old.get("metadata") or {}
    if not isinstance(meta, Mapping) or meta.get("deletionTimestamp"):
        return None
    uid, finalizers = str(meta.get("uid") or ""), meta.get("finalizers") or ()
    status = old.get("status") or {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if not uid or not caller.username or FINALIZER not in finalizers:
        return None
    if phase in {terminal.value for terminal in TERMINAL_PHASES}:
        return None
    reason = owners_followed(old) if caller.username == GARBAGE_COLLECTOR_USERNAME else ""
    stamp = stamp_deleter(
        key=key, uid=uid, deleter=Revoker(username=caller.username, groups=caller.groups, reason=reason)
    )
    return None if annotations_of(old).get(DELETED_BY_ANNOTATION) == stamp else stamp
