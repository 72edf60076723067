"""A target cluster that does not answer, on the in-memory port with virtual time: no binding is ever
created at or after its window's end, status shows the next real attempt, and a cluster that answers
again sends every request waiting on it back to work at once."""

from __future__ import annotations

from jitgrant.audit.records import EventType as E
from jitgrant.clusters.errors import Unavailable
from jitgrant.models.vocabulary import format_time, parse_time
from jitgrant.reactor.scheduler import Scheduler

from .conftest import NS, World


def dark() -> Unavailable:
    return Unavailable(reason="ClusterUnreachable", message="could not reach the API server", retryable=True)


async def test_a_window_that_closes_while_the_cluster_does_not_answer_creates_nothing(world: World) -> None:
    uid = world.file("late", duration="5m")
    world.port.fail("create_object", dark())
    wake = await world.reconcile("late")
    status = world.status("late")
    assert status["phase"] == "Approved" and status["reason"] == "ClusterUnreachable"
    expires_at = parse_time(status["grant"]["expiresAt"])  # the recorded plan fixes the window
    world.clock.now = expires_at  # the cluster answers again exactly at the window's end: too late
    await world.reconcile("late")
    status = world.status("late")
    assert status["phase"] == "Failed" and status["reason"] == "TargetUnreachable", status
    assert "nothing was granted" in status["message"] and format_time(expires_at) in status["message"]
    assert world.objects() == []
    assert world.port.calls.count("create_object") == 1  # the failed one; none after the window
    assert E.GRANTED not in world.audit_types(uid) and E.FAILED in world.audit_types(uid)
    assert wake is not None


async def test_status_shows_the_next_real_attempt_and_the_pass_returns_it(world: World) -> None:
    world.file("fix")
    world.port.fail("create_object", dark())
    wake = await world.reconcile("fix")
    assert wake is not None and wake > world.clock()
    assert world.status("fix")["message"].endswith(f"next attempt at {format_time(wake)}")
    # Many failures in a row: the delay stops growing at 30 s.
    for _ in range(12):
        world.clock.now = wake
        world.port.fail("create_object", dark())
        wake = await world.reconcile("fix")
        assert wake is not None and (wake - world.clock()).total_seconds() <= 31
    world.clock.now = wake
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"


async def test_a_cluster_that_answers_again_sends_its_waiting_requests_at_once(world: World) -> None:
    scheduler = Scheduler(world.runtime)
    world.file("fix")
    scheduler.observe(NS, "fix", {}, {})
    world.port.fail("create_object", dark())
    world.port.fail("create_object", dark())
    await scheduler.reconcile(NS, "fix")
    await scheduler.reconcile(NS, "fix")  # two failures: the next try is seconds away
    waiting_until = scheduler.next_due()
    assert waiting_until is not None and waiting_until > world.clock()
    # Another request (or the sweep) reached the cluster: the probe succeeded.
    world.runtime.cluster_reached(world.port.name)
    assert scheduler.next_due() == world.clock()


async def test_the_trail_separates_the_plan_from_the_time_the_binding_existed(world: World) -> None:
    uid = world.file("slow", duration="10m")
    planned = world.clock()
    world.port.fail("create_object", dark())
    await world.reconcile("slow")
    world.clock.advance(93)  # the cluster answered 93 s after the plan was written
    await world.reconcile("slow")
    status = world.status("slow")
    assert status["phase"] == "Active"
    granted_at = planned.replace(microsecond=0) + (world.clock() - planned)
    by_type = {event.type: event for event in world.audit.events if event.request_uid == uid}
    issuing, granted = by_type[E.ISSUING], by_type[E.GRANTED]
    assert issuing.time == planned and issuing.window is not None and issuing.window.activated_at == planned
    assert granted.time == granted_at and granted.window is not None
    assert granted.window.activated_at == granted_at
    # The approved window still starts with the plan, and status names both times.
    assert parse_time(status["activatedAt"]) == planned
    assert f"planned at {format_time(planned)}, granted at {format_time(granted_at)}" in status["message"]
