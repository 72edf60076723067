"""The reconciler on the in-memory port: the grant plan is written ahead, removal works from it, only
objects the operator can prove it made are ever used or removed, and each transition is audited once."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from jitgrant.audit.records import EventType
from jitgrant.clusters import grant_objects
from jitgrant.clusters.errors import Conflict, Unavailable
from jitgrant.clusters.port import ClusterObject
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    FINALIZER,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNER_SEAL_ANNOTATION,
    REQUEST_UID_LABEL,
    Reason,
    parse_time,
)
from jitgrant.reconcile.driver import Reconciler
from jitgrant_testing.fakeport import Crash

from .conftest import KEY, NS, World

E = EventType


async def test_an_auto_approved_request_records_its_plan_then_creates_a_sealed_binding(world: World) -> None:
    uid = world.file("fix")
    await world.reconcile("fix")
    status = world.status("fix")
    assert status["phase"] == "Active"
    [(kind, namespace, name)] = world.objects()
    assert (kind, namespace) == ("RoleBinding", "payments")
    [recorded] = status["grant"]["objects"]
    stored = world.cluster.objects[(kind, namespace, name)]
    assert recorded == {
        "cluster": "in-cluster",
        "kind": "RoleBinding",
        "namespace": "payments",
        "name": name,
        "uid": stored["metadata"]["uid"],
    }
    view = ClusterObject(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=stored["metadata"]["uid"],
        labels=stored["metadata"]["labels"],
        annotations=stored["metadata"]["annotations"],
    )
    assert grant_objects.proven_ours(view, key=KEY, cluster="in-cluster", request_uid=uid)
    assert not grant_objects.proven_ours(view, key=b"another-key-0123456789abcdef01234", cluster="in-cluster")
    assert world.audit_types(uid) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED]
    # The plan went into status before the binding existed, in one write with the approval (two
    # status writes in all, not three), and the pass read the request and the policy once each; the
    # ClusterRole's live rules are read just before the binding is made.
    calls = world.port.calls
    assert calls == [
        "get_request",
        "get_policy",
        "patch_request_status",
        "read_cluster_role",
        "create_object",
        "patch_request_status",
    ]


async def test_expiry_removes_the_binding_before_status_says_expired(world: World) -> None:
    uid = world.file("fix", duration="5m")
    await world.reconcile("fix")
    world.clock.advance(301)
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Expired"
    assert world.objects() == []
    assert world.audit_types(uid)[-1] is E.EXPIRED


async def test_a_revoke_that_lands_mid_issue_removes_the_binding_on_the_next_pass(world: World) -> None:
    """The race of the field report: the status write after the binding fails with a 409."""
    world.file("fix")
    seen: list[tuple[str, list[tuple[str, str, str]]]] = []

    def revoke() -> None:
        seen.append((world.status("fix")["grant"]["roleBinding"], world.objects("RoleBinding")))
        world.revoke("fix", "revoked mid-issue")

    world.port.after("create_object:RoleBinding", revoke)
    await world.reconcile("fix")
    [(recorded, bindings)] = seen
    assert [name for _, _, name in bindings] == [recorded], "the binding was in status before it existed"
    # The Active write lost to the revoke (409); the same pass read again and removed the binding.
    assert world.status("fix")["phase"] == "Revoked"
    assert world.status("fix")["grant"]["objects"][0]["kind"] == "RoleBinding"
    assert world.objects() == []


async def test_a_crash_after_the_binding_is_made_is_finished_by_the_next_operator(world: World) -> None:
    uid = world.file("fix")

    def crash() -> None:
        raise Crash("killed")

    world.port.after("create_object:RoleBinding", crash)
    with pytest.raises(Crash):
        await world.reconcile("fix")
    world.restart()
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    [binding] = world.objects()
    assert (
        world.status("fix")["grant"]["objects"][0]["uid"] == world.cluster.objects[binding]["metadata"]["uid"]
    )
    assert world.audit_types(uid).count(E.GRANTED) == 1


async def test_a_planted_binding_under_the_grant_name_fails_the_request_and_survives(world: World) -> None:
    uid = world.file("fix")

    def plant() -> None:
        # Someone with `create rolebindings` in payments gets there first, labels and all.
        plan = world.status("fix")["grant"]
        world.cluster.objects[("RoleBinding", "payments", plan["roleBinding"])] = {
            "kind": "RoleBinding",
            "metadata": {
                "namespace": "payments",
                "name": plan["roleBinding"],
                "uid": "planted",
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: uid},
                "annotations": {OWNER_SEAL_ANNOTATION: "v1:" + "0" * 64},
            },
        }

    world.port.after("patch_request_status", plant)  # the plan (with the approval)
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Failed", Reason.NAME_COLLISION)
    assert (
        world.cluster.objects[("RoleBinding", "payments", status["grant"]["roleBinding"])]["metadata"]["uid"]
        == "planted"
    )
    assert E.GRANTED not in world.audit_types(uid)


async def test_a_missing_namespace_is_waited_for_then_fails_and_is_audited_once(world: World) -> None:
    uid = world.file("fix", namespace="missing")
    for _ in range(20):
        await world.reconcile("fix")
        world.clock.advance(2)
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Approved", Reason.WAITING_FOR_NAMESPACE)
    writes = world.port.calls.count("patch_request_status")
    for _ in range(20):
        await world.reconcile("fix")
        world.clock.advance(2)
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Failed", Reason.NAMESPACE_NOT_FOUND), status
    assert world.port.calls.count("patch_request_status") == writes + 1, "one write per change, not per retry"
    world.cluster.namespaces.add("missing")
    world.clock.advance(60)
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Failed" and world.objects() == []
    types = world.audit_types(uid)
    assert types == [E.REQUESTED, E.APPROVED, E.ISSUING, E.FAILED]
    assert len(types) == len(set(types)), "a transition was audited twice"


async def test_no_transition_is_audited_twice_through_a_whole_life_with_retries(world: World) -> None:
    uid = world.file("fix", policy="prod")
    await world.reconcile("fix")
    await world.reconcile("fix")
    world.approve("fix")
    world.port.fail("create_object", Unavailable(reason="ClusterUnavailable", message="busy", retryable=True))
    await world.reconcile("fix")
    await world.reconcile("fix")
    await world.reconcile("fix")
    world.clock.advance(601)
    await world.reconcile("fix")
    await world.reconcile("fix")
    types = world.audit_types(uid)
    assert types == [E.REQUESTED, E.PENDING, E.APPROVED, E.ISSUING, E.GRANTED, E.EXPIRED]


async def test_no_grant_when_the_audit_record_cannot_be_accepted(world: World) -> None:
    world.audit.unavailable = True
    world.file("fix")
    await world.reconcile("fix")
    status = world.status("fix")
    assert (status["phase"], status["reason"]) == ("Failed", Reason.AUDIT_UNAVAILABLE)
    assert "create_object" not in world.port.calls and world.objects() == []


async def test_deleting_a_request_removes_its_recorded_objects_first(world: World) -> None:
    world.file("fix")
    await world.reconcile("fix")
    assert world.objects()
    body = world.cluster.mark_deleted(NS, "fix")
    await Reconciler(world.runtime).revoke_for_deletion(body)
    assert world.objects() == []


async def test_a_retryable_failure_while_removing_keeps_the_request_live_until_it_succeeds(
    world: World,
) -> None:
    world.file("fix")
    await world.reconcile("fix")
    world.revoke("fix")
    world.port.fail("delete_object", Unavailable(reason="ClusterUnavailable", message="busy", retryable=True))
    # Not raised: the pass says when it tries again, and status says the removal is overdue.
    wake = await world.reconcile("fix")
    assert wake is not None and wake > world.clock()
    status = world.status("fix")
    assert status["phase"] == "Active" and status["reason"] == "RemovalOverdue" and world.objects()
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Revoked" and world.objects() == []


async def test_a_grant_recorded_before_plans_listed_objects_is_still_removed(world: World) -> None:
    """An operator upgraded mid-grant: the old record names the binding, the binding has no seal."""
    uid = world.file("old")
    name = "jit-old-binding"
    world.cluster.objects[("RoleBinding", "payments", name)] = {
        "kind": "RoleBinding",
        "metadata": {
            "namespace": "payments",
            "name": name,
            "uid": "old-binding-uid",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: uid},
        },
    }
    world.cluster.requests[(NS, "old")]["status"] = {
        "phase": "Active",
        "expiresAt": "2026-01-01T13:00:00Z",
        "grant": {"cluster": "in-cluster", "namespace": "payments", "roleBinding": name},
    }
    world.revoke("old")
    await world.reconcile("old")
    assert world.status("old")["phase"] == "Revoked"
    assert world.objects() == []


async def test_a_conflict_on_writing_the_plan_records_it_on_the_fresh_copy_and_audits_once(
    world: World,
) -> None:
    uid = world.file("fix")
    # Another writer lands between our read and the plan's write (which carries the approval).
    world.port.after("get_request", lambda: world.cluster.annotate(NS, "fix", {"other": "x"}))
    await world.reconcile("fix")
    writes = world.port.calls.count("patch_request_status")
    assert writes == 3, "approval with the plan (refused), the same again, Active"
    assert world.status("fix")["phase"] == "Active"
    assert world.audit_types(uid) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED]


async def test_a_conflict_on_the_first_status_write_records_requested_once(world: World) -> None:
    uid = world.file("fix")
    # The leader's finalizer write lands between the first read and the first status write.
    world.port.after("get_request", lambda: world.cluster.annotate(NS, "fix", {"other": "writer"}))
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert world.audit_types(uid) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED]


async def test_a_request_without_the_finalizer_gets_it_before_anything_is_granted(world: World) -> None:
    """The event handler's finalizer write can fail (our own webhooks not yet listening): the
    reconciler adds it itself, first, so a deletion is always certain to revoke what it issues."""
    uid = world.file("fix")
    world.cluster.requests[(NS, "fix")]["metadata"]["finalizers"] = []
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert world.cluster.requests[(NS, "fix")]["metadata"]["finalizers"] == [FINALIZER]
    calls = world.port.calls
    assert calls.index("update_finalizers") < calls.index("create_object")
    assert world.audit_types(uid) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED]


async def test_two_conflicts_on_writing_the_plan_do_not_fail_the_grant(world: World) -> None:
    """Under load a second 409 lands on the plan's re-write too: the pass reads again and decides
    again (found by make chaos, where 1 request in 10 ended Failed 'the object has been modified')."""
    uid = world.file("fix")

    def conflict_on_the_next_status_write() -> None:
        world.port.fail(
            "patch_request_status",
            Conflict(reason=Reason.CLUSTER_CONFLICT, message="injected 409", retryable=False, status=409),
        )

    world.port.after("get_request", lambda: None)  # the approval's write goes through
    world.port.after("get_request", conflict_on_the_next_status_write)  # the plan's write
    world.port.after("get_request", conflict_on_the_next_status_write)  # and its re-write
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert world.audit_types(uid) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED]


@pytest.mark.parametrize("killed_after", [1, 2, 3])
async def test_a_kill_right_after_any_status_write_loses_no_record(world: World, killed_after: int) -> None:
    """Approved with the plan, Active, Expired: the operator dies just after the n-th status write.
    Each transition's record is written ahead of its status write, so the next operator may
    repeat one (never more) but none is lost (make chaos found lost 'approved' records)."""
    uid = world.file("fix", duration="1s")
    for _ in range(killed_after - 1):
        world.port.after("patch_request_status", lambda: None)

    def kill() -> None:
        raise Crash("killed")

    world.port.after("patch_request_status", kill)
    with contextlib.suppress(Crash):
        await world.reconcile("fix")
        world.clock.advance(2)
        await world.reconcile("fix")
    world.restart()
    await world.reconcile("fix")
    world.clock.advance(2)
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Expired"
    types = world.audit_types(uid)
    every = [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED, E.EXPIRED]
    assert [t for t in every if t not in types] == [], f"lost: {types}"
    assert all(types.count(t) <= 2 for t in every), types


async def test_a_status_write_that_fails_and_is_retried_writes_its_record_once(world: World) -> None:
    """Written ahead, the record must not be written again by the retry of the same process."""
    uid = world.file("fix")
    busy = Unavailable(reason="ClusterUnavailable", message="busy", retryable=True)
    world.port.fail("patch_request_status", busy)  # the approval's (and plan's) status write: a 503
    with contextlib.suppress(Unavailable):
        await world.reconcile("fix")
    assert world.objects() == []  # nothing was created without the plan in status
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert world.audit_types(uid) == [E.REQUESTED, E.APPROVED, E.ISSUING, E.GRANTED]


async def test_a_request_that_does_not_parse_fails_naming_the_field(world: World) -> None:
    world.file("bad", duration="forever")
    await world.reconcile("bad")
    status = world.status("bad")
    assert (status["phase"], status["reason"]) == ("Failed", Reason.INVALID_REQUEST)
    assert "spec.duration" in status["message"] and status["endedAt"].endswith("Z")
    assert world.objects() == []


async def test_a_request_that_waited_for_its_namespace_gets_its_whole_duration_from_the_binding(
    world: World,
) -> None:
    """architecture.md, "Decisions" (a missing target namespace): the clock starts when the binding exists,
    not when the grant was first planned."""
    world.file("fix", namespace="missing", duration="10m")
    await world.reconcile("fix")
    planned = world.status("fix")["grant"]["plannedAt"]
    assert world.status("fix")["reason"] == Reason.WAITING_FOR_NAMESPACE
    world.clock.advance(40)
    world.cluster.namespaces.add("missing")
    created = world.clock()
    await world.reconcile("fix")
    status = world.status("fix")
    assert status["phase"] == "Active"
    assert parse_time(status["activatedAt"]) == created, f"the clock started at {planned}"
    assert parse_time(status["expiresAt"]) == created + timedelta(minutes=10)
    assert status["grant"]["expiresAt"] == status["expiresAt"]
    [binding] = world.objects("RoleBinding")
    annotations = world.cluster.objects[binding]["metadata"]["annotations"]
    assert annotations[EXPIRES_AT_ANNOTATION] == status["expiresAt"], "the sweep would cut it short"
    world.clock.advance(10 * 60 - 1)
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
