"""A review is a query: fold a trail's records into one row per request, then filter.

Pure: works on parsed `AuditRecord`s, whichever sink they were read from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, cast

from jitgrant.audit.records import ActivityRecord, AuditRecord, EventType
from jitgrant.models import Phase, cluster_name_of
from jitgrant.models.text import for_terminal

#: Events after which a request is settled; "how it ended" is the last of these seen.
_ENDINGS = {
    EventType.EXPIRED: "expired",
    EventType.REVOKED: "revoked",
    EventType.DENIED: "denied",
    EventType.TIMED_OUT: "timed-out",
    EventType.FAILED: "failed",
    EventType.CLEANED_UP: "cleaned-up",
}
_PROGRESS = {
    EventType.REQUESTED: "pending",
    EventType.PENDING: "pending",
    EventType.APPROVAL_RECORDED: "pending",
    EventType.APPROVED: "approved",
    EventType.ISSUING: "approved",
    EventType.GRANTED: "active",
}
# An extension (spec.extends) whose time was added to its grant: its `extended` record's decision.
_APPLIED = Phase.APPLIED.value
OUTCOMES = ("active", "approved", "pending", *_ENDINGS.values(), "applied")


@dataclass(frozen=True)
class GrantRow:
    """One request as a reviewer wants to see it: who, what, when, approved by whom, how it ended."""

    request_uid: str
    request: str  # namespace/name of the AccessRequest
    cluster: str
    policy: str | None
    requester: str | None
    proven_by: str | None
    namespace: str | None
    scope: str | None
    requested_at: datetime
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    approvers: tuple[str, ...]
    receipts: tuple[str, ...]
    outcome: str
    reason: str | None
    first_seq: int
    last_seq: int
    activity: ActivityRecord | None = None  # the newest activity-summary of the grant, if any

    def to_json(self, *, with_activity: bool = False) -> dict[str, Any]:
        def time(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "requestUid": self.request_uid,
            "request": self.request,
            "cluster": self.cluster,
            "policy": self.policy,
            "requester": self.requester,
            "provenBy": self.proven_by,
            "namespace": self.namespace,
            "scope": self.scope,
            "requestedAt": time(self.requested_at),
            "activatedAt": time(self.activated_at),
            "expiresAt": time(self.expires_at),
            "endedAt": time(self.ended_at),
            "approvers": list(self.approvers),
            "receipts": list(self.receipts),
            "outcome": self.outcome,
            "reason": self.reason,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
        } | ({"activity": self.activity.to_wire() if self.activity else None} if with_activity else {})

    def activity_line(self) -> str:
        """What the agent did, in one line under the grant's row."""
        activity = self.activity
        if activity is None:
            return "activity: no summary in the trail"
        if activity.error is not None:
            return f"activity: not known ({activity.error})"
        refused = ", ".join(f"{what} x{count}" for what, count in activity.refused_by_resource.items())
        span = ""
        if activity.first_call and activity.last_call:
            span = f", {activity.first_call:%H:%M:%S}..{activity.last_call:%H:%M:%S}"
        verbs = ", ".join(f"{verb} {count}" for verb, count in activity.by_verb.items())
        return (
            f"activity: {activity.calls} calls ({verbs or 'none'}{span}): "
            f"{activity.allowed_by_grant} by this grant, {activity.allowed_otherwise} by something else, "
            f"{activity.refused} refused" + (f" ({refused})" if refused else "") + f"; from {activity.source}"
        )


@dataclass(frozen=True)
class GrantFilter:
    """Every field narrows; names accept shell wildcards (`system:serviceaccount:agents:*`)."""

    cluster: str | None = None
    namespace: str | None = None
    requester: str | None = None
    approver: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcomes: frozenset[str] = field(default_factory=frozenset)

    def matches(self, row: GrantRow) -> bool:
        def like(pattern: str | None, value: str | None) -> bool:
            return pattern is None or (value is not None and fnmatchcase(value, pattern))

        # An EKS cluster is recorded by ARN: `--cluster prod-eu` still finds it (and its namesakes).
        clusters = (row.cluster, cluster_name_of(row.cluster))
        if not (any(like(self.cluster, c) for c in clusters) and like(self.namespace, row.namespace)):
            return False
        if not like(self.requester, row.requester):
            return False
        if self.approver is not None and not any(like(self.approver, name) for name in row.approvers):
            return False
        if self.outcomes and row.outcome not in self.outcomes:
            return False
        # The request's life [requested, ended] overlaps the range; an open one runs until now.
        if self.until is not None and row.requested_at > self.until:
            return False
        return self.since is None or row.ended_at is None or row.ended_at >= self.since


def _scope(record: AuditRecord) -> str | None:
    scope = record.event.scope
    if scope is None:
        return None
    if scope.cluster_role:
        return f"clusterrole/{scope.cluster_role}"
    verbs = sorted({verb for rule in scope.rules for verb in rule.get("verbs", ())})
    resources = sorted({resource for rule in scope.rules for resource in rule.get("resources", ())})
    names = sorted({name for rule in scope.rules for name in rule.get("resourceNames", ())})
    text = f"{','.join(verbs)} {','.join(resources)}"
    return text + (f"/{','.join(names)}" if names else "")


def unique_transitions(records: Iterable[AuditRecord]) -> tuple[list[AuditRecord], int]:
    """The records in order with each transition once, and how many repeats were folded.

    Records of one instance go by `seq`; several instances' trails (one per replica) are merged by
    event time. A record repeating a `transitionId` already seen (written again after a crash, or by
    the replica that took the Lease over) is the same transition: the first is kept. Records without
    one (written before it existed) are all kept."""
    items = list(records)
    several = len({record.instance for record in items}) > 1
    ordered = sorted(
        items, key=(lambda r: (r.event.time, r.instance, r.seq)) if several else (lambda r: r.seq)
    )
    seen: set[str] = set()
    kept: list[AuditRecord] = []
    for record in ordered:
        key = record.event.transition_id
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        kept.append(record)
    return kept, len(ordered) - len(kept)


def grant_rows(records: Iterable[AuditRecord]) -> list[GrantRow]:
    """One row per request, in order of first appearance; later events fill in and override. A
    transition recorded more than once (see `unique_transitions`) counts once."""
    grouped: dict[str, list[AuditRecord]] = {}
    for record in unique_transitions(records)[0]:
        grouped.setdefault(record.event.request_uid, []).append(record)
    return [_fold(uid, group) for uid, group in grouped.items()]


def _fold(uid: str, records: list[AuditRecord]) -> GrantRow:
    first, last = records[0], records[-1]
    requester = next((r.event.requester for r in reversed(records) if r.event.requester), None)
    scope_from = next((r for r in reversed(records) if r.event.scope is not None), first)
    activated = expires = ended = None
    outcome, reason = "pending", None
    activity = None
    approvers: dict[str, None] = {}
    receipts: dict[str, None] = {}
    for record in records:
        event = record.event
        if event.type is EventType.ACTIVITY_SUMMARY:
            activity = event.activity or activity
            continue  # read after the grant ended: it changes neither its window nor its outcome
        window = event.window
        if window is not None:
            activated = window.activated_at or activated
            expires = window.expires_at or expires
            ended = window.ended_at or ended
        for approval in event.approvers:
            approvers[approval.approver] = None
            if approval.receipt:
                receipts[approval.receipt] = None
        if outcome in _ENDINGS.values() and event.type not in _ENDINGS:
            continue  # a settled request stays settled (terminal states never become active again)
        if event.type is EventType.EXTENDED and event.decision == _APPLIED:
            outcome, reason = "applied", event.reason or reason  # the extension request's own ending
            ended = ended or event.time
        elif event.type in _ENDINGS:
            outcome, reason = _ENDINGS[event.type], event.reason or reason
            ended = ended or event.time
        elif event.type in _PROGRESS:
            outcome = _PROGRESS[event.type]
            if event.type is EventType.GRANTED:
                activated = activated or event.time
    return GrantRow(
        request_uid=uid,
        request=f"{first.event.request_namespace}/{first.event.request_name}",
        cluster=first.event.cluster,
        policy=next((r.event.policy for r in reversed(records) if r.event.policy), None),
        requester=requester.username if requester else None,
        proven_by=requester.proven_by if requester else None,
        namespace=scope_from.event.scope.namespace if scope_from.event.scope else None,
        scope=_scope(scope_from),
        requested_at=first.event.time,
        activated_at=activated,
        expires_at=expires,
        ended_at=ended if outcome in _ENDINGS.values() or outcome == "applied" else None,
        approvers=tuple(approvers),
        receipts=tuple(receipts),
        outcome=outcome,
        reason=reason,
        first_seq=first.seq,
        last_seq=last.seq,
        activity=activity,
    )


def select(rows: Iterable[GrantRow], grant_filter: GrantFilter) -> list[GrantRow]:
    return [row for row in rows if grant_filter.matches(row)]


Row = tuple[str, str, str, str, str, str, str, str]


def format_table(rows: list[GrantRow], *, with_activity: bool = False) -> str:
    """A plain text table, one grant per row (and its activity under it), for a terminal or a ticket."""

    def time(value: datetime | None) -> str:
        return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")

    header: Row = ("REQUEST", "CLUSTER", "REQUESTER", "SCOPE", "ACTIVATED", "ENDED", "APPROVERS", "OUTCOME")
    table: list[Row] = [header] + [
        (
            row.request,
            row.cluster,
            f"{row.requester or '-'} ({row.proven_by or '?'})",
            f"{row.namespace or '-'}: {row.scope or '-'}",
            time(row.activated_at),
            time(row.ended_at),
            ",".join(row.approvers) or "-",
            row.outcome + (f": {row.reason}" if row.reason else ""),
        )
        for row in rows
    ]
    # Requesters, scopes and reasons (revoke and release reasons) are others' text: shown, never acted on.
    table = [cast(Row, tuple(for_terminal(cell) for cell in line)) for line in table]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    if with_activity:
        pairs = zip(lines[1:], rows, strict=True)
        lines[1:] = [f"{line}\n    {for_terminal(row.activity_line())}" for line, row in pairs]
    return "\n".join(lines)
