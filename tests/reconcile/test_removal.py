"""Removing a grant's objects by the uid recorded at creation: no read first, and an object that
took the name since (another uid) is left alone."""

from __future__ import annotations

from .conftest import World


async def test_a_revocation_deletes_by_recorded_uid_without_reading(world: World) -> None:
    world.file("fix")
    await world.reconcile("fix")
    assert world.objects("RoleBinding")
    world.revoke("fix")
    before = len(world.port.calls)
    await world.reconcile("fix")
    calls = world.port.calls[before:]
    assert world.status("fix")["phase"] == "Revoked" and world.objects() == []
    assert "read_object" not in calls and "delete_object" in calls


async def test_an_object_recreated_under_the_name_is_left_alone(world: World) -> None:
    world.file("fix")
    await world.reconcile("fix")
    [key] = world.objects("RoleBinding")
    # Someone deletes the binding and creates their own under the same name (a new uid).
    world.cluster.objects[key]["metadata"]["uid"] = "someone-elses-uid"
    world.revoke("fix")
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Revoked"
    assert world.objects("RoleBinding") == [key]
