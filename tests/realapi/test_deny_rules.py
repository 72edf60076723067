"""Deny rules (issue 31 §5) on the real kube-apiserver: "never delete pods", dodged through an
aggregated ClusterRole.

The policy names an aggregated ClusterRole that reads pods, and denies `delete pods`. After the
request is admitted and while it waits for a human, someone who may create ClusterRoles (not edit
policies) adds a component ClusterRole carrying the aggregation label and `delete pods`: the real
kube-controller-manager folds it into the policy's ClusterRole. The approval then activates the
grant, and the grant-time check on the ClusterRole's live rules refuses it (`DenyRuleMatched`, naming
the rule); nothing is bound and the agent cannot delete a pod. A policy naming that ClusterRole now is
refused at apply.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.models import API_GROUP, API_VERSION, DenyRule
from jitgrant.models.vocabulary import APPROVE_ANNOTATION
from jitgrant_testing.environment import wait_until
from jitgrant_testing.realenv import RELEASE, RealEnvironment

from .test_jitgrant import NS, bindings_of, request, unique

NO_POD_DELETE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "deletecollection"]}


@pytest.fixture
def aggregated(real_env: RealEnvironment) -> Iterator[tuple[str, str]]:
    """An aggregated ClusterRole the operator may bind (added to the chart's bind allowlist for the
    test), its one component reading pods, and the label that aggregates into it."""
    suffix = secrets.token_hex(3)
    name, label = f"jit-agg-{suffix}", f"jitgrant.test/agg-{suffix}"
    rbac = RbacAuthorizationV1Api(real_env.admin)
    rbac.create_cluster_role(
        {
            "metadata": {"name": name},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]},
            "rules": [],
        }
    )
    rbac.create_cluster_role(
        {
            "metadata": {"name": f"{name}-read", "labels": {label: "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        }
    )
    operator_role = real_env.admin.sanitize_for_serialization(rbac.read_cluster_role(RELEASE))
    rules = operator_role["rules"]
    bind = next(rule for rule in rules if "bind" in rule.get("verbs", ()))
    bind["resourceNames"] = [*bind["resourceNames"], name]
    rbac.patch_cluster_role(RELEASE, {"rules": rules})
    wait_until(
        lambda: _rules(real_env, name) == [("get", "pods"), ("list", "pods")],
        timeout=30,
        what="the aggregation controller filled the ClusterRole",
    )
    try:
        yield name, label
    finally:
        bind["resourceNames"] = [n for n in bind["resourceNames"] if n != name]
        rbac.patch_cluster_role(RELEASE, {"rules": rules})
        for role in (name, f"{name}-read", f"{name}-sneaky"):
            try:
                rbac.delete_cluster_role(role)
            except ApiException as exc:
                assert exc.status == 404, exc.body


def _rules(env: RealEnvironment, name: str) -> list[tuple[str, str]]:
    role = RbacAuthorizationV1Api(env.admin).read_cluster_role(name)
    return sorted(
        (verb, resource) for rule in role.rules or () for verb in rule.verbs for resource in rule.resources
    )


def _policy(name: str, cluster_role: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": cluster_role}],
            "maxDuration": "15m",
            "approval": {"required": True, "approvers": {"users": ["approver"]}},
            "deny": [NO_POD_DELETE],
        },
    }


def test_a_deny_rule_dodged_through_an_aggregated_cluster_role_is_refused_at_grant_time(
    real_env: RealEnvironment, aggregated: tuple[str, str]
) -> None:
    role, label = aggregated
    policy = unique("deny-agg")
    custom, rbac = CustomObjectsApi(real_env.admin), RbacAuthorizationV1Api(real_env.admin)
    real_env.apply([_policy(policy, role)])
    agent = real_env.client_for_service_account(NS, "oncall-agent")
    real_env.allow_to_approve(NS, user="approver")
    approver = real_env.client_for_user("approver")
    try:
        name = unique("deny-agg")
        real_env.create_request(request(name, policy=policy, clusterRole=role, duration="5m"), client=agent)
        real_env.wait_for_phase(NS, name, "Pending", timeout=30)

        # The dodge: a component ClusterRole with the aggregation label carries delete pods.
        rbac.create_cluster_role(
            {"metadata": {"name": f"{role}-sneaky", "labels": {label: "true"}}, "rules": [NO_POD_DELETE]}
        )
        wait_until(
            lambda: ("delete", "pods") in _rules(real_env, role),
            timeout=30,
            what="the aggregation controller folded delete pods into the policy's ClusterRole",
        )
        real_env.annotate_request(NS, name, {APPROVE_ANNOTATION: "INC-7 checked"}, client=approver)
        failed = real_env.wait_for_phase(NS, name, "Failed", timeout=30)
        assert failed["status"]["reason"] == "DenyRuleMatched", failed["status"]
        message = failed["status"]["message"]
        assert f"ClusterRole '{role}' carries permissions a deny rule forbids" in message
        assert "delete pods" in message and "meets spec.deny[0] (verbs delete, deletecollection" in message
        assert bindings_of(real_env, failed["metadata"]["uid"]) == []
        pods = CoreV1Api(agent)
        with pytest.raises(ApiException) as refused:
            pods.delete_collection_namespaced_pod("payments")
        assert refused.value.status == 403

        # And a policy naming the ClusterRole as it is now is refused at apply, naming the rule.
        with pytest.raises(ApiException) as at_apply:
            custom.create_cluster_custom_object(
                API_GROUP, API_VERSION, "grantpolicies", _policy(unique("deny-agg-new"), role)
            )
        assert at_apply.value.status == 422, at_apply.value.body
        refusal = json.loads(at_apply.value.body)["message"]
        assert "(DenyRuleMatched)" in refusal and "spec.deny[0]" in refusal and "delete pods" in refusal
    finally:
        custom.delete_cluster_custom_object(API_GROUP, API_VERSION, "grantpolicies", policy)


def test_the_operators_cluster_wide_deny_rules_hold_for_every_policy(
    real_env: RealEnvironment, aggregated: tuple[str, str]
) -> None:
    """The chart's denyRules (--deny-rules): a policy with no deny rule of its own naming a ClusterRole
    that reads pods is refused at apply once the operator denies `get pods` everywhere."""
    role, _ = aggregated
    runtime = real_env.operator.runtime
    assert runtime is not None
    before = runtime.settings
    no_pod_reads = DenyRule.model_validate({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    runtime.settings = before.model_copy(update={"deny_rules": (*before.deny_rules, no_pod_reads)})
    try:
        body = _policy(unique("wide"), role)
        del body["spec"]["deny"]
        with pytest.raises(ApiException) as at_apply:
            CustomObjectsApi(real_env.admin).create_cluster_custom_object(
                API_GROUP, API_VERSION, "grantpolicies", body
            )
        assert at_apply.value.status == 422, at_apply.value.body
        refusal = json.loads(at_apply.value.body)["message"]
        assert "the operator's cluster-wide deny rule denyRules[0]" in refusal and "get pods" in refusal
    finally:
        runtime.settings = before
