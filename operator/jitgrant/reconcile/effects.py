"""The effects of a pass, in two places: its status writer (`Pass`, which also holds the pass's state,
created per call) and the one transition recorder (`record`: audit record, status write, metrics,
Event, log line and notice for one transition, all from its consequence in `lifecycle.CONSEQUENCES`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitgrant.approvals.counting import ApprovalTally
from jitgrant.audit.records import AuditEvent, audit_event
from jitgrant.clusters.port import StoredRequest
from jitgrant.lifecycle import Step, granted_condition
from jitgrant.metrics import Metrics
from jitgrant.models import AccessRequest, AccessRequestStatus, ApprovalEntry, GrantPolicySpec, Phase
from jitgrant.models.text import log_field
from jitgrant.models.vocabulary import EventType, Reason
from jitgrant.reconcile.ports import Engine

log = logging.getLogger("jitgrant.reconcile")

_QUIET_REASONS = frozenset({Reason.ALREADY_REQUESTED, Reason.LIMIT_REACHED})


def status_patch(**fields: Any) -> dict[str, Any]:
    """A status patch built from the model, so only fields the model knows are ever written."""
    return AccessRequestStatus(**fields).model_dump(mode="json", by_alias=True, exclude_unset=True)


@dataclass
class Pass:
    """One pass's state, created per call (passes run at once: the sweep runs up to 8, and state
    shared between them let one pass take up another's request or its held-back approval), and the
    one place that writes a request's status."""

    engine: Engine
    # The request as this pass's last status write left it: the next step is decided from the
    # write's answer instead of a GET (it is as fresh as a GET made then). None: read it.
    latest: StoredRequest | None = None
    # Each policy is read once per pass, not once per step of it.
    policies: dict[str, tuple[GrantPolicySpec | None, str | None]] = field(default_factory=dict)
    # An approval's status fields, held back to ride on the pass's next status write (the
    # grant plan's, when it activates at once) instead of costing a write of their own. Its
    # audit record is written already; a pass that ends with it still held writes it then,
    # one that fails loses only the write, and the next pass decides the approval again.
    deferred: tuple[StoredRequest, AccessRequest, dict[str, Any]] | None = None
    # The held-back write's Event (the approval's): it goes out as part of the pass's next Event
    # (an auto-approved grant: one "Granted" Event saying it was approved, not two creates), or
    # alone when the pass writes the held fields at its end. Dropped with them.
    held_note: tuple[Mapping[str, Any], Note] | None = None
    # When a step had to wait for its target cluster: the next real attempt (shown in status),
    # which the pass returns so the scheduler comes back then, not on a backoff of its own.
    retry_at: datetime | None = None

    def now(self) -> datetime:
        # Second precision, as Kubernetes writes times: status times compare as strings too.
        return self.engine.clock().replace(microsecond=0)

    # Records written ahead of a status write, by their memo (`Record`).
    def first_time(self, uid: str, memo: str) -> bool:
        return memo not in self.engine.written_ahead.get(uid, ())

    def wrote_ahead(self, uid: str, memo: str) -> None:
        self.engine.written_ahead.setdefault(uid, set()).add(memo)

    async def write_status(
        self, stored: StoredRequest, request: AccessRequest, status: dict[str, Any]
    ) -> StoredRequest:
        """Merge-patch status with the resourceVersion we read (a stale writer loses), keeping the
        `Granted` condition in step with the phase."""
        if "phase" in status:
            condition = granted_condition(
                phase=Phase(status["phase"]),
                reason=status.get("reason", ""),
                message=status.get("message", "")[:1000],
                previous=request.status.conditions,
                now=self.engine.clock(),
            )
            status = {**status, "conditions": [condition.model_dump(mode="json", by_alias=True)]}
        if self.deferred is not None:
            status = {**self.deferred[2], **status}
        written = await self.engine.own.patch_request_status(
            stored.namespace, stored.name, status, resource_version=stored.resource_version
        )
        self.deferred = None  # only once written: a failed write's successor carries it instead
        self.latest = written
        self.engine.wrote(written)
        return written

    def defer(self, stored: StoredRequest, request: AccessRequest, status: dict[str, Any]) -> None:
        """Hold back a status write for the pass's next one; the pass goes on as if it was made."""
        phase = Phase(status["phase"])
        condition = granted_condition(
            phase=phase,
            reason=status.get("reason", ""),
            message=status.get("message", "")[:1000],
            previous=request.status.conditions,
            now=self.engine.clock(),
        )
        status = {**status, "conditions": [condition.model_dump(mode="json", by_alias=True)]}
        self.deferred = (stored, request, status)
        body = copy.deepcopy(dict(stored.body))
        body["status"] = {**(body.get("status") or {}), **status}
        self.latest = StoredRequest(body)

    async def defer_async(
        self, stored: StoredRequest, request: AccessRequest, status: dict[str, Any]
    ) -> None:
        self.defer(stored, request, status)


def post_event(p: Pass, body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None:
    """A Kubernetes Event on the request, so `kubectl describe` shows the story too."""
    p.engine.events.post(body, warning=warning, reason=reason, message=message[:1000])


def approval_entries(result: ApprovalTally | None) -> tuple[ApprovalEntry, ...]:
    if result is None:
        return ()
    return tuple(
        ApprovalEntry(
            approver=entry.approver,
            groups=entry.groups,
            at=entry.at,
            reason=entry.reason,
            receipt=entry.receipt,
        )
        for entry in result.counted
    )


@dataclass(frozen=True)
class Record:
    """One audit record of a transition. With a `memo` it is written ahead of the status write, once
    per process under that key (a pass retried after a failed write does not write it again; a crash
    in between repeats it once on the next run, and never loses it); without, after the write."""

    event: AuditEvent
    memo: str | None = None
    # The requests metric's outcome, counted when the record is written (e.g. "requested").
    outcome: str | None = None


@dataclass(frozen=True)
class Note:
    """What a transition tells people: the Event, the log line (after "namespace/name "), and the
    notice when `notice` names the phase to announce."""

    reason: str
    message: str
    log: str
    warning: bool = False
    level: int = logging.INFO
    notice: Phase | None = None
    expires_at: datetime | None = None


async def record(
    p: Pass,
    stored: StoredRequest,
    request: AccessRequest,
    *,
    records: Sequence[Record] = (),
    write: Callable[[], Awaitable[object]] | None = None,
    outcome: str | None = None,
    measure: Callable[[Metrics], None] | None = None,
    note: Note | None = None,
) -> None:
    """The one transition recorder: the records written ahead, then the status `write`, then the
    records that follow it, the metrics, the Event, the log line and the notice, in that order."""
    engine = p.engine
    policy = request.spec.policy
    for entry in records:
        if entry.memo is not None and p.first_time(stored.uid, entry.memo):
            await engine.audit.record(entry.event)
            p.wrote_ahead(stored.uid, entry.memo)
            if entry.outcome is not None:
                engine.metrics.request_outcome(policy=policy, outcome=entry.outcome)
    if write is not None:
        await write()
    for entry in records:
        if entry.memo is None:
            await engine.audit.record(entry.event)
    if outcome is not None:
        engine.metrics.request_outcome(policy=policy, outcome=outcome)
    if measure is not None:
        measure(engine.metrics)
    if note is None:
        return
    if write is not None and p.deferred is not None:
        p.held_note = (stored.body, note)  # the write was held back: so is its Event
    else:
        message = note.message
        if p.held_note is not None:
            held = p.held_note[1]
            message = f"{message} ({held.reason}: {held.message})"
            p.held_note = None
        post_event(p, stored.body, warning=note.warning, reason=note.reason, message=message)
    log.log(note.level, "%s/%s %s", stored.namespace, stored.name, note.log)
    if note.notice is not None and engine.notifier is not None:
        # queued, never awaited: a receiver cannot slow a grant; the policy's spec.notifications
        # (read once per pass) chooses notifiers and events over the operator's defaults
        spec = p.policies.get(policy, (None, None))[0]
        engine.notifier.transition(
            request,
            phase=note.notice,
            reason=note.reason,
            message=note.message,
            expires_at=note.expires_at,
            notifications=spec.notifications if spec is not None else None,
        )


async def record_transition(
    p: Pass,
    step: Step,
    *,
    stored: StoredRequest,
    request: AccessRequest,
    cluster: str,
    now: datetime,
    approvals: tuple[ApprovalEntry, ...] = (),
    write: Callable[[], Awaitable[object]] | None = None,
    before: Sequence[Record] = (),
    measure: Callable[[Metrics], None] | None = None,
    **audit: Any,
) -> None:
    """A lifecycle step's transition, all from its consequence (`lifecycle.CONSEQUENCES`): its audit
    record written ahead (after any of `before`), then the status `write`, the outcome metric, the
    Event, the log line and the notice.

    The record goes first (write-ahead): an operator killed between the two repeats the record on its
    next run instead of losing it. A 409 on the write makes the pass decide again, which does not
    write the same record twice.
    """
    consequence = step.consequence
    phase = consequence.phase
    event_type = EventType(consequence.audit_event)
    event = audit_event(
        request=request,
        event_type=event_type,
        at=now,
        cluster=cluster,
        decision="granted" if phase is Phase.ACTIVE else phase.value,
        reason=step.message or step.reason,
        approvals=approvals,
        ended_at=now if phase.terminal else None,
        **audit,
    )
    await record(
        p,
        stored,
        request,
        records=(*before, Record(event, memo=event_type)),
        write=write,
        outcome=consequence.outcome,
        measure=measure,
        note=Note(
            reason=step.reason,
            message=step.message,
            warning=consequence.warning,
            # The message may carry a justification or a release reason: a quoted field, never a
            # new line.
            log=f"-> {phase.value}: message={log_field(step.message)}",
            # A guardrail's denial (a duplicate or a request past a limit that raced past admission)
            # is the agent's to read in status, not news for approvers: a looping agent never floods
            # their channel.
            notice=None if step.reason in _QUIET_REASONS else phase,
            expires_at=audit.get("expires_at"),
        ),
    )
