"""Continuous authorization on a real kube-apiserver (the invariant policy-changes-apply-to-live-grants): the
operator, running with the
chart's RBAC, watches GrantPolicies; a narrowed or deleted policy ends the live grant under it at once
(`PolicyChanged`), and the real RBAC authorizer stops letting the agent in. Before the rule the grant
stayed Active to its old expiry."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant_testing.realenv import RealEnvironment

from .test_jitgrant import NS, bindings_of, eventually_status, request, restart, unique


def _policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "15m",
            "approval": {"required": False},
        },
    }


@pytest.fixture(scope="module")
def requester(real_env: RealEnvironment) -> ApiClient:
    return real_env.client_for_service_account(NS, "oncall-agent")


def _live_grant(env: RealEnvironment, agent: ApiClient, policy: str) -> tuple[str, str]:
    env.apply([_policy(policy)])
    name = unique("policy-change")
    env.create_request(request(name, policy=policy, duration="10m"), client=agent)
    uid = env.wait_for_phase(NS, name, "Active", timeout=30)["metadata"]["uid"]
    assert bindings_of(env, uid)
    eventually_status(restart(env, "checkout", agent), 200, what="the grant works")
    return name, uid


def test_a_narrowed_policy_ends_the_live_grant_on_the_real_server(
    real_env: RealEnvironment, requester: ApiClient
) -> None:
    policy = unique("narrowed")
    name, uid = _live_grant(real_env, requester, policy)
    custom = CustomObjectsApi(real_env.admin)
    try:
        custom.patch_cluster_custom_object(
            API_GROUP, API_VERSION, "grantpolicies", policy, {"spec": {"namespaces": ["orders"]}}
        )
        ended = real_env.wait_for_phase(NS, name, "Revoked", timeout=30)
        assert ended["status"]["reason"] == "PolicyChanged", ended["status"]
        assert "no longer allows this grant" in ended["status"]["message"]
        assert bindings_of(real_env, uid) == []
        eventually_status(restart(real_env, "checkout", requester), 403, what="access ends with the policy")
    finally:
        custom.delete_cluster_custom_object(API_GROUP, API_VERSION, "grantpolicies", policy)


def test_a_deleted_policy_ends_its_grant_on_the_real_server(
    real_env: RealEnvironment, requester: ApiClient
) -> None:
    policy = unique("deleted")
    name, uid = _live_grant(real_env, requester, policy)
    CustomObjectsApi(real_env.admin).delete_cluster_custom_object(
        API_GROUP, API_VERSION, "grantpolicies", policy
    )
    ended = real_env.wait_for_phase(NS, name, "Revoked", timeout=30)
    assert ended["status"]["reason"] == "PolicyChanged" and "was deleted" in ended["status"]["message"]
    assert bindings_of(real_env, uid) == []
    eventually_status(restart(real_env, "checkout", requester), 403, what="access ends with the policy")
