"""Kubernetes Events, asserted as cert-manager asserts them (its fake recorder): the engine posts them
through the EventRecorder port, which the fake collects; each transition posts one, by type and
reason, from whichever task ran the pass (a scheduler pass too, not only a kopf handler's)."""

from __future__ import annotations

from datetime import timedelta

from jitgrant.clusters.errors import Forbidden, Unavailable
from jitgrant.models.vocabulary import Reason
from jitgrant.reactor.scheduler import Scheduler

from .conftest import NS, World

N, W = "Normal", "Warning"


def dark() -> Unavailable:
    return Unavailable(reason="ClusterUnreachable", message="could not reach the API server", retryable=True)


async def test_an_auto_approved_grant_posts_one_event_per_transition(world: World) -> None:
    """The approval that activates in the same pass rides on the grant's Event (one create, not two),
    which still says how it was approved."""
    world.file("fix", duration="5m")
    await world.reconcile("fix")
    assert world.events.of("fix") == [(N, Reason.GRANTED)]
    [granted] = world.events.events
    assert f"({Reason.AUTO_APPROVED}: " in granted.message, granted.message
    world.clock.advance(301)
    await world.reconcile("fix")
    assert world.events.of("fix")[-1] == (N, Reason.EXPIRED)
    assert len(world.events.of("fix")) == 2


async def test_an_expiry_the_scheduler_runs_posts_its_event(world: World) -> None:
    # A pass outside any kopf handler: kopf's `kopf.event` would post nothing here.
    scheduler = Scheduler(world.runtime)
    world.file("fix", duration="5m")
    await scheduler.reconcile(NS, "fix")
    world.clock.advance(301)
    await scheduler.reconcile(NS, "fix")
    assert world.status("fix")["phase"] == "Expired"
    assert world.events.of("fix")[-1] == (N, Reason.EXPIRED)


async def test_an_approval_and_a_revocation_post_their_events(world: World) -> None:
    world.file("p", policy="prod")
    await world.reconcile("p")
    assert world.events.of("p") == [(N, Reason.AWAITING_APPROVAL)]
    world.approve("p")
    await world.reconcile("p")
    world.revoke("p")
    await world.reconcile("p")
    assert world.events.of("p")[1:] == [(N, Reason.GRANTED), (N, Reason.REVOKED)]
    [granted] = [e for e in world.events.events if e.reason == Reason.GRANTED]
    assert f"({Reason.APPROVED}: " in granted.message and "alice" in granted.message, granted.message
    [revoked] = [e for e in world.events.events if e.reason == Reason.REVOKED]
    assert revoked.namespace == NS and revoked.name == "p"


async def test_an_overdue_removal_warns_once_however_many_passes_retry_it(world: World) -> None:
    world.file("fix", duration="5m")
    await world.reconcile("fix")
    world.clock.advance(301)
    for _ in range(3):
        world.port.fail("delete_object", dark())
        await world.reconcile("fix")
        world.clock.advance(31)
    assert world.status("fix")["phase"] == "Active"  # its binding may still exist
    assert world.events.of("fix").count((W, Reason.REMOVAL_OVERDUE)) == 1
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Expired"
    assert world.events.of("fix")[-1] == (N, Reason.EXPIRED)


async def test_a_binding_the_cluster_refuses_fails_the_request_with_a_warning(world: World) -> None:
    world.file("fix")
    world.port.fail(
        "create_object",
        Forbidden(reason="Forbidden", message="may not bind", retryable=False, status=403),
    )
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Failed"
    assert world.events.of("fix")[-1] == (W, Reason.GRANT_REFUSED_BY_CLUSTER)


async def test_a_request_removed_after_its_retention_says_why(world: World) -> None:
    world.runtime.settings = world.runtime.settings.model_copy(
        update={"finished_retention": timedelta(hours=1)}
    )
    world.file("fix", duration="5m")
    await world.reconcile("fix")
    world.clock.advance(301)
    await world.reconcile("fix")
    world.clock.advance(3601)
    await world.reconcile("fix")
    body = world.cluster.requests.get((NS, "fix"))
    assert body is None or body["metadata"].get("deletionTimestamp")  # its finalizer does the rest
    assert world.events.of("fix")[-1] == (N, Reason.RETENTION_ELAPSED)


async def test_an_approval_whose_grant_waits_posts_its_own_event(world: World) -> None:
    """An approval that does not activate in its pass (the target cluster does not answer) is not
    folded into anything: its Event goes out with its status write."""
    world.file("p", policy="prod")
    await world.reconcile("p")
    world.approve("p")
    world.port.fail("create_object", dark())
    await world.reconcile("p")
    assert world.status("p")["phase"] != "Active"
    assert (N, Reason.APPROVED) in world.events.of("p"), world.events.of("p")
