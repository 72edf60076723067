"""The sweep over a fleet, on the in-memory port: each target cluster (by identity: two of them share
a name) is swept, and the operator's AccessRequests are listed once per sweep, not once per target."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jitgrant.clusters.grant_objects import sealed
from jitgrant.clusters.port import GrantTarget
from jitgrant.models import Target
from jitgrant.models.vocabulary import EXPIRES_AT_ANNOTATION, REQUEST_ANNOTATION, format_time
from jitgrant.reactor.sweep import RequestsOnce, sweep_all, sweep_cluster
from jitgrant_testing.fakeport import FakeCluster, FakePort

from .conftest import AUTO_POLICY, KEY, NS, World

ROLE = "arn:aws:iam::111122223333:role/jitgrant-target"
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")


def binding(name: str) -> dict[str, Any]:
    return {
        "kind": "RoleBinding",
        "metadata": {
            "namespace": "payments",
            "name": name,
            "annotations": {
                EXPIRES_AT_ANNOTATION: "2020-01-01T00:00:00Z",
                REQUEST_ANNOTATION: f"agents/{name}",
            },
        },
    }


async def test_every_same_named_target_is_swept_and_requests_are_listed_once(world: World) -> None:
    targets: dict[str, FakePort] = {}
    for region in REGIONS:
        target = Target.model_validate(
            {"type": "EKS", "eks": {"clusterName": "prod", "region": region, "roleArn": ROLE}}
        )
        world.cluster.add_policy(
            f"prod-{region}", {**AUTO_POLICY, "target": target.model_dump(by_alias=True)}
        )
        cluster = FakeCluster()
        cluster.namespaces.add("payments")
        port = FakePort(cluster, name=target.cluster)
        await port.create_object(
            sealed(binding(f"jit-left-{region}"), key=KEY, cluster=port.name, request_uid="gone")
        )
        targets[target.cluster] = port

    async def housekeeping(target: Target) -> GrantTarget:
        return targets[target.cluster]  # a fake cluster per identity: what the operator reaches

    world.runtime.housekeeping_cluster = housekeeping  # type: ignore[method-assign]
    world.port.calls.clear()
    assert await sweep_all(world.runtime) == len(REGIONS)
    assert all(port.cluster.objects == {} for port in targets.values())
    assert world.port.calls.count("list_requests") == 1


async def test_an_object_whose_request_is_newer_than_the_shared_list_is_read_again_and_kept(
    world: World,
) -> None:
    """Clusters sweep on their own schedules and share one list of requests: a cluster that lists its
    objects after that list was taken may find a grant whose request the list cannot show. Its
    request is read again (one GET) and the grant is kept, not removed as an orphan."""
    target = FakePort(FakeCluster(), name="arn:aws:eks:eu-west-1:111122223333:cluster/prod")
    target.cluster.namespaces.add("payments")
    once = RequestsOnce(world.runtime)
    await once.get()  # another cluster's sweep took the list
    uid = world.file("late")  # filed since; granted in the target before its sweep lists
    live = binding("jit-late")
    live["metadata"]["annotations"] = {
        EXPIRES_AT_ANNOTATION: format_time(world.clock() + timedelta(hours=1)),
        REQUEST_ANNOTATION: f"{NS}/late",
    }
    await target.create_object(sealed(live, key=KEY, cluster=target.name, request_uid=uid))
    world.port.calls.clear()
    assert await sweep_cluster(world.runtime, target, once) == 0
    assert [key[2] for key in target.cluster.objects] == ["jit-late"]
    assert world.port.calls.count("get_request") == 1 and "list_requests" not in world.port.calls
