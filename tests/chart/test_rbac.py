"""The chart's RBAC grants every API verb the operator's code uses (operator/jitgrant/permissions.py)
and nothing broader, compared scope by scope (cluster-wide, the grants namespace, the operator's own
namespace, each of grantNamespaces) as (apiGroup, resource, verb, resourceName) atoms both ways."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from jitgrant.cli.main import build_parser
from jitgrant.cli.run import settings_from_args
from jitgrant.clusters.leader import LEASE_NAME
from jitgrant.permissions import (
    CLEANUP_HOOK_PERMISSIONS,
    GRANT_WRITE_PERMISSIONS,
    GRANTABLE_CLUSTER_ROLE_PERMISSIONS,
    GRANTS_NAMESPACE_PERMISSIONS,
    INLINE_RULES_PERMISSIONS,
    LEADER_LEASE,
    OPERATOR_NAMESPACE_PERMISSIONS,
    OPERATOR_PERMISSIONS,
    PROTECTED_NAMESPACES,
    UNINSTALL_HOOK_PERMISSIONS,
    Permission,
    atoms,
)
from jitgrant.settings import OperatorSettings

from .conftest import COMBINATIONS, NAMESPACE, Manifest, notes, only, render

Atom = tuple[str, str, str, str]
GRANTS_NAMESPACE = "jitgrant-grants"
CLUSTER = "<cluster-wide>"
# On top of the shared combinations: grants allowed only in listed namespaces.
SCOPED = {
    **COMBINATIONS,
    "grant-namespaces": {"grantNamespaces": ["payments", "orders"]},
    "grant-namespaces-inline": {"grantNamespaces": ["payments"], "inlineRules": {"enabled": True}},
    "other-grants-namespace": {"grantsNamespace": "agent-identities", "createGrantsNamespace": False},
}


def rule_atoms(rules: list[dict[str, Any]]) -> set[Atom]:
    """(apiGroup, resource, verb, resourceName) of RBAC rules; "" resourceName means any name."""
    result: set[Atom] = set()
    for rule in rules:
        assert "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        result.add((group, resource, verb, name))
    return result


def granted_by_scope(manifests: list[Manifest], account: str) -> dict[str, set[Atom]]:
    """What the chart gives the ServiceAccount `account` of the operator's namespace, per scope:
    CLUSTER for ClusterRoleBindings, else the namespace of each RoleBinding (as the API server
    resolves it: a RoleBinding to a ClusterRole grants its rules in that namespace only)."""
    roles = {
        (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]): m.get("rules") or []
        for m in manifests
        if m["kind"] in ("Role", "ClusterRole")
    }
    subject = {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    scopes: dict[str, set[Atom]] = {}
    for binding in manifests:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if subject not in binding["subjects"]:
            continue
        namespace = binding["metadata"].get("namespace", "")
        ref = binding["roleRef"]
        key = (ref["kind"], namespace if ref["kind"] == "Role" else "", ref["name"])
        assert key in roles, f"{binding['kind']} {binding['metadata']['name']} refers to a missing {key}"
        scope = CLUSTER if binding["kind"] == "ClusterRoleBinding" else namespace
        scopes.setdefault(scope, set()).update(rule_atoms(roles[key]))
    return scopes


def expected_by_scope(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, frozenset[Atom]]:
    roles = tuple(values.get("grantableClusterRoles", defaults["grantableClusterRoles"]))
    inline = values.get("inlineRules", {}).get("enabled", False)
    grants_namespace = values.get("grantsNamespace", defaults["grantsNamespace"])
    listed = values.get("grantNamespaces", defaults["grantNamespaces"])
    writes = atoms(GRANT_WRITE_PERMISSIONS) | (atoms(INLINE_RULES_PERMISSIONS) if inline else frozenset())
    cluster = atoms(OPERATOR_PERMISSIONS)
    if roles:
        cluster |= atoms(GRANTABLE_CLUSTER_ROLE_PERMISSIONS, resource_names=roles)
    expected: dict[str, frozenset[Atom]] = {
        CLUSTER: cluster if listed else cluster | writes,
        grants_namespace: atoms(GRANTS_NAMESPACE_PERMISSIONS),
        NAMESPACE: atoms(OPERATOR_NAMESPACE_PERMISSIONS),
    }
    for namespace in listed:
        expected[namespace] = expected.get(namespace, frozenset()) | writes
    return expected


def describe(extra: set[Atom]) -> list[str]:
    return sorted(
        f"{verb} {group or 'core'}/{resource}{'/' + name if name else ''}"
        for group, resource, verb, name in extra
    )


def operator_role(manifests: list[Manifest]) -> Manifest:
    return only(manifests, "ClusterRole", "jitgrant")


@pytest.mark.parametrize("combination", sorted(SCOPED))
def test_operator_rights_match_the_code_both_ways_per_scope(chart: helm.Chart, combination: str) -> None:
    values = SCOPED[combination]
    account = only(render(chart, values), "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    granted = granted_by_scope(render(chart, values), account)
    needed = expected_by_scope(values, chart.values)
    assert sorted(granted) == sorted(needed), "the operator is bound in other scopes than the code needs"
    for scope, atoms_needed in needed.items():
        have = granted[scope]
        assert describe(atoms_needed - have) == [], f"{scope}: the chart lacks permissions the operator uses"
        assert describe(have - atoms_needed) == [], f"{scope}: the chart grants more than the operator uses"


def test_no_secret_token_serviceaccount_or_lease_right_outside_their_namespaces(chart: helm.Chart) -> None:
    """The rights a stolen token would need to take over the cluster exist only in the grants
    namespace (Secrets, ServiceAccounts, tokens, reader Roles) and the operator's own (Leases)."""
    for combination, values in SCOPED.items():
        grants_namespace = values.get("grantsNamespace", GRANTS_NAMESPACE)
        manifests = render(chart, values)
        account = only(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        granted = granted_by_scope(manifests, account)
        for scope, have in granted.items():
            resources = {resource for _, resource, _, _ in have}
            if scope != grants_namespace:
                assert not resources & {"secrets", "serviceaccounts", "serviceaccounts/token"}, (
                    combination,
                    scope,
                )
            if scope != NAMESPACE:
                assert "leases" not in resources, (combination, scope)
            if scope not in (grants_namespace,) and not values.get("inlineRules", {}).get("enabled"):
                assert "roles" not in resources, (combination, scope)
        leases = granted[NAMESPACE]
        assert ("coordination.k8s.io", "leases", "update", "") not in leases, "update only by name"
        assert ("coordination.k8s.io", "leases", "update", LEADER_LEASE) in leases


def test_grant_writes_only_in_the_listed_namespaces(chart: helm.Chart) -> None:
    granted = granted_by_scope(render(chart, SCOPED["grant-namespaces"]), "jitgrant")
    write = ("rbac.authorization.k8s.io", "rolebindings", "create", "")
    assert write not in granted[CLUSTER]
    assert {scope for scope, have in granted.items() if write in have} == {
        "payments",
        "orders",
        GRANTS_NAMESPACE,
    }
    default = granted_by_scope(render(chart), "jitgrant")
    assert write in default[CLUSTER]  # cluster-wide, limited by the admission policy below


def test_the_leader_lease_name_is_the_code_s(chart: helm.Chart) -> None:
    assert LEADER_LEASE == LEASE_NAME


def test_the_grants_namespace_cannot_be_the_operator_s(chart: helm.Chart) -> None:
    with pytest.raises(Exception, match=r"grantsNamespace.*the operator's own namespace"):
        render(chart, {"grantsNamespace": NAMESPACE})


def test_the_grants_namespace_is_created_and_passed_to_the_operator(chart: helm.Chart) -> None:
    manifests = render(chart, {"grantsNamespace": "agent-identities"})
    assert only(manifests, "Namespace", "agent-identities")
    args = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--grants-namespace") + 1] == "agent-identities"
    existing = render(chart, {"grantsNamespace": "agent-identities", "createGrantsNamespace": False})
    assert not [m for m in existing if m["kind"] == "Namespace"]
    # `jitgrant run` parses the chart's arguments into the setting the operator uses.
    parsed = build_parser().parse_args([a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in args])
    parsed.receipt_key_file = None  # the chart's key file exists only in the pod
    assert settings_from_args(parsed).grants_namespace == "agent-identities"


def test_the_operator_refuses_its_own_namespace_as_the_grants_namespace() -> None:
    with pytest.raises(ValueError, match=r"grants_namespace \(--grants-namespace\) 'jitgrant-system'"):
        OperatorSettings(operator_namespace="jitgrant-system", grants_namespace="jitgrant-system")


@pytest.mark.parametrize("combination", sorted(SCOPED))
def test_the_admission_policy_covers_the_operator_s_rbac_writes(chart: helm.Chart, combination: str) -> None:
    """Shipped in every combination, matching exactly the operator's ServiceAccount; its behaviour
    (what it refuses) is tried on the real kube-apiserver (tests/realapi/test_operator_rights.py)."""
    manifests = render(chart, SCOPED[combination])
    policy = only(manifests, "ValidatingAdmissionPolicy")
    binding = only(manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
            "resources": ["rolebindings", "roles"],
        }
    ]
    account = only(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    assert [c["expression"] for c in spec["matchConditions"]] == [
        f'request.userInfo.username == "system:serviceaccount:{NAMESPACE}:{account}"'
    ]
    namespaces_rule = spec["validations"][0]["expression"]
    for namespace in (*PROTECTED_NAMESPACES, NAMESPACE):
        assert namespace in namespaces_rule


def test_the_comparison_catches_a_broader_or_narrower_role() -> None:
    """The atoms comparison is sensitive to a wildcard, a missing verb and a dropped resourceName."""
    needed = atoms(GRANTABLE_CLUSTER_ROLE_PERMISSIONS, resource_names=("jit-read-logs",))
    exact = [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind", "get"],
            "resourceNames": ["jit-read-logs"],
        }
    ]
    assert rule_atoms(exact) == needed
    unrestricted = [{**exact[0], "resourceNames": []}]
    assert rule_atoms(unrestricted) - needed == {
        ("rbac.authorization.k8s.io", "clusterroles", "bind", ""),
        ("rbac.authorization.k8s.io", "clusterroles", "get", ""),
    }
    assert needed - rule_atoms([{**exact[0], "verbs": ["get"]}])
    assert rule_atoms([{**exact[0], "verbs": ["*"]}]) - needed


def test_bind_is_restricted_to_the_grantable_cluster_roles(chart: helm.Chart) -> None:
    rules = operator_role(render(chart))["rules"]
    bind_rules = [rule for rule in rules if "bind" in rule["verbs"]]
    assert bind_rules == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind", "get"],
            "resourceNames": ["jit-restart-deployments", "jit-read-logs"],
        }
    ]
    custom = operator_role(render(chart, {"grantableClusterRoles": ["jit-scale"]}))["rules"]
    assert [rule["resourceNames"] for rule in custom if "bind" in rule["verbs"]] == [["jit-scale"]]


def test_no_grantable_roles_means_no_bind_at_all(chart: helm.Chart) -> None:
    """An empty resourceNames would mean every ClusterRole: the rule must disappear instead."""
    rules = operator_role(render(chart, COMBINATIONS["no-grantable-roles"]))["rules"]
    assert not [rule for rule in rules if rule["resources"] == ["clusterroles"]]


def test_escalate_only_in_inline_rules_mode_with_a_warning(chart: helm.Chart) -> None:
    def verbs(values: dict[str, Any]) -> set[str]:
        return {
            verb
            for manifest in render(chart, values)
            if manifest["kind"] in ("ClusterRole", "Role")
            for rule in manifest["rules"]
            for verb in rule["verbs"]
        }

    assert "escalate" not in verbs({})
    assert "escalate" not in notes(chart)
    assert "escalate" in verbs(COMBINATIONS["inline-rules"])
    assert "WARNING: inline-rules mode is ON" in notes(chart, COMBINATIONS["inline-rules"])
    writer = only(render(chart, COMBINATIONS["inline-rules"]), "ClusterRole", "jitgrant-grant-writer")
    roles_rules = [rule for rule in writer["rules"] if rule["resources"] == ["roles"]]
    assert {"get", "create", "delete", "escalate", "bind"} == {
        verb for rule in roles_rules for verb in rule["verbs"]
    }
    default = render(chart, {})
    assert not [
        rule
        for m in default
        if m["kind"] == "ClusterRole" and m["metadata"]["name"].startswith("jitgrant")
        for rule in m["rules"]
        if "roles" in rule["resources"]
    ], "outside inline-rules mode, no Role rights outside the grants namespace"
    grants_role = next(
        m for m in default if m["kind"] == "Role" and m["metadata"]["namespace"] == GRANTS_NAMESPACE
    )
    assert [rule["verbs"] for rule in grants_role["rules"] if rule["resources"] == ["roles"]] == [
        ["get", "list", "create", "delete"]
    ], "the kubeconfig reader Roles: no escalate, no bind"


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_the_operator_account_is_bound_to_its_role(chart: helm.Chart, combination: str) -> None:
    manifests = render(chart, COMBINATIONS[combination])
    binding = only(manifests, "ClusterRoleBinding", "jitgrant")
    deployment = only(manifests, "Deployment")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "jitgrant",
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": deployment["spec"]["template"]["spec"]["serviceAccountName"],
            "namespace": NAMESPACE,
        }
    ]
    # Only the operator's own bindings and the uninstall hooks' exist, and each names only the
    # operator's (or a hook's) ServiceAccount: nothing else gets these rights.
    bindings = [m for m in manifests if m["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert {m["metadata"]["name"] for m in bindings} <= {
        "jitgrant",
        "jitgrant-grant-writer",
        "jitgrant-uninstall",
        "jitgrant-cleanup",
    }
    for m in bindings:
        assert [s["name"] for s in m["subjects"]] in (
            [deployment["spec"]["template"]["spec"]["serviceAccountName"]],
            ["jitgrant-uninstall"],
            ["jitgrant-cleanup"],
        )


def test_uninstall_hook_role_matches_the_code(chart: helm.Chart) -> None:
    manifests = render(chart)
    role = only(manifests, "ClusterRole", "jitgrant-uninstall")
    assert rule_atoms(role["rules"]) == atoms(UNINSTALL_HOOK_PERMISSIONS)
    binding = only(manifests, "ClusterRoleBinding", "jitgrant-uninstall")
    assert binding["roleRef"]["name"] == "jitgrant-uninstall"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jitgrant-uninstall", "namespace": NAMESPACE}
    ]


def test_cleanup_hook_role_matches_the_code(chart: helm.Chart) -> None:
    """The post-delete hook reaches only Leases, only in the release namespace."""
    manifests = render(chart)
    role = only(manifests, "Role", "jitgrant-cleanup")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rule_atoms(role["rules"]) == atoms(CLEANUP_HOOK_PERMISSIONS)
    binding = only(manifests, "RoleBinding", "jitgrant-cleanup")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "jitgrant-cleanup",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jitgrant-cleanup", "namespace": NAMESPACE}
    ]


# What a grantable ClusterRole must never contain (scope-within-policy), checked on the examples.
DANGEROUS = {"*", "escalate", "bind", "impersonate"}
SENSITIVE_RESOURCES = {"*", "secrets", "pods/exec", "pods/attach", "nodes/proxy", "serviceaccounts/token"}


def test_example_cluster_roles_are_narrow_and_grantable(chart: helm.Chart) -> None:
    manifests = render(chart)
    examples = [only(manifests, "ClusterRole", name) for name in ("jit-restart-deployments", "jit-read-logs")]
    assert {role["metadata"]["name"] for role in examples} <= set(chart.values["grantableClusterRoles"])
    for role in examples:
        for group, resource, verb, _name in rule_atoms(role["rules"]):
            assert verb not in DANGEROUS, (role["metadata"]["name"], verb)
            assert resource not in SENSITIVE_RESOURCES, (role["metadata"]["name"], resource)
            assert group != "*"
    restart = rule_atoms(examples[0]["rules"])
    assert restart == {("apps", "deployments", "get", ""), ("apps", "deployments", "patch", "")}


def test_permissions_are_unique_and_explained() -> None:
    groups: tuple[tuple[Permission, ...], ...] = (
        OPERATOR_PERMISSIONS,
        GRANTABLE_CLUSTER_ROLE_PERMISSIONS,
        GRANT_WRITE_PERMISSIONS,
        GRANTS_NAMESPACE_PERMISSIONS,
        OPERATOR_NAMESPACE_PERMISSIONS,
        INLINE_RULES_PERMISSIONS,
    )
    for group in groups:
        seen = [(p.api_group, p.resource, verb) for p in group for verb in p.verbs]
        assert len(seen) == len(set(seen))
    for permission in (p for group in groups for p in group):
        assert permission.note
        assert permission.verbs and "*" not in permission.verbs
    # Leases: only in the operator's namespace; update (the only verb resourceNames can narrow that
    # the leader needs beyond the replay set's) only on the leader Lease.
    leases = [p for group in groups for p in group if p.resource == "leases"]
    assert leases == [p for p in OPERATOR_NAMESPACE_PERMISSIONS if p.resource == "leases"]
    assert {(verb, p.resource_names) for p in leases for verb in p.verbs} == {
        ("get", ()),
        ("list", ()),
        ("create", ()),
        ("delete", ()),
        ("update", (LEADER_LEASE,)),
    }
    cluster_wide = {p.resource for p in OPERATOR_PERMISSIONS}
    assert not cluster_wide & {"secrets", "serviceaccounts", "serviceaccounts/token", "roles", "leases"}
