"""The sweep's two LISTs against an API server: every page is read (`limit`/`continue`), and the sweep
decides from them (no GET of a request per object) while keeping what is live."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import CoreV1Api
from prometheus_client import CollectorRegistry

from embedkube import EmbeddedCluster
from jitgrant.clusters import own
from jitgrant.clusters.grant_objects import list_labelled, sealed
from jitgrant.clusters.own import ClusterApi
from jitgrant.metrics import Metrics
from jitgrant.models.crd import all_crds
from jitgrant.models.vocabulary import EXPIRES_AT_ANNOTATION, REQUEST_ANNOTATION, format_time
from jitgrant.reactor.runtime import Runtime
from jitgrant.reactor.sweep import sweep_all
from jitgrant.settings import OperatorSettings
from jitgrant_testing.fakeport import FakeAudit

KEY = b"sweep-lists-test-key-0123456789abcdef"


@pytest.fixture
def api() -> Iterator[ClusterApi]:
    with EmbeddedCluster(name="lists", crd_manifests=list(all_crds().values())) as cluster:
        client = cluster.api_client()
        try:
            core = CoreV1Api(client)
            for namespace in ("agents", "payments"):
                core.create_namespace({"metadata": {"name": namespace}})
            yield ClusterApi(name="in-cluster", client=client)
        finally:
            client.close()


def _binding(index: int, *, expires: datetime, request: str, uid: str | None = None) -> dict[str, object]:
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": f"jit-{index}",
            "namespace": "payments",
            "annotations": {EXPIRES_AT_ANNOTATION: format_time(expires), REQUEST_ANNOTATION: request},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": f"agent-{index}"}],
    }
    return sealed(body, key=KEY, cluster="in-cluster", request_uid=uid or f"uid-{index}")


def _request(name: str) -> dict[str, object]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {
            "policy": "p",
            "namespace": "payments",
            "clusterRole": "view",
            "duration": "10m",
            "justification": "INC-1",
        },
    }


def test_lists_read_every_page(api: ClusterApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(own, "LIST_PAGE", 3)
    later = datetime.now(UTC) + timedelta(hours=1)
    for index in range(10):
        asyncio.run(api.create_object(_binding(index, expires=later, request=f"agents/r-{index}")))
    custom = api.custom
    for index in range(7):
        custom.create_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", "agents", "accessrequests", _request(f"r-{index}")
        )
    assert sorted(
        o.name for o in asyncio.run(list_labelled(api, grants_namespace="jitgrant-grants"))
    ) == sorted(f"jit-{i}" for i in range(10))
    assert sorted(r.name for r in asyncio.run(api.list_requests())) == sorted(f"r-{i}" for i in range(7))


def test_the_sweep_keeps_only_what_a_live_request_owns(api: ClusterApi) -> None:
    """Expired, owned by a request that is gone or by another request under the same name: removed
    in one pass. Owned by a live request: kept. Without the seal: left alone."""
    later = datetime.now(UTC) + timedelta(hours=1)
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    live = api.custom.create_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", "agents", "accessrequests", _request("live")
    )
    api.custom.create_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", "agents", "accessrequests", _request("recreated")
    )
    bindings = [
        _binding(0, expires=later, request="agents/live", uid=live["metadata"]["uid"]),
        _binding(1, expires=earlier, request="agents/live", uid=live["metadata"]["uid"]),
        _binding(2, expires=later, request="agents/gone"),
        _binding(3, expires=later, request="agents/recreated"),  # sealed for another uid
    ]
    for body in bindings:
        asyncio.run(api.create_object(body))
    planted = _binding(4, expires=earlier, request="agents/gone")
    planted["metadata"]["name"] = "planted"  # type: ignore[index]  # its seal names jit-4
    asyncio.run(api.create_object(planted))
    runtime = Runtime(
        settings=OperatorSettings(receipt_key=KEY, audit_stdout=False),
        own=api,
        audit=FakeAudit(),
        metrics=Metrics(CollectorRegistry()),
    )
    # jit-1's request is live, so the sweep hands it to its lifecycle first (here it fails: no
    # requester seal); jit-1 is in no grant record, so the sweep deletes it itself.
    assert asyncio.run(sweep_all(runtime)) == 3
    assert sorted(o.name for o in asyncio.run(list_labelled(api, grants_namespace="jitgrant-grants"))) == [
        "jit-0",
        "planted",
    ]
    after = asyncio.run(api.get_request("agents", "live"))
    assert after is not None and after.phase is not None and after.phase.value == "Failed"
