"""The sweep on the in-memory port: it removes what the operator made and no longer needs, and never
touches an object it cannot prove it made, however it is labelled."""

from __future__ import annotations

import logging

import pytest

from jitgrant.audit.records import EventType
from jitgrant.clusters.grant_objects import sealed
from jitgrant.handlers.sweep import sweep_all
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_ANNOTATION,
    REQUEST_UID_LABEL,
)

from .conftest import KEY, World


def _planted_service_account() -> dict[str, object]:
    return {
        "kind": "ServiceAccount",
        "metadata": {
            "namespace": "kube-system",
            "name": "important-controller",
            "uid": "sa-uid",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: "made-up"},
            "annotations": {EXPIRES_AT_ANNOTATION: "2020-01-01T00:00:00Z"},
        },
    }


async def test_a_labelled_object_without_the_seal_is_counted_and_never_deleted(world: World) -> None:
    world.cluster.objects[("ServiceAccount", "kube-system", "important-controller")] = (
        _planted_service_account()
    )
    assert await sweep_all(world.runtime) == 0
    assert ("ServiceAccount", "kube-system", "important-controller") in world.cluster.objects
    assert "delete_object" not in world.port.calls
    metrics = world.runtime.metrics.render()
    assert b'jitgrant_unproven_objects{cluster="in-cluster",kind="ServiceAccount"} 1.0' in metrics


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
    world.cluster.objects[("ServiceAccount", "kube-system", "important-controller")] = (
        _planted_service_account()
    )
    with caplog.at_level(logging.WARNING, logger="jitgrant.sweep"):
        for _ in range(3):
            await sweep_all(world.runtime)
    assert [r.levelno for r in caplog.records if "not its seal" in r.getMessage()] == [logging.WARNING]
