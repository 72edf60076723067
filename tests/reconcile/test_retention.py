"""Finished requests are removed after `finished_retention`: audited first, then deleted (finalizer
released), never before their time, never without a record, never by a replica without the Lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from jitgrant.audit.records import EventType as E
from jitgrant.clusters.errors import NotLeader
from jitgrant.reactor.fencing import FencedCluster
from jitgrant.reactor.scheduler import Scheduler
from jitgrant.reconcile.driver import Reconciler

from .conftest import NS, World

RETENTION = timedelta(hours=1)


@pytest.fixture
def world() -> World:
    world = World()
    world.runtime.settings = world.runtime.settings.model_copy(update={"finished_retention": RETENTION})
    return world


def _deleted(world: World, name: str = "fix") -> bool:
    """Deleted: gone, or deleting while the finalizer's handler releases its finalizer."""
    body = world.cluster.requests.get((NS, name))
    return body is None or bool(body["metadata"].get("deletionTimestamp"))


async def _denied(world: World, name: str = "fix") -> str:
    uid = world.file(name, namespace="orders")  # the policy does not offer orders: Denied
    await world.reconcile(name)
    assert world.status(name)["phase"] == "Denied"
    return uid


async def test_a_denied_request_stays_for_the_retention_then_is_audited_and_deleted(world: World) -> None:
    uid = await _denied(world)
    ended = world.clock()
    # The reconciler answers when to look again: exactly when the retention is over.
    assert await world.reconcile("fix") == ended + RETENTION
    world.clock.advance(RETENTION.total_seconds() - 1)
    assert await world.reconcile("fix") == ended + RETENTION
    assert not _deleted(world)

    world.clock.advance(1)
    assert await world.reconcile("fix") is None
    assert _deleted(world)
    assert world.audit.types(uid)[-2:] == [E.DENIED, E.REMOVED]
    record = world.audit.events[-1]
    assert record.decision == "removed" and record.reason is not None
    assert "Denied since" in record.reason and "retention of 1h" in record.reason
    assert record.window is not None and record.window.ended_at == ended
    assert world.port.calls[-1] == "delete_request"
    # The finalizer's work then finds nothing to revoke and records nothing more.
    await Reconciler(world.runtime).revoke_for_deletion(world.cluster.requests[(NS, "fix")])
    assert world.audit.types(uid)[-1] is E.REMOVED


async def test_an_expired_request_is_removed_after_the_retention(world: World) -> None:
    uid = world.file("fix", duration="5m")
    await world.reconcile("fix")
    world.clock.advance(300)
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Expired"
    world.clock.advance(RETENTION.total_seconds())
    await world.reconcile("fix")
    assert _deleted(world)
    assert world.audit.types(uid)[-2:] == [E.EXPIRED, E.REMOVED]


async def test_an_active_grant_is_never_removed_however_old(world: World) -> None:
    world.file("fix", duration="15m")
    await world.reconcile("fix")
    world.clock.advance(RETENTION.total_seconds() * 10)
    world.cluster.requests[(NS, "fix")]["status"]["endedAt"] = "2020-01-01T00:00:00Z"  # planted
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Expired"  # it expires; removal comes a retention later
    assert not _deleted(world)


async def test_without_an_audit_record_nothing_is_deleted(world: World) -> None:
    uid = await _denied(world)
    world.clock.advance(RETENTION.total_seconds())
    world.audit.unavailable = True
    assert await world.reconcile("fix") is None  # the scheduler retries with its backoff
    assert not _deleted(world)
    assert E.REMOVED not in world.audit.types(uid)
    assert "delete_request" not in world.port.calls

    world.audit.unavailable = False
    await world.reconcile("fix")
    assert _deleted(world)
    assert world.audit.types(uid).count(E.REMOVED) == 1


async def test_a_retention_of_zero_keeps_finished_requests_forever(world: World) -> None:
    world.runtime.settings = world.runtime.settings.model_copy(update={"finished_retention": timedelta(0)})
    await _denied(world)
    world.clock.advance(timedelta(days=3650).total_seconds())
    assert await world.reconcile("fix") is None
    assert not _deleted(world)
    assert "delete_request" not in world.port.calls


async def test_a_finished_request_without_endedAt_gets_one_and_waits_from_then(world: World) -> None:
    await _denied(world)
    del world.cluster.requests[(NS, "fix")]["status"]["endedAt"]  # as an older operator left it
    world.clock.advance(timedelta(days=30).total_seconds())
    stamped_at = world.clock()
    assert await world.reconcile("fix") == stamped_at + RETENTION
    assert world.status("fix")["endedAt"] == stamped_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not _deleted(world)


async def test_a_request_recreated_under_the_same_name_is_not_deleted(world: World) -> None:
    await _denied(world)
    world.clock.advance(RETENTION.total_seconds())

    def recreate() -> None:  # deleted and filed again between our read and our delete
        world.cluster.requests.pop((NS, "fix"))
        world.file("fix")

    world.port.after("get_request", recreate)
    await world.reconcile("fix")
    assert world.cluster.requests[(NS, "fix")].get("status") is None  # the new one, untouched


async def test_without_finalizers_it_is_gone_at_once(world: World) -> None:
    await _denied(world)
    world.cluster.requests[(NS, "fix")]["metadata"]["finalizers"] = []
    world.clock.advance(RETENTION.total_seconds())
    await world.reconcile("fix")
    assert (NS, "fix") not in world.cluster.requests


async def test_a_replica_without_the_lease_cannot_delete(world: World) -> None:
    await _denied(world)
    world.clock.advance(RETENTION.total_seconds())

    class Lost:
        identity = "replica-b"

        def holds(self) -> bool:
            return False

    world.runtime.own = FencedCluster(world.port, cast(Any, Lost()))
    with pytest.raises(NotLeader, match="replica-b does not hold the Lease; refused to delete"):
        await world.reconcile("fix")
    assert not _deleted(world)


def test_the_scheduler_queues_a_finished_request_at_the_end_of_its_retention(world: World) -> None:
    scheduler = Scheduler(world.runtime)
    status = {"phase": "Denied", "endedAt": "2026-01-01T12:00:00Z"}
    assert scheduler.observe(NS, "fix", status, {}) == world.clock() + RETENTION
    assert scheduler.next_due() == world.clock() + RETENTION
    world.runtime.settings = world.runtime.settings.model_copy(update={"finished_retention": timedelta(0)})
    assert scheduler.observe(NS, "fix", status, {}) is None
    assert len(scheduler) == 0
