"""Dangerous permissions and system namespaces pass only when the policy names them literally."""

from __future__ import annotations

from typing import Any

import pytest

from .builders import check, policy, request, rule, rules_policy, rules_request

RBAC = "rbac.authorization.k8s.io"

DANGEROUS = [
    pytest.param(rule(["roles"], ["escalate"], groups=[RBAC]), id="escalate"),
    pytest.param(rule(["rolebindings"], ["bind"], groups=[RBAC]), id="bind"),
    pytest.param(rule(["serviceaccounts"], ["impersonate"]), id="impersonate"),
    pytest.param(rule(["secrets"], ["get"]), id="secrets"),
    pytest.param(rule(["secrets"], ["get"], names=["db-password"]), id="one-secret"),
    pytest.param(rule(["pods/exec"], ["create"]), id="pods-exec"),
    pytest.param(rule(["nodes/proxy"], ["get"]), id="nodes-proxy"),
    pytest.param(rule(["pods/attach"], ["create"]), id="pods-attach"),
    pytest.param(rule(["pods/portforward"], ["create"]), id="pods-portforward"),
    pytest.param(rule(["serviceaccounts/token"], ["create"]), id="sa-token"),
    pytest.param(rule(["*/exec"], ["create"]), id="star-exec"),
]

EVERYTHING = rule(["*"], ["*"], groups=["*"])


@pytest.mark.parametrize("requested", DANGEROUS)
def test_a_policy_wildcard_never_grants_a_dangerous_permission(requested: dict[str, Any]) -> None:
    decision = check(rules_policy(EVERYTHING), rules_request(requested))
    assert not decision.allowed
    assert len(decision.reasons) == 1
    assert " is dangerous and policy oncall-restart covers it only through a wildcard;" in decision.reasons[0]


@pytest.mark.parametrize("requested", DANGEROUS)
def test_a_policy_naming_the_permission_literally_grants_it(requested: dict[str, Any]) -> None:
    decision = check(rules_policy(requested), rules_request(requested))
    assert decision.allowed, decision.reasons


def test_the_reason_names_what_the_policy_must_write() -> None:
    decision = check(
        rules_policy(rule(["roles"], ["*"], groups=[RBAC])),
        rules_request(rule(["roles"], ["get", "escalate"], groups=[RBAC])),
    )
    assert decision.reasons == (
        "verb 'escalate' on roles.rbac.authorization.k8s.io is dangerous and policy oncall-restart covers it "
        "only through a wildcard; it is granted only where a policy rule names verb 'escalate' (lets the "
        "holder write roles with permissions it does not have) literally",
    )


def test_a_secret_reached_through_a_star_subresource_needs_the_literal_entry() -> None:
    decision = check(
        rules_policy(rule(["*/exec"], ["create"])), rules_request(rule(["pods/exec"], ["create"]))
    )
    assert decision.reasons == (
        "verb 'create' on pods/exec is dangerous and policy oncall-restart covers it only through a "
        "wildcard; it is granted only where a policy rule names resource 'pods/exec' (runs commands inside "
        "containers) literally",
    )


def test_the_literal_name_must_be_in_the_rule_that_covers_the_permission() -> None:
    # escalate is named for roles, and "*" covers clusterroles; neither rule names escalate on clusterroles.
    spec = rules_policy(
        rule(["roles"], ["escalate"], groups=[RBAC]), rule(["clusterroles"], ["*"], groups=[RBAC])
    )
    decision = check(spec, rules_request(rule(["clusterroles"], ["escalate"], groups=[RBAC])))
    assert not decision.allowed


def test_a_requested_wildcard_passes_only_where_the_policy_writes_the_wildcard() -> None:
    assert check(rules_policy(EVERYTHING), rules_request(EVERYTHING)).allowed
    listed = rule(["pods", "services"], ["get", "list"], groups=[""])
    assert not check(rules_policy(listed), rules_request(rule(["*"], ["get"]))).allowed
    assert not check(rules_policy(listed), rules_request(rule(["pods"], ["get"], groups=["*"]))).allowed


def test_a_wildcard_verb_on_secrets_needs_both_literally() -> None:
    assert not check(rules_policy(rule(["*"], ["*"])), rules_request(rule(["secrets"], ["*"]))).allowed
    assert check(rules_policy(rule(["secrets"], ["*"])), rules_request(rule(["secrets"], ["*"]))).allowed


def test_a_dangerous_permission_in_a_cluster_role_is_the_policy_authors_explicit_choice() -> None:
    # ClusterRoles are bound by reference: naming one in the policy is the literal, explicit grant.
    spec = policy(grants=[{"clusterRole": "cluster-admin"}])
    assert check(spec, request(clusterRole="cluster-admin")).allowed


# Namespaces ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "jitgrant-system"])
def test_any_namespace_never_includes_a_system_namespace(namespace: str) -> None:
    decision = check(
        rules_policy(rule(["pods"], ["get"]), namespaces=["*"]),
        rules_request(rule(["pods"], ["get"]), namespace=namespace),
    )
    assert decision.reasons == (
        f"namespace '{namespace}' is a system namespace and policy oncall-restart does not list it by name "
        "(allowed: any non-system namespace)",
    )


def test_the_operators_own_namespace_is_passed_in() -> None:
    spec = rules_policy(rule(["pods"], ["get"]), namespaces=["*"])
    req = rules_request(rule(["pods"], ["get"]), namespace="jitgrant")
    assert not check(spec, req, operator_namespace="jitgrant").allowed
    assert check(spec, req, operator_namespace="jitgrant-system").allowed


def test_a_system_namespace_listed_by_name_is_allowed() -> None:
    spec = rules_policy(rule(["pods"], ["get"]), namespaces=["payments", "kube-system"])
    assert check(spec, rules_request(rule(["pods"], ["get"]), namespace="kube-system")).allowed


def test_a_namespace_not_listed_names_the_allowed_ones() -> None:
    spec = rules_policy(rule(["pods"], ["get"]), namespaces=["payments", "checkout"])
    decision = check(spec, rules_request(rule(["pods"], ["get"]), namespace="orders"))
    assert decision.reasons == (
        "namespace 'orders' is not in policy oncall-restart (allowed: payments, checkout)",
    )


@pytest.mark.parametrize("policy_namespaces", [["*"], ["payments", "*"]])
def test_cluster_wide_scope_is_never_granted(policy_namespaces: list[str]) -> None:
    spec = rules_policy(rule(["pods"], ["get"]), namespaces=policy_namespaces)
    decision = check(spec, request(namespace="*", clusterRole="jit-restart-deployments"))
    assert decision.reasons[0].startswith(
        "namespace '*' asks for cluster-wide access, which jitgrant never grants: name one namespace"
    )


def test_a_namespace_name_the_api_server_would_refuse_is_refused() -> None:
    spec = rules_policy(rule(["pods"], ["get"]), namespaces=["*"])
    decision = check(spec, rules_request(rule(["pods"], ["get"]), namespace="Payments"))
    assert decision.reasons == (
        "namespace 'Payments' is not a valid namespace name (allowed by policy oncall-restart: "
        "any non-system namespace)",
    )
