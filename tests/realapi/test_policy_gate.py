"""Issue 24 §5 on the real kube-apiserver: a request naming a policy that does not exist or is not
Ready is refused by the validating webhook with the words of its dry run, and nothing is stored (it
used to be stored, then left Denied or Failed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.vocabulary import DRY_RUN_WARNING
from jitgrant_testing.environment import wait_until
from jitgrant_testing.realenv import RealEnvironment

from .test_jitgrant import NS, request, unique


@pytest.fixture(scope="module")
def agent(real_env: RealEnvironment) -> ApiClient:
    return real_env.client_for_service_account(NS, "oncall-agent")


def _refusal(agent: ApiClient, body: dict[str, Any], *, dry_run: bool) -> str:
    with pytest.raises(ApiException) as refused:
        CustomObjectsApi(agent).create_namespaced_custom_object(
            API_GROUP, API_VERSION, NS, "accessrequests", body, **({"dry_run": "All"} if dry_run else {})
        )
    assert refused.value.status == 403, refused.value.body
    message = str(json.loads(refused.value.body)["message"])
    return message.split("denied the request: ", 1)[1]


def _stored(real_env: RealEnvironment, name: str) -> bool:
    try:
        CustomObjectsApi(real_env.admin).get_namespaced_custom_object(
            API_GROUP, API_VERSION, NS, "accessrequests", name
        )
    except ApiException as exc:
        assert exc.status == 404, exc.body
        return False
    return True


def _same_answer(real_env: RealEnvironment, agent: ApiClient, body: dict[str, Any]) -> str:
    """The real refusal, checked equal to the dry run's and leaving nothing stored."""
    dry = _refusal(agent, body, dry_run=True)
    real = _refusal(agent, body, dry_run=False)
    assert dry == f"{DRY_RUN_WARNING}: {real}"
    assert not _stored(real_env, body["metadata"]["name"])
    return real


def test_a_request_naming_a_policy_that_does_not_exist_is_never_stored(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    body = request(unique("typo"), policy="oncall-restrat")
    message = _same_answer(real_env, agent, body)
    assert message.startswith("PolicyNotFound: GrantPolicy 'oncall-restrat' does not exist"), message


def test_a_request_under_a_policy_that_is_not_ready_is_never_stored(
    real_env: RealEnvironment, agent: ApiClient
) -> None:
    name = unique("not-ready")
    policy = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-no-such-role"}],
            "maxDuration": "15m",
            "approval": {"required": False},
        },
    }
    custom = CustomObjectsApi(real_env.admin)
    real_env.apply([policy])
    try:
        runtime = real_env.operator.runtime
        assert runtime is not None

        def judged() -> bool:
            # The webhook reads Ready from the replica's watch: wait until both have it.
            state = runtime.watched_ready.get(name)
            return state is not None and state.status == "False"

        wait_until(judged, timeout=30, what="the policy judged not Ready")
        body = request(unique("under-broken"), policy=name, clusterRole="jit-no-such-role")
        message = _same_answer(real_env, agent, body)
        assert message.startswith(f"PolicyNotReady: GrantPolicy '{name}' is not Ready (ClusterRoleNot"), (
            message
        )
        assert "jit-no-such-role" in message and "would end Failed" in message
    finally:
        custom.delete_cluster_custom_object(API_GROUP, API_VERSION, "grantpolicies", name)
