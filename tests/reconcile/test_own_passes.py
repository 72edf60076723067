"""Passes this process runs, as the scheduler, the watch and the sweep drive them: the echo of its own
write still tells the scheduler what expires, a request kept forever is done with, and passes that
run at once never share their state."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

import kopf

from jitgrant.audit.records import EventType as E
from jitgrant.models.vocabulary import parse_time
from jitgrant.operator.registrations import reconcile_on_change
from jitgrant.reactor.scheduler import Scheduler
from jitgrant.reactor.sweep import sweep_cluster
from jitgrant.reconcile.driver import Reconciler
from jitgrant_testing.fakeport import YieldingPort

from .conftest import NS, World


async def _watch_event(memo: kopf.Memo, world: World, name: str, type: str) -> None:
    """The watch delivers the request as it is stored now to the operator's event handler."""
    body = kopf.Body(copy.deepcopy(world.cluster.requests[(NS, name)]))
    await reconcile_on_change(body=body, type=type, memo=memo)


async def test_a_grant_this_process_activated_loses_its_binding_at_expiry_ahead_of_its_pass(
    world: World,
) -> None:
    scheduler = Scheduler(world.runtime, concurrency=1)
    memo = kopf.Memo(runtime=world.runtime, scheduler=scheduler)
    uid = world.file("fix", duration="5m")
    await _watch_event(memo, world, "fix", "ADDED")
    await scheduler.tick(world.clock())
    assert world.status("fix")["phase"] == "Active" and len(world.objects("RoleBinding")) == 1
    # The watch's echo of the pass's own Active write: it triggers no pass, but it is observed.
    stored = world.cluster.requests[(NS, "fix")]["metadata"]
    assert world.runtime.is_own_echo(uid, stored["resourceVersion"])
    await _watch_event(memo, world, "fix", "MODIFIED")
    assert scheduler.take_due(world.clock()) == [], "the echo queued a pass"
    assert scheduler.next_due() == parse_time(world.status("fix")["expiresAt"])
    world.clock.advance(301)
    [key] = scheduler.take_due(world.clock())
    await scheduler.settle()
    # Cut at expiresAt, as docs/architecture.md says, while the pass still waits for a slot.
    assert world.objects("RoleBinding") == [], "the binding waited for the pass"
    assert world.status("fix")["phase"] == "Active"
    await scheduler.reconcile(*key)
    assert world.status("fix")["phase"] == "Expired"
    assert world.audit_types(uid).count(E.EXPIRED) == 1


async def test_a_request_kept_forever_is_not_reconciled_again_after_it_ended(world: World) -> None:
    world.runtime.settings = world.runtime.settings.model_copy(update={"finished_retention": timedelta(0)})
    scheduler = Scheduler(world.runtime, concurrency=1)
    memo = kopf.Memo(runtime=world.runtime, scheduler=scheduler)
    world.file("fix", namespace="orders")  # the policy does not offer orders: Denied
    await _watch_event(memo, world, "fix", "ADDED")
    for _ in range(310):  # 310 s of virtual time
        await scheduler.tick(world.clock())
        world.clock.advance(1)
    assert world.status("fix")["phase"] == "Denied"
    assert scheduler.reconciles == 1, f"{scheduler.reconciles} passes over a request kept forever"
    assert len(scheduler) == 0 and scheduler.next_due() is None
    # An event still brings it back: a finished request kept forever is due never, and forgotten.
    await _watch_event(memo, world, "fix", "MODIFIED")
    assert len(scheduler) == 0


async def test_a_request_removed_after_its_retention_is_done_with(world: World) -> None:
    world.runtime.settings = world.runtime.settings.model_copy(
        update={"finished_retention": timedelta(hours=1)}
    )
    scheduler = Scheduler(world.runtime, concurrency=1)
    memo = kopf.Memo(runtime=world.runtime, scheduler=scheduler)
    world.file("fix", namespace="orders")
    await _watch_event(memo, world, "fix", "ADDED")
    await scheduler.tick(world.clock())
    world.clock.advance(3601)
    await scheduler.tick(world.clock())
    assert world.cluster.requests[(NS, "fix")]["metadata"].get("deletionTimestamp")
    assert scheduler.reconciles == 2 and len(scheduler) == 0, "removed, yet queued for a retry"


def _yielding(world: World) -> None:
    """Adapters whose every call yields to the event loop, as real I/O does: passes interleave."""
    world.runtime.own = world.port = YieldingPort(world.cluster)
    world.audit.yields = True


async def test_passes_at_once_on_one_reconciler_each_write_their_own_request(world: World) -> None:
    _yielding(world)
    names = [f"fix-{index}" for index in range(8)]
    uids = {name: world.file(name) for name in names}  # approved by the policy: Active in one pass
    reconciler = Reconciler(world.runtime)
    await asyncio.gather(*(reconciler.reconcile(NS, name) for name in names))
    for name in names:
        status = world.status(name)
        assert status["phase"] == "Active", (name, status)
        assert status.get("requestedAt") and status.get("decidedAt"), (name, status)
        [ref] = status["grant"]["objects"]
        assert (
            world.cluster.objects[("RoleBinding", ref["namespace"], ref["name"])]["metadata"]["uid"]
            == (ref["uid"])
        )
        assert world.audit_types(uids[name]) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED], name


async def test_passes_at_once_on_one_reconciler_each_keep_their_own_approval(world: World) -> None:
    names = [f"fix-{index}" for index in range(8)]
    uids = {name: world.file(name, policy="prod") for name in names}
    for name in names:
        await world.reconcile(name)  # Pending
        world.approve(name)
    _yielding(world)
    reconciler = Reconciler(world.runtime)
    await asyncio.gather(*(reconciler.reconcile(NS, name) for name in names))
    for name in names:
        status = world.status(name)
        assert status["phase"] == "Active", (name, status)
        assert status.get("requestedAt") and status.get("decidedAt"), (name, status)
        assert [a["approver"] for a in status.get("approvals", [])] == ["alice"], (name, status)
        assert world.audit_types(uids[name]).count(E.APPROVED) == 1
        assert world.audit_types(uids[name]).count(E.GRANTED) == 1


async def test_the_sweep_ends_each_stale_grant_through_its_own_pass(world: World) -> None:
    names = [f"fix-{index}" for index in range(12)]
    uids = {name: world.file(name, duration="5m") for name in names}
    for name in names:
        await world.reconcile(name)
    assert len(world.objects("RoleBinding")) == len(names)
    _yielding(world)
    world.clock.advance(301)  # every window closed while no pass ran
    await sweep_cluster(world.runtime, world.runtime.own)
    for name in names:
        assert world.status(name)["phase"] == "Expired", (name, world.status(name))
        assert world.audit_types(uids[name]).count(E.EXPIRED) == 1
    assert world.objects("RoleBinding") == []


async def test_the_echo_of_a_write_that_comes_before_its_answer_runs_no_second_pass(world: World) -> None:
    """The watch can deliver the echo of the pass's own status write before the write's answer says
    which version it made: the echo looks foreign then. Once the pass has ended it is known for an
    echo, and the request is not run again from the echo's stale body (before: a second pass made a
    status patch that lost with 409, a read, and a RoleBinding create that found it existing)."""
    scheduler = Scheduler(world.runtime, concurrency=1)
    world.file("fix", duration="5m")
    body = world.cluster.requests[(NS, "fix")]
    scheduler.observe(NS, "fix", body.get("status") or {}, {}, body=copy.deepcopy(body))

    def early_echo() -> None:  # the plan's write, echoed by the watch ahead of its answer
        echoed = copy.deepcopy(world.cluster.requests[(NS, "fix")])
        scheduler.observe(
            NS, "fix", echoed["status"], echoed["metadata"].get("annotations") or {}, body=echoed
        )

    world.port.after("patch_request_status", early_echo)
    assert await scheduler.tick(world.clock()) == [(NS, "fix")]
    assert world.status("fix")["phase"] == "Active"
    world.port.calls.clear()
    assert await scheduler.tick(world.clock()) == []
    assert world.port.calls == [], world.port.calls
    assert scheduler.next_due() == parse_time(world.status("fix")["expiresAt"])


async def test_an_expiry_is_cut_on_time_while_its_pass_waits_for_a_slot(world: World) -> None:
    """The cut has its own queue on expiresAt: a request whose pass entry an event moved to now, and
    whose pass then waits for a slot behind others, still loses its binding at expiresAt (before, the
    cut waited for that pass, behind the backlog of activations)."""
    scheduler = Scheduler(world.runtime, concurrency=1)
    world.file("fix", duration="5m")
    body = world.cluster.requests[(NS, "fix")]
    scheduler.observe(NS, "fix", body.get("status") or {}, {}, body=copy.deepcopy(body))
    await scheduler.tick(world.clock())
    body = copy.deepcopy(world.cluster.requests[(NS, "fix")])
    scheduler.observe(NS, "fix", body["status"], {}, body=body, own=True)  # the Active write's echo
    assert len(world.objects("RoleBinding")) == 1
    world.file("busy")
    busy = world.cluster.requests[(NS, "busy")]
    scheduler.observe(NS, "busy", busy.get("status") or {}, {}, body=copy.deepcopy(busy))
    scheduler.schedule((NS, "fix"), world.clock())  # e.g. an event that makes it due now
    cut = asyncio.Event()
    world.port.after("delete_object", cut.set)
    async with world.runtime.lock_for(f"{NS}/busy"):  # busy's pass holds the only slot
        assert scheduler.start_due(world.clock()) == [(NS, "busy"), (NS, "fix")]
        world.clock.advance(301)
        scheduler.start_due(world.clock())
        await asyncio.wait_for(cut.wait(), 5)
        assert world.objects("RoleBinding") == []
        assert world.status("fix")["phase"] == "Active"  # its pass has not run yet
    await scheduler.settle()
    assert world.status("fix")["phase"] == "Expired"
