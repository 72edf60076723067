"""End to end on a real cluster (kind, EKS): `make test PYTEST_ARGS="--real-cluster -k realcluster"`.

Prerequisites (docs/real-cluster.md): jitgrant installed with the chart (example ClusterRoles on,
`grantableClusterRoles` including jit-restart-deployments), and the kubeconfig's user allowed to create
namespaces, ServiceAccounts, GrantPolicies and AccessRequests. Everything the test creates lives in a
namespace of its own and is deleted at the end.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.realcluster

GROUP, VERSION = "jitgrant.dev", "v1alpha1"


@pytest.fixture(scope="module")
def api() -> client.ApiClient:
    config.load_kube_config()
    return client.ApiClient()


@pytest.fixture
def names(api: client.ApiClient) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    ns = {
        "agents": f"jit-e2e-agents-{suffix}",
        "target": f"jit-e2e-target-{suffix}",
        "policy": f"jit-e2e-{suffix}",
    }
    core = client.CoreV1Api(api)
    for namespace in (ns["agents"], ns["target"]):
        core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(ns["agents"], {"metadata": {"name": "agent"}})
    yield ns
    custom = client.CustomObjectsApi(api)
    with contextlib.suppress(ApiException):
        custom.delete_cluster_custom_object(GROUP, VERSION, "grantpolicies", ns["policy"])
    for namespace in (ns["agents"], ns["target"]):
        core.delete_namespace(namespace)


def _wait(
    api: client.ApiClient, namespace: str, name: str, phase: str, timeout: float = 60
) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "accessrequests", name
        )
        if (obj.get("status") or {}).get("phase") == phase:
            return obj
        time.sleep(1)
    raise AssertionError(f"{namespace}/{name} did not reach {phase}: {obj.get('status')}")


def test_grant_becomes_active_and_expires_on_a_real_cluster(
    api: client.ApiClient, names: dict[str, str]
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "grantpolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GrantPolicy",
            "metadata": {"name": names["policy"]},
            "spec": {
                "requesters": {
                    "users": [
                        client.AuthenticationV1Api(api)
                        .create_self_subject_review(
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
                        )
                        .status.user_info.username
                    ]
                },
                "namespaces": [names["target"]],
                "grants": [{"clusterRole": "jit-restart-deployments"}],
                "maxDuration": "2m",
            },
        },
    )
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        names["agents"],
        "accessrequests",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AccessRequest",
            "metadata": {"name": "e2e"},
            "spec": {
                "policy": names["policy"],
                "namespace": names["target"],
                "clusterRole": "jit-restart-deployments",
                "duration": "20s",
                "justification": "e2e",
            },
        },
    )
    active = _wait(api, names["agents"], "e2e", "Active")
    rbac = client.RbacAuthorizationV1Api(api)
    binding = rbac.read_namespaced_role_binding(active["status"]["grant"]["roleBinding"], names["target"])
    assert binding.role_ref.name == "jit-restart-deployments"
    _wait(api, names["agents"], "e2e", "Expired", timeout=90)
    with pytest.raises(ApiException) as gone:
        rbac.read_namespaced_role_binding(active["status"]["grant"]["roleBinding"], names["target"])
    assert gone.value.status == 404
