"""Continuous authorization (the invariant policy-changes-apply-to-live-grants): a policy change is held
against every live request under
it. A grant the policy no longer allows ends (Revoked, `PolicyChanged`), a shortened maxDuration cuts
`expiresAt`, a deleted policy ends its grants, and only approvers the policy names when the grant
activates count. Each test fails on the operator before the rule: the grant ran to its old expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jitgrant.audit.records import EventType
from jitgrant.models import Phase
from jitgrant.models.vocabulary import Reason, format_time, parse_time
from jitgrant.reactor.scheduler import Scheduler

from .conftest import AUTO_POLICY, NS, PROD_POLICY, World

E = EventType


class Notices:
    """The notifier as the reconciler sees it: what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Phase, str, str]] = []

    def transition(self, request: Any, *, phase: Phase, reason: str, message: str, **_: Any) -> None:
        self.sent.append((request.metadata.name, phase, reason, message))


def _change(world: World, name: str, **spec: Any) -> None:
    world.cluster.add_policy(name, {**world.cluster.policies[name]["spec"], **spec})


async def _active(world: World, name: str = "fix", **kwargs: Any) -> str:
    uid = world.file(name, **kwargs)
    await world.reconcile(name)
    assert world.status(name)["phase"] == "Active"
    assert world.objects("RoleBinding")
    return uid


async def test_a_namespace_removed_from_the_policy_ends_the_live_grant_under_it(world: World) -> None:
    notices = world.runtime.notifier = Notices()
    uid = await _active(world)
    _change(world, "auto", namespaces=["missing"])
    world.clock.advance(30)
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Revoked", Reason.POLICY_CHANGED), status
    assert "namespace 'payments' is not in policy auto" in status["message"]
    assert world.objects() == [], "the binding outlived the policy that allowed it"
    assert world.audit_types(uid)[-1] is E.REVOKED
    ended = world.audit.events[-1]
    assert ended.reason is not None and "no longer allows this grant" in ended.reason
    assert notices.sent[-1][1:3] == (Phase.REVOKED, Reason.POLICY_CHANGED)


async def test_a_cluster_role_removed_from_the_policy_ends_the_grant(world: World) -> None:
    await _active(world)
    _change(world, "auto", grants=[{"clusterRole": "view"}])
    await world.reconcile("fix")
    assert (world.status("fix")["phase"], world.status("fix")["reason"]) == ("Revoked", Reason.POLICY_CHANGED)
    assert world.objects() == []


async def test_a_shortened_max_duration_moves_expires_at_and_the_grant_ends_then(world: World) -> None:
    notices = world.runtime.notifier = Notices()
    uid = await _active(world, duration="10m")
    activated = parse_time(world.status("fix")["activatedAt"])
    _change(world, "auto", maxDuration="5m")
    world.clock.advance(60)
    wake = await world.reconcile("fix")
    status = world.status("fix")
    assert status["phase"] == "Active" and status["reason"] == Reason.POLICY_CHANGED
    assert parse_time(status["expiresAt"]) == activated + timedelta(minutes=5)
    [granted] = status["conditions"]
    assert (granted["status"], granted["reason"]) == ("True", Reason.POLICY_CHANGED)
    assert format_time(activated + timedelta(minutes=5)) in granted["message"]
    assert wake == activated + timedelta(minutes=5), "the next look is at the new end"
    assert world.audit_types(uid)[-1] is E.SHORTENED
    shortened = world.audit.events[-1]
    assert shortened.window is not None and shortened.window.expires_at == activated + timedelta(minutes=5)
    assert notices.sent[-1][1:3] == (Phase.ACTIVE, Reason.POLICY_CHANGED)
    # Reconciled again before the new end: nothing more happens (no second record, no write).
    writes = world.port.calls.count("patch_request_status")
    await world.reconcile("fix")
    assert world.port.calls.count("patch_request_status") == writes
    assert world.audit_types(uid).count(E.SHORTENED) == 1
    world.clock.now = activated + timedelta(minutes=5, seconds=1)
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Expired"
    assert world.objects() == []


async def test_a_max_duration_cut_below_the_time_already_granted_ends_the_grant_now(world: World) -> None:
    await _active(world, duration="10m")
    _change(world, "auto", maxDuration="5m")
    world.clock.advance(6 * 60)
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Revoked", Reason.POLICY_CHANGED)
    assert "maxDuration is now 5m" in status["message"]
    assert world.objects() == []


async def test_a_longer_max_duration_does_not_lengthen_a_live_grant(world: World) -> None:
    await _active(world, duration="10m")
    before = world.status("fix")["expiresAt"]
    _change(world, "auto", maxDuration="1h")
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert world.status("fix")["expiresAt"] == before


async def test_a_deleted_policy_ends_its_grants(world: World) -> None:
    notices = world.runtime.notifier = Notices()
    uid = await _active(world)
    del world.cluster.policies["auto"]
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Revoked", Reason.POLICY_CHANGED)
    assert "GrantPolicy 'auto' was deleted" in status["message"]
    assert world.objects() == []
    assert world.audit_types(uid)[-1] is E.REVOKED
    assert notices.sent[-1][1:3] == (Phase.REVOKED, Reason.POLICY_CHANGED)


async def test_a_policy_that_no_longer_parses_ends_its_grants_saying_why(world: World) -> None:
    await _active(world)
    _change(world, "auto", maxDuration="forever")
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Revoked", Reason.POLICY_CHANGED)
    assert "is invalid" in status["message"] and "maxDuration" in status["message"]
    assert world.objects() == []


async def test_an_approver_removed_after_quorum_does_not_carry_the_activation(world: World) -> None:
    """Approved while the namespace is missing; alice leaves the approvers before it activates."""
    uid = world.file("fix", policy="prod", namespace="missing")
    await world.reconcile("fix")
    world.approve("fix", by="alice")
    await world.reconcile("fix")
    assert (world.status("fix")["phase"], world.status("fix")["reason"]) == (
        "Approved",
        Reason.WAITING_FOR_NAMESPACE,
    )
    _change(world, "prod", approval={**PROD_POLICY["approval"], "approvers": {"users": ["bob"]}})
    world.cluster.namespaces.add("missing")
    world.clock.advance(5)
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Denied", Reason.POLICY_CHANGED), status
    assert "alice" in status["message"] and "0 of 1 count" in status["message"]
    assert world.objects() == [], "nothing is granted on an approval that no longer counts"
    assert E.GRANTED not in world.audit_types(uid)


async def test_an_approver_removed_before_quorum_no_longer_counts(world: World) -> None:
    two = {**PROD_POLICY["approval"], "approvers": {"users": ["alice", "bob"]}, "minApprovals": 2}
    _change(world, "prod", approval=two)
    world.file("fix", policy="prod")
    await world.reconcile("fix")
    world.approve("fix", by="alice")
    await world.reconcile("fix")
    _change(world, "prod", approval={**two, "approvers": {"users": ["bob", "carol"]}})
    world.approve("fix", by="bob")
    await world.reconcile("fix")
    status = world.status("fix")
    assert status["phase"] == "Pending", status
    assert [entry["approver"] for entry in status.get("approvals", [])] == ["bob"]
    assert world.objects() == []


async def test_the_grant_under_another_policy_is_left_alone(world: World) -> None:
    world.cluster.add_policy("other", AUTO_POLICY)
    await _active(world, "mine")
    world.file("theirs", policy="other")
    await world.reconcile("theirs")
    _change(world, "other", namespaces=["missing"])
    await world.reconcile("mine")
    await world.reconcile("theirs")
    assert world.status("mine")["phase"] == "Active"
    assert world.status("theirs")["phase"] == "Revoked"


async def test_a_policy_change_makes_its_live_requests_due_now(world: World) -> None:
    """The watch on GrantPolicies: a new generation (or a deletion) queues every live request under
    the policy at once, not at its expiry; a status write to the policy (same generation) does not."""
    await _active(world, "a")
    await _active(world, "b")
    world.cluster.add_policy("other", AUTO_POLICY)
    await _active(world, "c", policy="other")
    scheduler = Scheduler(world.runtime)
    for name in ("a", "b", "c"):
        body = world.cluster.requests[(NS, name)]
        scheduler.observe(NS, name, body["status"], {}, body=body)
    now = world.clock()
    assert scheduler.next_due() == parse_time(world.status("a")["expiresAt"])
    auto = world.cluster.policies["auto"]["spec"]
    assert scheduler.policy_seen("auto", generation=1, event=None, spec=auto) == 0  # the listing
    assert scheduler.policy_seen("auto", generation=1, event="MODIFIED", spec=auto) == 0  # status
    assert scheduler.next_due() == parse_time(world.status("a")["expiresAt"])
    assert scheduler.policy_seen("auto", generation=2, event="MODIFIED", spec=auto) == 2
    assert scheduler.next_due() == now
    assert scheduler.policy_seen("other", generation=None, event="DELETED") == 1


async def test_a_policy_narrowed_while_no_replica_ran_ends_its_grants_at_start_up(world: World) -> None:
    """At start-up the watch lists the requests and the policies (in either order): each Active grant
    is held against its policy as listed, from the bodies at hand (no API call), and one the policy no
    longer allows, or whose window it shortens, is due at once instead of at its expiry."""
    world.cluster.add_policy("other", AUTO_POLICY)
    await _active(world, "narrowed")
    await _active(world, "kept", policy="other")
    await _active(world, "later", duration="10m")
    narrowed = {**AUTO_POLICY, "maxDuration": "5m"}
    world.clock.advance(60)
    now = world.clock()
    scheduler = Scheduler(world.runtime)
    calls = len(world.port.calls)
    # "other" listed before its request, "auto" after its two.
    assert scheduler.policy_seen("other", generation=1, event=None, spec=AUTO_POLICY) == 0
    for name in ("narrowed", "kept", "later"):
        body = world.cluster.requests[(NS, name)]
        scheduler.observe(NS, name, body["status"], {}, body=body)
    assert scheduler.next_due() == parse_time(world.status("kept")["expiresAt"])
    assert scheduler.policy_seen("auto", generation=3, event=None, spec=narrowed) == 2
    assert scheduler.next_due() == now
    assert len(world.port.calls) == calls, "the start-up check made API calls"
    # And a request event after the listing is held against the policy as listed, at once.
    body = world.cluster.requests[(NS, "narrowed")]
    assert scheduler.observe(NS, "narrowed", body["status"], {}, body=body) == now
    body = world.cluster.requests[(NS, "kept")]
    assert scheduler.observe(NS, "kept", body["status"], {}, body=body) == parse_time(
        world.status("kept")["expiresAt"]
    )


def _watch_delivers(world: World, name: str) -> None:
    """The GrantPolicy watch's event reaching the runtime's cache (operator/registrations.py)."""
    world.runtime.policy_seen(name, world.cluster.policies[name]["spec"], deleted=False)


async def test_policies_come_from_the_watch_and_a_change_after_the_pass_read_one_still_ends_the_grant(
    world: World,
) -> None:
    """With the watch's cache filled, a pass reads no GrantPolicy (one call per grant fewer). A policy
    narrowed after a pass read the cached spec grants under the old one only until the watch delivers
    the change: its event makes the request due now and that pass ends it (PolicyChanged)."""
    for name in ("auto", "prod"):
        _watch_delivers(world, name)
    scheduler = Scheduler(world.runtime)
    world.file("fix")
    body = world.cluster.requests[(NS, "fix")]
    scheduler.observe(NS, "fix", body.get("status") or {}, {}, body=body)
    world.port.calls.clear()
    _change(world, "auto", namespaces=["missing"])  # not delivered yet: the pass reads the cache
    await scheduler.tick(world.clock())
    assert world.status("fix")["phase"] == "Active"
    assert "get_policy" not in world.port.calls, world.port.calls
    body = world.cluster.requests[(NS, "fix")]
    scheduler.observe(NS, "fix", body["status"], {}, body=body)
    _watch_delivers(world, "auto")
    spec = world.cluster.policies["auto"]["spec"]
    assert scheduler.policy_seen("auto", generation=2, event="MODIFIED", spec=spec) == 1
    assert await scheduler.tick(world.clock()) == [(NS, "fix")]
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Revoked", Reason.POLICY_CHANGED), status
    assert world.objects() == [], "the binding outlived the policy that allowed it"
    assert "get_policy" not in world.port.calls, world.port.calls


async def test_a_policy_the_watch_has_not_delivered_is_read(world: World) -> None:
    """A name missing from the cache (not listed yet) is read: the cache never answers 'missing'."""
    _watch_delivers(world, "prod")
    await _active(world)
    assert "get_policy" in world.port.calls
