"""At expiry the scheduler deletes the grant's RoleBinding the moment it is due, ahead of the
reconcile pass: with many grants ending in the same second, their passes queue for a slot, and
access must not wait in that queue (100 in the same second: p99 1.9 s before, see docs)."""

from __future__ import annotations

import asyncio

from jitgrant.audit.records import EventType as E
from jitgrant.reactor.scheduler import Scheduler

from .conftest import NS, World


async def test_an_expired_grant_loses_its_binding_before_its_pass_runs(world: World) -> None:
    uid = world.file("fix", duration="5m")
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active" and len(world.objects("RoleBinding")) == 1
    scheduler = Scheduler(world.runtime, concurrency=1)
    scheduler.observe(NS, "fix", world.status("fix"), {})
    world.clock.advance(299)
    assert scheduler.take_due(world.clock()) == []  # not yet: nothing is cut early
    await asyncio.sleep(0)
    assert len(world.objects("RoleBinding")) == 1
    world.clock.advance(2)
    assert scheduler.take_due(world.clock()) == [(NS, "fix")]
    await scheduler.settle()
    # Gone while status still says Active: the pass has not run yet.
    assert world.objects("RoleBinding") == [] and world.status("fix")["phase"] == "Active"
    await world.reconcile("fix")  # the pass finds it gone, and records the expiry once
    assert world.status("fix")["phase"] == "Expired"
    assert world.audit_types(uid).count(E.EXPIRED) == 1


async def test_a_binding_that_is_no_longer_the_recorded_one_is_left_alone(world: World) -> None:
    world.file("fix", duration="5m")
    await world.reconcile("fix")
    status = world.status("fix")
    [ref] = status["grant"]["objects"]
    stale = {**status, "grant": {**status["grant"], "objects": [{**ref, "uid": "another-uid"}]}}
    scheduler = Scheduler(world.runtime, concurrency=1)
    scheduler.observe(NS, "fix", stale, {})
    world.clock.advance(301)
    scheduler.take_due(world.clock())
    await scheduler.settle()
    assert len(world.objects("RoleBinding")) == 1  # the uid precondition spared it
