"""The CRD upgrade path, at the API level: the previous chart version's CRDs
(tests/chart/previous-crds/, as the first released chart shipped them, `git show 7bb3d8f:crds/...`)
hold a policy and a request in the embedded API server; the CRDs the current chart renders (its
`crds.yaml` template, with labels and helm.sh/resource-policy) replace them as `helm upgrade` does (an
update of each CRD object), and the stored objects stay readable, listable and updatable under the new
schema. test_helm_upgrade.py does the same with Helm itself on a real kube-apiserver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi

from embedkube import EmbeddedCluster

from .conftest import render

PREVIOUS = Path(__file__).parent / "previous-crds"
GROUP, VERSION = "jitgrant.dev", "v1alpha1"


def crds(directory: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(directory.glob("*.yaml"))]


@pytest.fixture
def admin() -> Iterator[ApiClient]:
    cluster = EmbeddedCluster(name="upgrade", crd_manifests=crds(PREVIOUS))
    cluster.start()
    client = cluster.api_client()
    try:
        yield client
    finally:
        client.close()
        cluster.stop()


POLICY = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "GrantPolicy",
    "metadata": {"name": "oncall-restart"},
    "spec": {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
    },
}
REQUEST = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "AccessRequest",
    "metadata": {"name": "restart-checkout", "namespace": "agents"},
    "spec": {
        "policy": "oncall-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": "10m",
        "justification": "INC-7 stuck pods",
    },
}


@pytest.mark.parametrize("keep", [True, False])
def test_requests_stored_under_the_previous_crds_stay_readable_after_the_upgrade(
    admin: ApiClient, chart: helm.Chart, keep: bool
) -> None:
    custom = CustomObjectsApi(admin)
    CoreV1Api(admin).create_namespace({"metadata": {"name": "agents"}})
    custom.create_cluster_custom_object(GROUP, VERSION, "grantpolicies", POLICY)
    custom.create_namespaced_custom_object(GROUP, VERSION, "agents", "accessrequests", REQUEST)
    before = custom.get_namespaced_custom_object(
        GROUP, VERSION, "agents", "accessrequests", "restart-checkout"
    )

    # `helm upgrade`: each CRD object, as the chart renders it, updated in place.
    extensions = ApiextensionsV1Api(admin)
    rendered = render(chart, {"crds": {"enabled": True, "keep": keep}})
    current = [m for m in rendered if m["kind"] == "CustomResourceDefinition"]
    assert {c["metadata"]["name"] for c in current} == {c["metadata"]["name"] for c in crds(PREVIOUS)}
    for crd in current:
        live = extensions.read_custom_resource_definition(crd["metadata"]["name"])
        crd["metadata"]["resourceVersion"] = live.metadata.resource_version
        extensions.replace_custom_resource_definition(crd["metadata"]["name"], crd)
        served = extensions.read_custom_resource_definition(crd["metadata"]["name"])
        assert served.spec.versions[0].schema.open_apiv3_schema.to_dict() != {}
        assert served.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
        policy = (served.metadata.annotations or {}).get("helm.sh/resource-policy")
        assert policy == ("keep" if keep else None)

    after = custom.get_namespaced_custom_object(
        GROUP, VERSION, "agents", "accessrequests", "restart-checkout"
    )
    assert after["spec"] == before["spec"] and after["metadata"]["uid"] == before["metadata"]["uid"]
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "agents", "accessrequests")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["restart-checkout"]
    policy = custom.get_cluster_custom_object(GROUP, VERSION, "grantpolicies", "oncall-restart")
    assert policy["spec"]["maxDuration"] == "15m"
    # An update validated by the new schema (and its CEL rules: the spec is unchanged) is accepted.
    labelled = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "agents",
        "accessrequests",
        "restart-checkout",
        {"metadata": {"labels": {"team": "sre"}}},
    )
    assert labelled["metadata"]["labels"] == {"team": "sre"}
