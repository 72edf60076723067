"""identity-and-approvals.md, "Dangerous permissions", end to end: the operator, its webhooks and RBAC in the
embedded cluster, as the
chart installs them. Each attack is tried and refused with the reason shown."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
from kubernetes.client import AdmissionregistrationV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.own import ClusterApi
from jitgrant.models import GrantPolicySpec
from jitgrant.operator import policy_status
from jitgrant.reactor.fencing import FencedCluster
from jitgrant.reconcile.policies import cluster_role_refusal
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests, wait_until

GROUP, VERSION = "jitgrant.dev", "v1alpha1"
EVERYONE_POLICY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "GrantPolicy",
    "metadata": {"name": "everyone"},
    "spec": {
        "requesters": {"groups": ["system:authenticated"]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
    },
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Environment]:
    monkeypatch.setattr(policy_status, "RECHECK_SECONDS", 1.0)
    with Environment(sweep_interval=timedelta(seconds=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        environment.create_deployment("payments", "checkout")
        environment.allow_to_request("agents", service_account="oncall-agent")
        yield environment


def policy(name: str, **spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(EVERYONE_POLICY)
    body["metadata"]["name"] = name
    body["spec"]["requesters"] = {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]}
    body["spec"].update(spec)
    return body


def request(name: str, policy_name: str, *, namespace: str = "agents") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "policy": policy_name,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": "5m",
            "justification": "INC-1",
        },
    }


def apply_refusal(env: Environment, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as raised:
        CustomObjectsApi(env.admin).create_cluster_custom_object(GROUP, VERSION, "grantpolicies", body)
    return str(raised.value.body)


def store_past_the_webhook(env: Environment, body: dict[str, Any]) -> None:
    """What an admin who bypasses the GrantPolicy webhook (or a policy older than it) leaves stored."""
    admission = AdmissionregistrationV1Api(env.admin)
    saved = env.admin.sanitize_for_serialization(admission.read_validating_webhook_configuration("jitgrant"))
    hooks = [hook for hook in saved["webhooks"] if hook["name"] != "validate-policy.jitgrant.dev"]
    admission.patch_validating_webhook_configuration("jitgrant", {"webhooks": hooks})
    try:
        CustomObjectsApi(env.admin).create_cluster_custom_object(GROUP, VERSION, "grantpolicies", body)
    finally:
        admission.patch_validating_webhook_configuration("jitgrant", {"webhooks": saved["webhooks"]})


def ready_condition(env: Environment, name: str, *, status: str, timeout: float = 20.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = CustomObjectsApi(env.admin).get_cluster_custom_object(GROUP, VERSION, "grantpolicies", name)
        for condition in (body.get("status") or {}).get("conditions") or ():
            if condition["type"] == "Ready" and condition["status"] == status:
                return dict(condition)
        return None

    return wait_until(reached, timeout=timeout, what=f"GrantPolicy {name} Ready={status}")


# --- §4: policies that admit everyone, and invalid policies -----------------------------------------


def test_a_policy_naming_system_authenticated_is_refused_at_apply_time(env: Environment) -> None:
    message = apply_refusal(env, EVERYONE_POLICY)
    assert "GrantPolicy everyone refused (PolicyInvalid): spec.requesters: requesters name " in message
    assert "system:authenticated, which matches every caller of its kind" in message
    assert "dangerouslyAllowSystemGroups: true" in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"approval": {"required": True}}, "approval.required needs approval.approvers"),
        (
            {"justification": {"pattern": "^(INC"}},
            "spec.justification.pattern: pattern '^(INC' is not a valid",
        ),
        ({"defaultDuration": "1h"}, "defaultDuration 1h is longer than maxDuration 15m"),
    ],
)
def test_an_unusable_policy_is_refused_at_apply_time_naming_the_field(
    env: Environment, spec: dict[str, Any], expected: str
) -> None:
    message = apply_refusal(env, policy("broken", **spec))
    assert "GrantPolicy broken refused (PolicyInvalid)" in message
    assert expected in message


def _refused_at_admission(env: Environment, body: dict[str, Any], client: Any) -> str:
    """The refusal's message; the request was never stored (issue 24 §5)."""
    with pytest.raises(ApiException) as refused:
        env.create_request(body, client=client)
    assert refused.value.status == 403, refused.value.body
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    with pytest.raises(ApiException) as missing:
        CustomObjectsApi(env.admin).get_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", namespace, "accessrequests", name
        )
    assert missing.value.status == 404
    return str(refused.value.body)


def test_requests_under_an_everyone_policy_stored_past_the_webhook_are_refused_as_invalid(
    env: Environment,
) -> None:
    store_past_the_webhook(env, EVERYONE_POLICY)
    # The attackers: an unrelated user and a ServiceAccount of another namespace.
    env.allow_to_request("agents", user="mallory")
    env.allow_to_request("orders", service_account="intruder")
    mallory = env.client_for_user("mallory", groups=("devs",))
    intruder = env.client_for_service_account("orders", "intruder")
    for body, client in (
        (request("by-mallory", "everyone"), mallory),
        (request("by-intruder", "everyone", namespace="orders"), intruder),
    ):
        message = _refused_at_admission(env, body, client)
        assert (
            "PolicyInvalid: GrantPolicy 'everyone' is invalid: spec.requesters: requesters name "
            "system:authenticated"
        ) in message
    assert env.jit_bindings("payments") == []
    condition = ready_condition(env, "everyone", status="False")
    assert condition["reason"] == "PolicyInvalid"


def test_an_invalid_policy_is_not_reported_as_missing(env: Environment) -> None:
    store_past_the_webhook(env, policy("no-approvers", approval={"required": True}))
    agent = env.client_for_service_account("agents", "oncall-agent")
    message = _refused_at_admission(env, request("under-broken", "no-approvers"), agent)
    assert "PolicyInvalid: GrantPolicy 'no-approvers' is invalid" in message
    assert "spec.approval: approval.required needs approval.approvers (users or groups)" in message


# --- §4: the Ready condition ---------------------------------------------------------------------------


def test_a_usable_policy_is_ready(env: Environment) -> None:
    condition = ready_condition(env, "oncall-restart", status="True")
    assert condition["reason"] == "PolicyReady"


def test_a_missing_or_unbindable_cluster_role_makes_the_policy_unready(env: Environment) -> None:
    env.apply([policy("missing-role", grants=[{"clusterRole": "jit-nowhere"}])])
    assert ready_condition(env, "missing-role", status="False")["reason"] in (
        "ClusterRoleNotFound",
        "ClusterRoleNotBindable",
    )
    env.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "jit-unlisted"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}],
            },
            policy("unlisted-role", grants=[{"clusterRole": "jit-unlisted"}]),
        ]
    )
    condition = ready_condition(env, "unlisted-role", status="False")
    assert condition["reason"] == "ClusterRoleNotBindable"
    assert "grantableClusterRoles" in condition["message"]


# --- §5: a ClusterRole widened after the policy was written --------------------------------------------


def widen(env: Environment) -> None:
    rbac = RbacAuthorizationV1Api(env.admin)
    role = env.admin.sanitize_for_serialization(rbac.read_cluster_role("jit-restart-checkout"))
    rules = [*role["rules"], {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    rbac.patch_cluster_role("jit-restart-checkout", {"rules": rules})


def test_a_cluster_role_that_gained_get_secrets_is_not_bound(env: Environment) -> None:
    """Widened after the request was admitted and approved by a human, before its grant: the grant-time
    check on the live rules refuses it. (Widened first, the policy turns not Ready and the webhook
    refuses the request itself: issue 24 §5.)"""
    approval = {"required": True, "approvers": {"groups": ["sre-oncall"]}}
    env.apply([policy("widened-later", grants=[{"clusterRole": "jit-restart-checkout"}], approval=approval)])
    env.allow_to_approve("agents", group="sre-oncall")
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request("after-widening", "widened-later"), client=agent)
    env.wait_for_phase("agents", "after-widening", "Pending")
    widen(env)
    approver = env.client_for_user("alice", groups=("sre-oncall",))
    env.annotate_request("agents", "after-widening", {"jitgrant.dev/approve": "ok"}, client=approver)
    failed = env.wait_for_phase("agents", "after-widening", "Failed")
    assert failed["status"]["reason"] == "ClusterRoleWidened"
    assert failed["status"]["message"].startswith(
        "ClusterRole 'jit-restart-checkout' holds dangerous permissions policy widened-later does not "
        "accept: resource 'secrets' (verbs get: exposes credentials)"
    )
    assert env.jit_bindings("payments") == []
    flagged = ready_condition(env, "oncall-restart", status="False")
    assert flagged["reason"] == "ClusterRoleWidened"


def test_a_policy_that_accepts_the_entry_grants_the_widened_role(env: Environment) -> None:
    widen(env)
    patch = {"spec": {"grants": [{"clusterRole": "jit-restart-checkout", "acceptDangerous": ["secrets"]}]}}
    CustomObjectsApi(env.admin).patch_cluster_custom_object(
        GROUP, VERSION, "grantpolicies", "oncall-restart", patch
    )
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request("accepted", "oncall-restart"), client=agent)
    assert env.wait_for_phase("agents", "accepted", "Active")["status"]["phase"] == "Active"
    assert ready_condition(env, "oncall-restart", status="True")["reason"] == "PolicyReady"


def test_the_grant_time_check_sees_through_the_leader_fence(env: Environment) -> None:
    """With --leader-elect the own cluster is a FencedCluster around the client: the check must still
    read the ClusterRole (it used to see no client and skip it)."""
    widen(env)
    fenced = FencedCluster(ClusterApi(name="in-cluster", client=env.admin), cast(Any, None))
    spec = GrantPolicySpec.model_validate(
        load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")[0]["spec"]
    )
    reason = asyncio.run(
        cluster_role_refusal(
            fenced, policy_name="oncall-restart", policy=spec, cluster_role="jit-restart-checkout"
        )
    )
    assert reason is not None and "resource 'secrets' (verbs get: exposes credentials)" in reason
