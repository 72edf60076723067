"""The chart's RBAC grants every API verb the operator's code uses (operator/jitgrant/permissions.py)
and nothing broader, compared as (apiGroup, resource, verb, resourceName) atoms both ways."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from jitgrant.permissions import (
    GRANTABLE_CLUSTER_ROLE_PERMISSIONS,
    INLINE_RULES_PERMISSIONS,
    OPERATOR_PERMISSIONS,
    UNINSTALL_HOOK_PERMISSIONS,
    Permission,
    atoms,
)

from .conftest import COMBINATIONS, NAMESPACE, Manifest, notes, only, render

Atom = tuple[str, str, str, str]


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


def expected_atoms(values: dict[str, Any], defaults: dict[str, Any]) -> frozenset[Atom]:
    roles = tuple(values.get("grantableClusterRoles", defaults["grantableClusterRoles"]))
    inline = values.get("inlineRules", {}).get("enabled", False)
    expected = atoms(OPERATOR_PERMISSIONS)
    if roles:
        expected |= atoms(GRANTABLE_CLUSTER_ROLE_PERMISSIONS, resource_names=roles)
    if inline:
        expected |= atoms(INLINE_RULES_PERMISSIONS)
    return expected


def describe(extra: set[Atom]) -> list[str]:
    return sorted(
        f"{verb} {group or 'core'}/{resource}{'/' + name if name else ''}"
        for group, resource, verb, name in extra
    )


def operator_role(manifests: list[Manifest]) -> Manifest:
    return only(manifests, "ClusterRole", "jitgrant")


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_operator_role_matches_the_code_both_ways(chart: helm.Chart, combination: str) -> None:
    values = COMBINATIONS[combination]
    granted = rule_atoms(operator_role(render(chart, values))["rules"])
    needed = expected_atoms(values, chart.values)
    assert describe(needed - granted) == [], "the chart lacks permissions the operator uses"
    assert describe(granted - needed) == [], "the chart grants more than the operator uses"


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
            "resourceNames": ["jit-restart-deployments", "jit-read-logs", "jit-restart-checkout"],
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
    roles_rules = [
        rule
        for rule in operator_role(render(chart, COMBINATIONS["inline-rules"]))["rules"]
        if rule["resources"] == ["roles"]
    ]
    assert {"get", "list", "create", "delete", "escalate", "bind"} == {
        verb for rule in roles_rules for verb in rule["verbs"]
    }
    assert [rule for rule in operator_role(render(chart, {}))["rules"] if rule["resources"] == ["roles"]] == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "verbs": ["get", "create", "delete"],
        }
    ], "outside inline-rules mode, only the kubeconfig reader Roles: no escalate, no bind"


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
    # Only the operator's own binding and the uninstall hooks' exist: nothing else gets the role.
    assert {
        m["metadata"]["name"] for m in manifests if m["kind"] in ("ClusterRoleBinding", "RoleBinding")
    } <= {
        "jitgrant",
        "jitgrant-uninstall",
        "jitgrant-cleanup",
    }


def test_uninstall_hook_role_matches_the_code(chart: helm.Chart) -> None:
    manifests = render(chart)
    role = only(manifests, "ClusterRole", "jitgrant-uninstall")
    assert rule_atoms(role["rules"]) == atoms(UNINSTALL_HOOK_PERMISSIONS)
    binding = only(manifests, "ClusterRoleBinding", "jitgrant-uninstall")
    assert binding["roleRef"]["name"] == "jitgrant-uninstall"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jitgrant-uninstall", "namespace": NAMESPACE}
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
        INLINE_RULES_PERMISSIONS,
    )
    seen = [(p.api_group, p.resource, verb) for group in groups for p in group for verb in p.verbs]
    assert len(seen) == len(set(seen))
    for permission in (p for group in groups for p in group):
        assert permission.note
        assert permission.verbs and "*" not in permission.verbs
    # Leases: leader election among replicas and the shared OIDC replay set; nothing wider.
    leases = [p for p in OPERATOR_PERMISSIONS if p.resource == "leases"]
    assert [(p.api_group, set(p.verbs)) for p in leases] == [
        ("coordination.k8s.io", {"get", "list", "create", "update", "delete"})
    ]
