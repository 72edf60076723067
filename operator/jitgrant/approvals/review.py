"""What the admission webhooks decide, as pure functions of the old and new object and the caller.

The webhook handlers only parse, call these, and answer; every refusal is a sentence that goes back to
kubectl or the CLI verbatim. The reconciler does not rely on any of this: it re-checks the seal and
counts approvals by receipt (`counting.tally`), so a bypassed webhook still grants nothing. What these
checks add is that the mistake or the attack is refused at the door, with a reason, instead of being
silently ignored later.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from jitgrant.approvals.counting import eligibility, person_key
from jitgrant.approvals.receipts import (
    Decision,
    RecordedApproval,
    parse_entry,
    record_decision,
    spec_hash,
    verify_receipt,
)
from jitgrant.identity.stamp import canonical_value, verify_requester_seal
from jitgrant.models import GrantPolicySpec, Phase, RequesterStamp
from jitgrant.models.text import MAX_REASON_LENGTH
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    APPROVE_ANNOTATION,
    DENY_ANNOTATION,
    FINALIZER,
    LAST_APPLIED_ANNOTATION,
    OIDC_TOKEN_ANNOTATION,
    RELEASE_ANNOTATION,
    REQUESTER_SEAL_ANNOTATION,
    REVOKE_ANNOTATION,
    REVOKED_BY_ANNOTATION,
)

# Annotations under these domains belong to the operator (kopf's progress and diff-base storage live
# there too): nobody else may add, change or remove them, except the few meant for people.
OPERATOR_DOMAINS = ("jitgrant.dev", "kopf.zalando.org")
USER_ANNOTATIONS = frozenset({APPROVE_ANNOTATION, DENY_ANNOTATION, REVOKE_ANNOTATION, RELEASE_ANNOTATION})
_DECIDING_PHASES = frozenset({None, Phase.PENDING.value})


@dataclass(frozen=True)
class Caller:
    """The identity the API server authenticated for this admission request."""

    username: str
    uid: str
    groups: tuple[str, ...]

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any]) -> Caller:
        return cls(
            username=str(userinfo.get("username") or ""),
            uid=str(userinfo.get("uid") or ""),
            groups=tuple(str(group) for group in userinfo.get("groups") or ()),
        )


def operator_username(*, namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations = _meta(obj).get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _phase(obj: Mapping[str, Any]) -> str | None:
    status = obj.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return phase if isinstance(phase, str) else None


def is_operator_annotation(key: str) -> bool:
    domain = key.split("/", 1)[0] if "/" in key else ""
    return any(domain == base or domain.endswith("." + base) for base in OPERATOR_DOMAINS)


def requester_of(obj: Mapping[str, Any]) -> RequesterStamp | None:
    raw = _spec(obj).get("requester")
    if not isinstance(raw, Mapping):
        return None
    try:
        return RequesterStamp.model_validate(dict(raw))
    except ValidationError:
        return None


def is_sealed(obj: Mapping[str, Any], *, key: bytes) -> bool:
    meta = _meta(obj)
    return verify_requester_seal(
        key=key,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        spec=_spec(obj),
        seal=annotations_of(obj).get(REQUESTER_SEAL_ANNOTATION),
    )


# --- CREATE -------------------------------------------------------------------------------------


def review_create(new: Mapping[str, Any], *, key: bytes) -> str | None:
    """Why a new AccessRequest (after mutation) must be refused, or None."""
    if requester_of(new) is None or not is_sealed(new, key=key):
        return (
            "spec.requester is missing or its seal does not verify: the requester is stamped by the "
            "jitgrant mutating webhook (stamp-requester), which did not run or was overridden"
        )
    annotations = annotations_of(new)
    if OIDC_TOKEN_ANNOTATION in annotations or _token_in_last_applied(annotations):
        return (
            f"annotation {OIDC_TOKEN_ANNOTATION} must never be stored; the webhook removes it after verifying"
        )
    for name in sorted(annotations):
        if is_operator_annotation(name) and name != REQUESTER_SEAL_ANNOTATION:
            return f"annotation {name} cannot be set when creating an AccessRequest; it is the operator's"
    return None


def _token_in_last_applied(annotations: Mapping[str, str]) -> bool:
    return OIDC_TOKEN_ANNOTATION in (annotations.get(LAST_APPLIED_ANNOTATION) or "")


def scrub_last_applied(value: str) -> str | None:
    """kubectl apply's copy of the manifest without the token annotation; None to drop the copy.

    Without this, `kubectl apply` of a manifest carrying `jitgrant.dev/oidc-token` would leave the
    token readable in `kubectl.kubernetes.io/last-applied-configuration`.
    """
    try:
        manifest = json.loads(value)
        annotations = manifest["metadata"]["annotations"]
        del annotations[OIDC_TOKEN_ANNOTATION]
    except (ValueError, KeyError, TypeError):
        return None
    scrubbed = json.dumps(manifest, separators=(",", ":"))
    return None if OIDC_TOKEN_ANNOTATION in scrubbed else scrubbed + "\n"


# --- UPDATE: recording a decision (mutating) ------------------------------------------------------


def _newly_set(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> str | None:
    value = annotations_of(new).get(name)
    if value is None or annotations_of(old).get(name) == value:
        return None
    return value


@dataclass(frozen=True)
class DecisionRecord:
    """The mutation for one approve/deny: the new value of the approvals annotation."""

    entry: RecordedApproval
    approvals_value: str


class DecisionRefused(ValueError):
    pass


def plan_decision(
    *,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    caller: Caller,
    key: bytes,
    now: datetime,
) -> DecisionRecord | None:
    """The approval entry to append when the caller just set approve or deny; None if they did not.

    The entry is appended to the approvals list as it arrives in *new*, so any other edit of that list
    in the same request is still visible to the validating webhook, which refuses it.
    """
    approve = _newly_set(old, new, APPROVE_ANNOTATION)
    deny = _newly_set(old, new, DENY_ANNOTATION)
    if approve is None and deny is None:
        return None
    if approve is not None and deny is not None:
        raise DecisionRefused(f"set either {APPROVE_ANNOTATION} or {DENY_ANNOTATION}, not both")
    decision: Decision = "approve" if approve is not None else "deny"
    reason = (approve if approve is not None else deny) or ""
    if len(reason) > MAX_REASON_LENGTH:
        name = APPROVE_ANNOTATION if approve is not None else DENY_ANNOTATION
        raise DecisionRefused(
            f"annotation {name} is {len(reason)} characters; a reason of at most {MAX_REASON_LENGTH} "
            "is accepted"
        )
    uid = str(_meta(old).get("uid") or "")
    if not uid or not caller.username:
        raise DecisionRefused("a decision needs the request's uid and an authenticated approver")
    raw = annotations_of(new).get(APPROVALS_ANNOTATION)
    try:
        existing = json.loads(raw) if raw else []
    except ValueError:
        existing = None
    if not isinstance(existing, list):
        raise DecisionRefused(f"annotation {APPROVALS_ANNOTATION} is not a JSON list; it is the operator's")
    entry = record_decision(
        key=key,
        request_uid=uid,
        spec=_spec(old),
        approver=caller.username,
        groups=caller.groups,
        decision=decision,
        at=now,
        reason=reason,
    )
    value = json.dumps([*existing, entry.to_wire()], separators=(",", ":"), ensure_ascii=False)
    return DecisionRecord(entry=entry, approvals_value=value)


# --- UPDATE: validation ---------------------------------------------------------------------------


def review_update(
    *,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    caller: Caller,
    key: bytes,
    policy: GrantPolicySpec | None,
    operator_usernames: Collection[str],
) -> str | None:
    """Why this change to an AccessRequest (after mutation) must be refused, or None."""
    if canonical_value(_spec(old)) != canonical_value(_spec(new)):
        return "spec is immutable after creation; create a new AccessRequest instead"
    old_annotations, new_annotations = annotations_of(old), annotations_of(new)
    if old_annotations.get(REQUESTER_SEAL_ANNOTATION) != new_annotations.get(REQUESTER_SEAL_ANNOTATION):
        return f"annotation {REQUESTER_SEAL_ANNOTATION} is set once, at creation, and cannot change"
    is_operator = caller.username in operator_usernames
    for name in (APPROVE_ANNOTATION, DENY_ANNOTATION):
        if _newly_set(old, new, name) is not None:
            return (
                f"annotation {name} was not recorded: the jitgrant mutating webhook (stamp-requester) did "
                "not run, so the decision cannot be attributed to you"
            )
    if _newly_set(old, new, OIDC_TOKEN_ANNOTATION) is not None or (
        _newly_set(old, new, LAST_APPLIED_ANNOTATION) is not None and _token_in_last_applied(new_annotations)
    ):
        return f"annotation {OIDC_TOKEN_ANNOTATION} is only read at creation and must never be stored"
    if not is_operator:
        refusal = _review_operator_metadata(old=old, new=new)
        if refusal is not None:
            return refusal
    if old_annotations.get(APPROVALS_ANNOTATION) != new_annotations.get(APPROVALS_ANNOTATION):
        return _review_decision(old=old, new=new, caller=caller, key=key, policy=policy)
    return None


def _review_operator_metadata(*, old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    old_annotations, new_annotations = annotations_of(old), annotations_of(new)
    for name in sorted(set(old_annotations) | set(new_annotations)):
        if not is_operator_annotation(name) or name in USER_ANNOTATIONS:
            continue
        if name in (APPROVALS_ANNOTATION, REQUESTER_SEAL_ANNOTATION, OIDC_TOKEN_ANNOTATION):
            continue  # checked on their own
        if name == REVOKED_BY_ANNOTATION:
            continue  # checked on its own: jitgrant.identity.stamp.revoker_refusal
        if old_annotations.get(name) != new_annotations.get(name):
            return f"annotation {name} belongs to the jitgrant operator and cannot be changed by you"
    return operator_finalizer_refusal(old=old, new=new)


def operator_finalizer_refusal(*, old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why removing the operator's finalizer must be refused (for anyone but the operator), or None."""
    old_finalizers = _meta(old).get("finalizers") or []
    new_finalizers = _meta(new).get("finalizers") or []
    if FINALIZER in old_finalizers and FINALIZER not in new_finalizers:
        return (
            f"only the jitgrant operator removes the finalizer {FINALIZER} (it revokes the grant first); "
            f"to end a grant, annotate {REVOKE_ANNOTATION}=<reason> or delete the AccessRequest"
        )
    return None


def _strict_list(value: str | None) -> list[Any] | None:
    if not value:
        return []
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, list) else None


def _review_decision(
    *,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    caller: Caller,
    key: bytes,
    policy: GrantPolicySpec | None,
) -> str | None:
    before = _strict_list(annotations_of(old).get(APPROVALS_ANNOTATION))
    after = _strict_list(annotations_of(new).get(APPROVALS_ANNOTATION))
    if before is None or after is None or after[: len(before)] != before or len(after) != len(before) + 1:
        return (
            f"annotation {APPROVALS_ANNOTATION} is written only by the jitgrant webhook, one decision at a "
            f"time; approve with {APPROVE_ANNOTATION}=<reason> or deny with {DENY_ANNOTATION}=<reason>"
        )
    entry = parse_entry(after[-1])
    uid = str(_meta(old).get("uid") or "")
    if (
        entry is None
        or entry.approver != caller.username
        or entry.groups != caller.groups
        or not verify_receipt(key=key, request_uid=uid, spec_hash=spec_hash(_spec(old)), recorded=entry)
    ):
        return (
            f"the new entry in {APPROVALS_ANNOTATION} was not recorded by the jitgrant webhook for you "
            f"({caller.username}) on this request; approve with {APPROVE_ANNOTATION}=<reason>"
        )
    return decision_refusal(old=old, entry=entry, policy=policy, key=key, earlier=before)


def _reason_refusal(entry: RecordedApproval, *, policy: GrantPolicySpec, name: str) -> str | None:
    """An approval without the reason the policy asks for (approval.reasonRequired, minReasonLength).

    Counted without whitespace and invisible characters, so neither spaces nor zero-width characters
    pass for a reason. A denial is never held up for want of one.
    """
    floor = policy.approval.reason_floor
    if entry.decision != "approve" or floor == 0:
        return None
    written = sum(1 for ch in entry.reason if ch.isprintable() and not ch.isspace())
    if written >= floor:
        return None
    return (
        f"policy {name} requires a reason of at least {floor} character(s) for an approval "
        f"(approval.reasonRequired, approval.minReasonLength); this one has {written}. Approve with "
        f"{APPROVE_ANNOTATION}=<reason>, e.g. jitgrant approve <request> --reason 'INC-4711 checked'"
    )


def decision_refusal(
    *,
    old: Mapping[str, Any],
    entry: RecordedApproval,
    policy: GrantPolicySpec | None,
    key: bytes,
    earlier: Sequence[Any],
) -> str | None:
    """Why this approver may not decide on this request now, or None."""
    verb = "approve" if entry.decision == "approve" else "deny"
    phase = _phase(old)
    if phase not in _DECIDING_PHASES:
        return f"request is {phase}; decisions are taken only while it is Pending" + (
            f" (to end an active grant, annotate {REVOKE_ANNOTATION}=<reason>)"
            if not _terminal(phase)
            else ""
        )
    requester = requester_of(old)
    if requester is None or not is_sealed(old, key=key):
        return (
            "request was not stamped and sealed by the jitgrant webhook when it was created; it grants "
            f"nothing and cannot be {verb}d - create it again"
        )
    name = str(_spec(old).get("policy") or "")
    if policy is None:
        return f"GrantPolicy {name} not found; nobody can {verb} a request under it"
    refusal = eligibility(
        policy=policy.approval, requester=requester, approver=entry.approver, groups=entry.groups
    )
    if refusal is not None:
        return refusal.replace("this policy", f"policy {name}")
    refusal = _reason_refusal(entry, policy=policy, name=name)
    if refusal is not None:
        return refusal
    uid = str(_meta(old).get("uid") or "")
    digest = spec_hash(_spec(old))
    for item in earlier:
        previous = parse_entry(item)
        if previous is None:
            continue
        if not verify_receipt(key=key, request_uid=uid, spec_hash=digest, recorded=previous):
            continue
        if person_key(previous.approver) == person_key(entry.approver):
            done = "approved" if previous.decision == "approve" else "denied"
            when = previous.at.isoformat()
            return f"{entry.approver} already {done} this request at {when}; each person decides once"
        if (
            previous.decision == "deny"
            and eligibility(
                policy=policy.approval,
                requester=requester,
                approver=previous.approver,
                groups=previous.groups,
            )
            is None
        ):
            return f"request was already denied by {previous.approver}"
    return None


def _terminal(phase: str | None) -> bool:
    return phase is not None and phase not in (Phase.APPROVED.value, Phase.ACTIVE.value)


# --- status subresource ---------------------------------------------------------------------------


def review_status_update(*, caller: Caller, operator_usernames: Collection[str]) -> str | None:
    if caller.username in operator_usernames:
        return None
    return "status of an AccessRequest is written only by the jitgrant operator"
