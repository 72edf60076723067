"""architecture.md, "Replicas: election, fencing and the replay set": a leader paused past its Lease (SIGSTOP,
a frozen VM) while a grant is in flight, the
standby taking over, then the old leader resuming. Two replicas on one cluster, each with its own
audit trail (as each pod has its own), deterministic: the pause is a point in the old leader's pass.

The old leader writes no record once it has lost the Lease (fencing), and a record it wrote while it
held the Lease and the new leader writes again carries the same `transitionId`, which `audit query`
folds: every grant shows one `granted`. Before the fix the resumed leader wrote its record anyway (two
`granted` records for one grant) and nothing told a repeat from a second grant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from jitgrant.audit.chain import link
from jitgrant.audit.query import grant_rows, unique_transitions
from jitgrant.audit.records import AuditEvent, AuditRecord, ChainHead, EventType, audit_event
from jitgrant.clusters.errors import NotLeader
from jitgrant.clusters.port import ClusterObject
from jitgrant.metrics import Metrics
from jitgrant.models import AccessRequest
from jitgrant.reactor.fencing import FencedAudit, FencedCluster
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.driver import Reconciler
from jitgrant.settings import OperatorSettings
from jitgrant_testing.fakeport import FakeAudit, FakePort

from .conftest import KEY, NS, World

Pause = Callable[[], Awaitable[None]]


class Election:
    """The Lease as a replica sees it: held or not (the election loop itself is tested elsewhere)."""

    def __init__(self, identity: str, *, held: bool) -> None:
        self.identity = identity
        self.held = held

    def holds(self) -> bool:
        return self.held

    async def confirm(self) -> bool:
        return self.held


class PausingAudit(FakeAudit):
    """A sink that stops its writer right after it stored a record of `after` (the process frozen
    between its audit record and its status write)."""

    def __init__(self) -> None:
        super().__init__()
        self.after: EventType | None = None
        self.pause: Pause | None = None

    async def record(self, event: AuditEvent) -> object:
        stored = await super().record(event)
        if event.type is self.after and self.pause is not None:
            pause, self.pause = self.pause, None
            await pause()
        return stored


class PausingPort(FakePort):
    """The cluster as one replica reaches it, stopping that replica right after it created a kind."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after_kind: str | None = None
        self.pause: Pause | None = None

    async def create_object(self, body: Mapping[str, Any]) -> ClusterObject:
        made = await super().create_object(body)
        if body.get("kind") == self.after_kind and self.pause is not None:
            pause, self.pause = self.pause, None
            await pause()
        return made


class Replica:
    def __init__(self, world: World, identity: str, *, leader: bool) -> None:
        self.election = Election(identity, held=leader)
        self.port = PausingPort(world.cluster)
        self.audit = PausingAudit()
        election = cast(Any, self.election)
        self.runtime = Runtime(
            settings=OperatorSettings(receipt_key=KEY, audit_stdout=False, instance=identity),
            own=FencedCluster(self.port, election),
            audit=FencedAudit(self.audit, election),
            metrics=Metrics(CollectorRegistry()),
            clock=world.clock,
        )

    async def reconcile(self, name: str) -> datetime | None:
        return (await Reconciler(self.runtime).reconcile(NS, name)).requeue_at


def _trail(replica: Replica) -> list[AuditRecord]:
    """The replica's records as its own chain holds them."""
    head, out = ChainHead(), []
    for event in replica.audit.events:
        record = link(event, head=head, instance=replica.election.identity)
        head = ChainHead(seq=record.seq, hash=record.hash)
        out.append(record)
    return out


def _takeover(old: Replica, new: Replica, name: str) -> Pause:
    async def pause() -> None:
        old.election.held = False  # frozen past its Lease ...
        new.election.held = True  # ... the standby took it over and finishes the grant
        await new.reconcile(name)

    return pause


async def test_a_leader_resumed_after_losing_the_lease_records_nothing(world: World) -> None:
    """Paused after the binding existed, before its `granted` record: on resuming it writes none."""
    a, b = Replica(world, "replica-a", leader=True), Replica(world, "replica-b", leader=False)
    uid = world.file("fix")
    a.port.after_kind, a.port.pause = "RoleBinding", _takeover(a, b, "fix")
    with pytest.raises(NotLeader, match="replica-a does not hold the Lease; refused to record granted"):
        await a.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert len(world.objects("RoleBinding")) == 1
    granted = [e for e in a.audit.events + b.audit.events if e.type is EventType.GRANTED]
    assert [e.request_uid for e in granted] == [uid], "the resumed leader recorded the grant again"
    assert a.audit.types(uid) == [EventType.REQUESTED, EventType.APPROVED, EventType.ISSUING]
    assert b.audit.types(uid) == [EventType.GRANTED]


async def test_a_record_written_before_the_pause_and_again_by_the_new_leader_is_one_transition(
    world: World,
) -> None:
    """Paused after its `granted` record, before the status write: the new leader cannot know the
    record exists and writes it again. Both carry one transitionId; query counts the grant once."""
    a, b = Replica(world, "replica-a", leader=True), Replica(world, "replica-b", leader=False)
    uid = world.file("fix")
    a.audit.after, a.audit.pause = EventType.GRANTED, _takeover(a, b, "fix")
    with pytest.raises(NotLeader, match="refused to write the status"):
        await a.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    records = _trail(a) + _trail(b)
    granted = [r.event for r in records if r.event.type is EventType.GRANTED]
    assert len(granted) == 2  # one each: the repeat is written, and recognisable
    assert granted[0].transition_id == granted[1].transition_id == f"{uid}/granted"
    kept, folded = unique_transitions(records)
    assert folded == 1
    assert [r.event.type for r in kept].count(EventType.GRANTED) == 1
    [row] = grant_rows(records)
    assert row.outcome == "active" and row.activated_at is not None
    # Expiry by the new leader: the old one stays fenced.
    world.clock.advance(15 * 60)
    await b.reconcile("fix")
    with pytest.raises(NotLeader):
        await Replica(world, "replica-a", leader=False).runtime.audit.record(granted[0])
    assert world.status("fix")["phase"] == "Expired"


def test_transitions_of_different_requests_and_approvers_are_not_folded() -> None:
    """The id names the transition, not only its type: nothing distinct is ever folded away."""
    base: dict[str, Any] = {
        "time": datetime(2026, 1, 1, tzinfo=UTC),
        "request_name": "fix",
        "request_namespace": NS,
        "policy": "prod",
        "cluster": "in-cluster",
        "requester": None,
        "scope": None,
        "window": None,
    }
    events = [
        AuditEvent(type=EventType.GRANTED, request_uid="u1", transition_id="u1/granted", **base),
        AuditEvent(type=EventType.GRANTED, request_uid="u2", transition_id="u2/granted", **base),
        AuditEvent(
            type=EventType.APPROVAL_RECORDED,
            request_uid="u1",
            transition_id="u1/approval-recorded/alice",
            **base,
        ),
        AuditEvent(
            type=EventType.APPROVAL_RECORDED,
            request_uid="u1",
            transition_id="u1/approval-recorded/bob",
            **base,
        ),
        AuditEvent(type=EventType.REVOKED, request_uid="u1", **base),  # written before ids existed
        AuditEvent(type=EventType.REVOKED, request_uid="u1", **base),
    ]
    records, head = [], ChainHead()
    for event in events:
        record = link(event, head=head, instance="one")
        head = ChainHead(seq=record.seq, hash=record.hash)
        records.append(record)
    assert unique_transitions(records) == (records, 0)


async def test_a_standby_records_the_admission_refusals_it_made_but_no_transition(world: World) -> None:
    """Every replica answers admission: a guardrail refusal a standby made is its own record to write
    (not a transition of a request), while any transition it tries is refused by the fence."""
    sink = FakeAudit()
    standby = FencedAudit(sink, cast(Any, Election("standby", held=False)))
    world.file("looping")
    request = AccessRequest.from_object(world.cluster.requests[(NS, "looping")])

    def event(event_type: EventType) -> AuditEvent:
        return audit_event(
            request=request,
            event_type=event_type,
            at=datetime(2026, 12, 7, tzinfo=UTC),
            cluster="in-cluster",
            decision="refused",
            reason="AlreadyRequested: 3 refusal(s) of this requester since the last record",
        )

    await standby.record(event(EventType.REFUSED))
    with pytest.raises(NotLeader):
        await standby.record(event(EventType.GRANTED))
    assert [e.type for e in sink.events] == [EventType.REFUSED]
