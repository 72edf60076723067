"""Namespaces by label (issue 31 §4) on the real kube-apiserver: a policy's namespaceSelector admits a
labelled namespace, a label removed during the grant ends it (PolicyChanged, as a narrowed policy
does) and the real RBAC authorizer stops letting the agent in; a labelled system namespace is never
selected."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant_testing.environment import wait_until
from jitgrant_testing.realenv import RealEnvironment

from .test_jitgrant import NS, request, unique


def _status_of(call: Any) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


@pytest.fixture
def labelled(real_env: RealEnvironment) -> Iterator[tuple[str, str, str]]:
    """A namespace carrying the test's own label, and a policy selecting namespaces by it."""
    suffix = secrets.token_hex(3)
    namespace, key, policy = f"sel-{suffix}", "jitgrant.test/team", f"by-label-{suffix}"
    core = CoreV1Api(real_env.admin)
    core.create_namespace({"metadata": {"name": namespace, "labels": {key: suffix}}})
    real_env.apply(
        [
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "GrantPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                    "target": {"type": "InCluster"},
                    "namespaceSelector": {"matchLabels": {key: suffix}},
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "maxDuration": "15m",
                    "approval": {"required": False},
                },
            }
        ]
    )
    try:
        yield namespace, key, policy
    finally:
        CustomObjectsApi(real_env.admin).delete_cluster_custom_object(
            API_GROUP, API_VERSION, "grantpolicies", policy
        )
        core.delete_namespace(namespace)


def test_a_label_removed_during_a_grant_ends_it_on_the_real_server(
    real_env: RealEnvironment, labelled: tuple[str, str, str]
) -> None:
    namespace, key, policy = labelled
    agent = real_env.client_for_service_account(NS, "oncall-agent")
    read = lambda: AppsV1Api(agent).read_namespaced_deployment("checkout", namespace)  # noqa: E731
    assert _status_of(read) == 403
    name = unique("by-label")
    real_env.create_request(request(name, policy=policy, duration="10m", namespace=namespace), client=agent)
    real_env.wait_for_phase(NS, name, "Active", timeout=30)
    # The RoleBinding reaches the authorizer's informer a moment later; 404: allowed, no such object.
    wait_until(lambda: _status_of(read) == 404, timeout=20, what="the grant works")

    CoreV1Api(real_env.admin).patch_namespace(namespace, {"metadata": {"labels": {key: None}}})
    ended = real_env.wait_for_phase(NS, name, "Revoked", timeout=30)
    assert ended["status"]["reason"] == "PolicyChanged", ended["status"]
    assert f"non-system namespaces labelled {key}=" in ended["status"]["message"]
    wait_until(lambda: _status_of(read) == 403, timeout=20, what="access ends with the label")


def test_a_labelled_system_namespace_is_never_selected(
    real_env: RealEnvironment, labelled: tuple[str, str, str]
) -> None:
    namespace, key, policy = labelled
    suffix = namespace.removeprefix("sel-")
    core = CoreV1Api(real_env.admin)
    core.patch_namespace("kube-public", {"metadata": {"labels": {key: suffix}}})
    try:
        agent = real_env.client_for_service_account(NS, "oncall-agent")
        name = unique("system")
        real_env.create_request(request(name, policy=policy, namespace="kube-public"), client=agent)
        denied = real_env.wait_for_phase(NS, name, "Denied", timeout=30)
        assert denied["status"]["reason"] == "PolicyRefused"
        assert "namespace 'kube-public' is a system namespace" in denied["status"]["message"]
    finally:
        core.patch_namespace("kube-public", {"metadata": {"labels": {key: None}}})
