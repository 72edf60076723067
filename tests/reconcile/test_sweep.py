"""The sweep on the in-memory port: it removes what the operator made and no longer needs, and never
touches an object it cannot prove it made, however it is labelled."""

from __future__ import annotations

import logging

import pytest

from jitgrant.audit.records import EventType
from jitgrant.clusters.grant_objects import sealed
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_ANNOTATION,
    REQUEST_UID_LABEL,
)
from jitgrant.reactor.sweep import sweep_all

from .conftest import KEY, World


def _planted_service_account(namespace: str = "jitgrant-grants") -> dict[str, object]:
    return {
        "kind": "ServiceAccount",
        "metadata": {
            "namespace": namespace,
            "name": "important-controller",
            "uid": "sa-uid",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: "made-up"},
            "annotations": {EXPIRES_AT_ANNOTATION: "2020-01-01T00:00:00Z"},
        },
    }


async def test_a_labelled_object_without_the_seal_is_counted_and_never_deleted(world: World) -> None:
    world.cluster.objects[("ServiceAccount", "jitgrant-grants", "important-controller")] = (
        _planted_service_account()
    )
    assert await sweep_all(world.runtime) == 0
    assert ("ServiceAccount", "jitgrant-grants", "important-controller") in world.cluster.objects
    assert "delete_object" not in world.port.calls
    metrics = world.runtime.metrics.render()
    assert b'jitgrant_unproven_objects{cluster="in-cluster",kind="ServiceAccount"} 1.0' in metrics


async def test_the_sweep_looks_at_identity_objects_only_in_the_grants_namespace(world: World) -> None:
    """ServiceAccounts, Secrets and Roles elsewhere are not the operator's business: it may not even
    list them (its rights on those kinds exist only in the grants namespace)."""
    world.cluster.objects[("ServiceAccount", "kube-system", "important-controller")] = (
        _planted_service_account("kube-system")
    )
    assert await sweep_all(world.runtime) == 0
    metrics = world.runtime.metrics.render()
    assert b'jitgrant_unproven_objects{cluster="in-cluster",kind="ServiceAccount"} 0.0' in metrics


async def test_a_sealed_orphan_is_removed_and_audited(world: World) -> None:
    body = {
        "kind": "RoleBinding",
        "metadata": {
            "namespace": "payments",
            "name": "jit-orphan",
            "annotations": {
                REQUEST_ANNOTATION: "agents/gone",
                EXPIRES_AT_ANNOTATION: "2026-01-01T13:00:00Z",
            },
        },
    }
    await world.port.create_object(sealed(body, key=KEY, cluster="in-cluster", request_uid="gone-uid"))
    assert await sweep_all(world.runtime) == 1
    assert world.objects() == []
    [event] = world.audit.events
    assert event.type is EventType.CLEANED_UP and "no longer exists" in (event.reason or "")


async def test_the_identity_objects_of_a_vanished_request_are_swept_from_the_grants_namespace(
    world: World,
) -> None:
    """The kubeconfig Secret and its reader Role/RoleBinding carry no ownerReference (their request is
    in another namespace), so nothing but the sweep removes them when their request vanished while
    the operator was not looking; the ServiceAccount likewise."""
    meta = {
        REQUEST_ANNOTATION: "agents/gone",
        EXPIRES_AT_ANNOTATION: "2099-01-01T00:00:00Z",  # window still open: the request's absence decides
    }
    for kind, name in (
        ("ServiceAccount", "jit-gone"),
        ("Secret", "jit-gone-kubeconfig"),
        ("Role", "jit-gone-reader"),
        ("RoleBinding", "jit-gone-reader"),
    ):
        body = {"kind": kind, "metadata": {"namespace": "jitgrant-grants", "name": name, "annotations": meta}}
        await world.port.create_object(sealed(body, key=KEY, cluster="in-cluster", request_uid="gone-uid"))
    assert await sweep_all(world.runtime) == 4
    assert world.objects() == []
    assert sorted((e.reason or "").split(" removed")[0] for e in world.audit.events) == [
        "Role jitgrant-grants/jit-gone-reader",
        "RoleBinding jitgrant-grants/jit-gone-reader",
        "Secret jitgrant-grants/jit-gone-kubeconfig",
        "ServiceAccount jitgrant-grants/jit-gone",
    ]


async def test_a_live_grant_is_kept_and_one_whose_window_closed_while_down_is_ended(world: World) -> None:
    world.file("fix", duration="5m")
    await world.reconcile("fix")
    assert await sweep_all(world.runtime) == 0 and world.objects()
    world.restart()  # the operator was down at expiry
    world.clock.advance(400)
    await sweep_all(world.runtime)
    assert world.objects() == []
    assert world.status("fix")["phase"] == "Expired"


async def test_a_seal_copied_onto_another_name_proves_nothing(world: World) -> None:
    world.file("fix")
    await world.reconcile("fix")
    [(kind, namespace, name)] = world.objects()
    original = world.cluster.objects[(kind, namespace, name)]
    copy_ = {
        "kind": kind,
        "metadata": {**original["metadata"], "name": "someone-elses", "uid": "other"},
    }
    world.cluster.objects[(kind, namespace, "someone-elses")] = copy_
    world.revoke("fix")
    await world.reconcile("fix")
    await sweep_all(world.runtime)
    assert world.objects() == [(kind, namespace, "someone-elses")]


async def test_a_planted_object_is_logged_once_not_every_sweep(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.cluster.objects[("ServiceAccount", "jitgrant-grants", "important-controller")] = (
        _planted_service_account()
    )
    with caplog.at_level(logging.WARNING, logger="jitgrant.sweep"):
        for _ in range(3):
            await sweep_all(world.runtime)
    assert [r.levelno for r in caplog.records if "not its seal" in r.getMessage()] == [logging.WARNING]


def _orphan(index: int, *, expires: str) -> dict[str, object]:
    body = {
        "kind": "RoleBinding",
        "metadata": {
            "namespace": "payments",
            "name": f"jit-orphan-{index}",
            "annotations": {REQUEST_ANNOTATION: f"agents/gone-{index}", EXPIRES_AT_ANNOTATION: expires},
        },
    }
    return sealed(body, key=KEY, cluster="in-cluster", request_uid=f"gone-uid-{index}")


async def test_the_sweep_decides_from_two_lists_not_a_read_per_object(world: World) -> None:
    """200 grant objects cost two LISTs (objects, requests) and a delete per stale one: no GETs."""
    live = [world.file(f"live-{i}") for i in range(3)]
    for i in range(3):
        await world.reconcile(f"live-{i}")
    world.file("recreated")
    await world.reconcile("recreated")
    # The request was deleted and filed again under the same name: its old objects must go.
    world.cluster.requests.pop(("agents", "recreated"))
    world.file("recreated", duration="5m")
    for index in range(100):
        await world.port.create_object(_orphan(index, expires="2026-01-01T13:00:00Z"))  # not yet expired
        await world.port.create_object(_orphan(100 + index, expires="2026-01-01T11:00:00Z"))  # expired
    world.restart()
    removed = await sweep_all(world.runtime)
    calls = world.port.calls
    # RoleBindings cluster-wide, the identity objects in the grants namespace, then the requests.
    assert calls.count("list_requests") == 1 and calls.count("list_labelled") == 2
    assert "get_request" not in calls and "read_object" not in calls
    assert removed == 201 and calls.count("delete_object") == 201
    left = {name for _, _, name in world.objects()}
    assert not any(name.startswith("jit-orphan") for name in left)
    kept = {body["metadata"]["labels"][REQUEST_UID_LABEL] for body in world.cluster.objects.values()}
    assert kept == set(live)  # the live grants' objects stay, nothing else
    assert sum(e.type is EventType.CLEANED_UP for e in world.audit.events) == 201


async def test_stale_objects_of_a_live_request_end_the_request_once(world: World) -> None:
    uids = [world.file(f"fix-{i}", duration="5m") for i in range(5)]
    for i in range(5):
        await world.reconcile(f"fix-{i}")
    world.restart()  # down at expiry
    world.clock.advance(400)
    # Ended through their lifecycles (which remove the bindings), so the sweep itself deletes none.
    assert await sweep_all(world.runtime) == 0
    assert world.objects() == []
    for i, uid in enumerate(uids):
        assert world.status(f"fix-{i}")["phase"] == "Expired"
        assert world.audit_types(uid).count(EventType.EXPIRED) == 1
        assert EventType.CLEANED_UP not in world.audit_types(uid)
