"""The audit record schema: what a reviewer reads, and what the hash chain covers.

Pure value objects (no I/O). The wire form is camelCase JSON; every time is UTC and
timezone-aware, so the same event always serialises to the same bytes and hashes the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from jitgrant.models import AccessRequest, ApprovalEntry
from jitgrant.models.vocabulary import EventType as EventType  # defined beside Reason; imported from here too
from jitgrant.models.vocabulary import format_time

#: Bump when a field changes meaning or is removed; readers accept every version they know.
SCHEMA_VERSION = 1

#: The `prevHash` of the first record of a chain.
GENESIS_HASH = "0" * 64


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the one byte form that is hashed and signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_key_hash(line: bytes) -> str:
    """SHA-256 of a stored line's bytes: lets a sink tell an identical copy from a different one."""
    return hashlib.sha256(line).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """Where the chain stands: the last record's sequence number and hash (0 and genesis if none)."""

    seq: int = 0
    hash: str = GENESIS_HASH


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: AwareDatetime already refuses naive times; normalising the zone keeps the hashed bytes stable.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class _Wire(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form, exactly as written to sinks and hashed."""
        return self.model_dump(mode="json", by_alias=True)


class RequesterRecord(_Wire):
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    proven_by: Literal["kubernetes", "oidc"]
    issuer: str | None = None
    subject: str | None = None


class ScopeRecord(_Wire):
    namespace: str
    cluster_role: str | None = None
    rules: tuple[dict[str, Any], ...] = ()


class WindowRecord(_Wire):
    requested_duration_seconds: int | None = None
    activated_at: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None


class ApproverRecord(_Wire):
    approver: str
    at: UtcDatetime
    receipt: str | None = None


class ActivityRecord(_Wire):
    """What the agent did with an ended grant, counted from the API server's audit log."""

    source: str  # where the calls were read ("audit log /var/log/...", "CloudWatch Logs /aws/eks/...")
    read_at: UtcDatetime
    calls: int = 0
    allowed_by_grant: int = 0
    allowed_otherwise: int = 0
    refused: int = 0
    exact: int = 0  # of `calls`, tied by the authorization reason (the rest by identity and window)
    by_verb: dict[str, int] = {}
    by_resource: dict[str, int] = {}
    refused_by_resource: dict[str, int] = {}  # "verb group/resource" -> refused calls
    first_call: UtcDatetime | None = None
    last_call: UtcDatetime | None = None
    error: str | None = None  # the log could not be read: the counts are then not known


class AuditEvent(_Wire):
    """One thing that happened to one AccessRequest, as the operator saw it."""

    type: EventType
    time: UtcDatetime
    request_uid: str
    request_name: str
    request_namespace: str
    policy: str | None
    cluster: str
    requester: RequesterRecord | None
    scope: ScopeRecord | None
    window: WindowRecord | None
    approvers: tuple[ApproverRecord, ...] = ()
    decision: str | None = None  # allowed, denied, ...
    reason: str | None = None
    binding: str | None = None
    activity: ActivityRecord | None = None  # only on activity-summary events
    #: The transition's stable id (`transition_id`), the same whichever process or replica writes
    #: it: a record written again after a crash or a leader change is recognisable as a repeat, and
    #: `audit query` folds repeats across instances. Absent on records from before it existed.
    transition_id: str | None = None


def transition_id(request_uid: str, event_type: EventType, attempt: str = "") -> str:
    """`<request uid>/<transition>[/<attempt>]`. A request passes each transition once (terminal
    phases never change, Approved never goes back to Pending), so uid and type name it; `attempt`
    tells apart the transitions that can recur: each approver's approval, each new end of a
    shortened window."""
    return f"{request_uid}/{event_type.value}" + (f"/{attempt}" if attempt else "")


class AuditRecord(_Wire):
    """An event in its chained form: the unit written to every sink.

    `hash` is the SHA-256 of the canonical JSON of every other field (see `chain.record_hash`),
    and `prevHash` is the hash of the record with `seq - 1`, so an edit anywhere breaks a link.
    """

    kind: Literal["record"] = "record"
    schema_version: int = SCHEMA_VERSION
    seq: int
    prev_hash: str
    hash: str
    instance: str
    event: AuditEvent


CheckpointReason = Literal["start", "heartbeat", "shutdown", "manual"]


class Checkpoint(_Wire):
    """A signed statement "at `time`, the chain's head was record `seq` with hash `headHash`".

    Written at an interval and at shutdown. It is what makes a wholesale rewrite of the chain, or a
    truncation up to `seq`, detectable by someone who holds the public key.
    """

    kind: Literal["checkpoint"] = "checkpoint"
    schema_version: int = SCHEMA_VERSION
    instance: str
    seq: int
    head_hash: str
    time: UtcDatetime
    algorithm: Literal["ed25519"] = "ed25519"
    key_id: str
    #: The heartbeat chain (absent from checkpoints written before it existed). Checkpoints are
    #: written every `intervalSeconds` even when nothing happened, each naming the previous one
    #: (`prevCheckpointHash`, `prevCheckpointTime`), so a verifier who knows the time can tell a
    #: trail cut short from a quiet one, as CloudTrail does with its hourly digest files.
    interval_seconds: float | None = None
    prev_checkpoint_hash: str | None = None
    prev_checkpoint_time: UtcDatetime | None = None
    #: Why it was written: "start" (the operator resumed the chain), "heartbeat", "shutdown" (the
    #: operator stopped on purpose: nothing is expected after it until the next "start").
    reason: CheckpointReason | None = None
    signature: str  # base64 of the signature over the canonical JSON of every other field


# AccessRequest -> AuditEvent: what a reviewer needs to answer who, what, when, why, approved by whom.
def audit_event(
    *,
    request: AccessRequest,
    event_type: EventType,
    at: datetime,
    cluster: str,
    decision: str | None = None,
    reason: str | None = None,
    activated_at: datetime | None = None,
    expires_at: datetime | None = None,
    ended_at: datetime | None = None,
    approvals: tuple[ApprovalEntry, ...] = (),
    binding: str | None = None,
) -> AuditEvent:
    spec = request.spec
    stamp = spec.requester
    requester = (
        RequesterRecord(
            username=stamp.username,
            uid=stamp.uid,
            groups=stamp.groups,
            proven_by=stamp.proven_by.value,
            issuer=stamp.issuer,
            subject=stamp.subject,
        )
        if stamp is not None
        else None
    )
    duration = spec.duration_delta
    status = request.status
    uid = request.metadata.uid or ""
    attempt = ""
    if event_type is EventType.APPROVAL_RECORDED:
        attempt = ",".join(sorted(entry.approver for entry in approvals))
    elif event_type in (EventType.SHORTENED, EventType.EXTENDED) and expires_at is not None:
        attempt = format_time(expires_at)
    return AuditEvent(
        transition_id=transition_id(uid, event_type, attempt) if uid else None,
        type=event_type,
        time=at,
        request_uid=uid,
        request_name=request.metadata.name,
        request_namespace=request.metadata.namespace or "",
        policy=spec.policy,
        cluster=cluster,
        requester=requester,
        scope=ScopeRecord(
            namespace=spec.namespace,
            cluster_role=spec.cluster_role,
            rules=tuple(rule.to_k8s() for rule in spec.rules or ()),
        ),
        window=WindowRecord(
            requested_duration_seconds=int(duration.total_seconds()) if duration is not None else None,
            activated_at=activated_at or status.activated_at,
            expires_at=expires_at or status.expires_at,
            ended_at=ended_at,
        ),
        approvers=tuple(
            ApproverRecord(approver=entry.approver, at=entry.at, receipt=entry.receipt or None)
            for entry in (approvals or status.approvals)
        ),
        decision=decision,
        reason=reason,
        binding=binding or (status.grant.role_binding if status.grant else None),
    )
