"""At grant time the ClusterRole about to be bound is read as it is now: one that gained dangerous rules
since the policy was written fails the request (`ClusterRoleWidened`) and nothing is bound. On the
fake port, whose ClusterRoles are plain objects the test edits as a platform team would."""

from __future__ import annotations

from jitgrant.audit.records import EventType as E
from jitgrant.models.vocabulary import Reason

from .conftest import World

ROLE = "jit-restart-checkout"
RESTART = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}
READ_SECRETS = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}


async def test_a_cluster_role_as_the_policy_knew_it_is_bound(world: World) -> None:
    world.cluster.add_cluster_role(ROLE, [RESTART])
    world.file("fix")
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
    assert len(world.objects("RoleBinding")) == 1


async def test_a_cluster_role_that_gained_secrets_refuses_the_grant(world: World) -> None:
    world.cluster.add_cluster_role(ROLE, [RESTART, READ_SECRETS])
    uid = world.file("fix")
    await world.reconcile("fix")
    status = world.status("fix")
    assert status["phase"] == "Failed" and status["reason"] == Reason.CLUSTER_ROLE_WIDENED, status
    assert "secrets" in status["message"] and "acceptDangerous" in status["message"]
    assert world.objects("RoleBinding") == []
    assert E.GRANTED not in world.audit_types(uid) and world.audit_types(uid)[-1] is E.FAILED
    assert world.events.of("fix")[-1] == ("Warning", Reason.CLUSTER_ROLE_WIDENED)


async def test_a_policy_that_accepts_the_danger_lets_the_grant_through(world: World) -> None:
    world.cluster.add_cluster_role(ROLE, [RESTART, READ_SECRETS])
    spec = world.cluster.policies["auto"]["spec"]
    spec["grants"] = [{"clusterRole": ROLE, "acceptDangerous": ["secrets"]}]
    world.file("fix")
    await world.reconcile("fix")
    assert world.status("fix")["phase"] == "Active"
