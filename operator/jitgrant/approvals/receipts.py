"""Recorded approvals and their receipts.

An approver annotates an AccessRequest with `jitgrant.dev/approve` or `jitgrant.dev/deny`; the mutating
webhook replaces that with an entry appended to the JSON list in `jitgrant.dev/approvals`, recording who
the API server says the approver is, their groups at that moment, the time, and a receipt: an HMAC under
a key only the operator holds, over the request's UID, the hash of its spec, the approver, groups,
decision, time and reason. The reconciler counts only entries whose receipt verifies for *this* UID and
spec, so an entry typed by hand (webhook missing or bypassed), copied from another request, or replayed
onto a request recreated under the same name, counts for nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from jitgrant.identity.stamp import canonical_json

RECEIPT_VERSION = "v1"
_RECEIPT_DOMAIN = "jitgrant.dev/approval-receipt/v1"

Decision = Literal["approve", "deny"]
DECISIONS: tuple[str, ...] = get_args(Decision)


def format_time(at: datetime) -> str:
    """The one text form of a decision time, used both in the annotation and under the receipt."""
    if at.tzinfo is None:
        raise ValueError("decision times must be timezone-aware (UTC)")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class RecordedApproval:
    """One approve or deny decision as the webhook recorded it."""

    approver: str
    groups: tuple[str, ...]
    at: datetime
    decision: Decision
    reason: str
    receipt: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "approver": self.approver,
            "groups": list(self.groups),
            "at": format_time(self.at),
            "decision": self.decision,
            "reason": self.reason,
            "receipt": self.receipt,
        }


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the spec (requester stamp included), as "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(canonical_json(spec)).hexdigest()


def _receipt_message(
    *,
    request_uid: str,
    spec_hash: str,
    approver: str,
    groups: Sequence[str],
    decision: str,
    at: datetime,
    reason: str,
) -> bytes:
    return canonical_json(
        {
            "domain": _RECEIPT_DOMAIN,
            "uid": request_uid,
            "specHash": spec_hash,
            "approver": approver,
            "groups": list(groups),
            "decision": decision,
            "at": format_time(at),
            "reason": reason,
        }
    )


def make_receipt(
    *,
    key: bytes,
    request_uid: str,
    spec_hash: str,
    approver: str,
    groups: Sequence[str],
    decision: Decision,
    at: datetime,
    reason: str = "",
) -> str:
    """The receipt for one decision on one request (UID and spec hash), as "v1:<hex>"."""
    if not key:
        raise ValueError("an empty key makes no receipt")
    if not request_uid:
        raise ValueError("a receipt needs the request's UID; it binds the decision to this object")
    if decision not in DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    message = _receipt_message(
        request_uid=request_uid,
        spec_hash=spec_hash,
        approver=approver,
        groups=groups,
        decision=decision,
        at=at,
        reason=reason,
    )
    return f"{RECEIPT_VERSION}:{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def verify_receipt(*, key: bytes, request_uid: str, spec_hash: str, recorded: RecordedApproval) -> bool:
    """True only if the receipt was made under `key` for this UID, spec hash and every recorded field."""
    if not key or not request_uid or not recorded.receipt:
        return False
    try:
        expected = make_receipt(
            key=key,
            request_uid=request_uid,
            spec_hash=spec_hash,
            approver=recorded.approver,
            groups=recorded.groups,
            decision=recorded.decision,
            at=recorded.at,
            reason=recorded.reason,
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), recorded.receipt.encode("utf-8", "replace"))


def record_decision(
    *,
    key: bytes,
    request_uid: str,
    spec: Mapping[str, Any],
    approver: str,
    groups: Sequence[str],
    decision: Decision,
    at: datetime,
    reason: str = "",
) -> RecordedApproval:
    """A new entry for `jitgrant.dev/approvals`, with its receipt (what the mutating webhook appends)."""
    at = at.astimezone(UTC)
    receipt = make_receipt(
        key=key,
        request_uid=request_uid,
        spec_hash=spec_hash(spec),
        approver=approver,
        groups=groups,
        decision=decision,
        at=at,
        reason=reason,
    )
    return RecordedApproval(
        approver=approver, groups=tuple(groups), at=at, decision=decision, reason=reason, receipt=receipt
    )


def parse_entry(item: Any) -> RecordedApproval | None:
    if not isinstance(item, Mapping):
        return None
    approver, groups, at, decision = (
        item.get("approver"),
        item.get("groups", []),
        item.get("at"),
        item.get("decision"),
    )
    reason, receipt = item.get("reason", ""), item.get("receipt", "")
    if not isinstance(approver, str) or not isinstance(at, str) or decision not in DECISIONS:
        return None
    if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
        return None
    if not isinstance(reason, str) or not isinstance(receipt, str):
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return RecordedApproval(
        approver=approver,
        groups=tuple(groups),
        at=when.astimezone(UTC),
        decision=decision,
        reason=reason,
        receipt=receipt,
    )


def parse_recorded(annotation_value: str | None) -> list[RecordedApproval]:
    """The entries of `jitgrant.dev/approvals`; malformed JSON or entries are dropped, never trusted."""
    if not annotation_value:
        return []
    try:
        data = json.loads(annotation_value)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    entries = (parse_entry(item) for item in data)
    return [entry for entry in entries if entry is not None]


def dump_recorded(entries: Sequence[RecordedApproval]) -> str:
    """The annotation value for these entries (compact JSON, in order)."""
    return json.dumps([entry.to_wire() for entry in entries], separators=(",", ":"), ensure_ascii=False)
