"""Every Kubernetes API permission the operator needs, in one machine-readable place.

The Helm chart's ClusterRoles are written by hand from these tuples, and a test renders the chart
and compares both ways: nothing the operator uses is missing, and nothing broader is granted. A
handler that starts calling a new verb adds it here first; the chart test then says what the chart
lacks. Pure data: no I/O, no Kubernetes client.

Three groups, because least privilege depends on the chart's values:

- `OPERATOR_PERMISSIONS`: always granted, cluster-wide (AccessRequests live in any namespace and
  grants land in any namespace a policy allows).
- `GRANTABLE_CLUSTER_ROLE_PERMISSIONS`: granted only on the ClusterRoles the values allow
  (`grantableClusterRoles`), through `resourceNames`, so the API server itself refuses to let the
  operator bind anything else (RBAC's escalation check on RoleBinding creation).
- `INLINE_RULES_PERMISSIONS`: only with `inlineRules.enabled`. Creating a Role with rules the
  operator does not hold needs `escalate`; binding that Role needs `bind`. Neither can be narrowed
  by name, because the Role names are generated per request; that is why it is an opt-in.

`CA_BUNDLE_PERMISSIONS`: a Role in the operator's namespace, only on the ConfigMaps the values name
(`identity.caBundleConfigMaps`); a caBundle in a Secret needs nothing more than `secrets: get`.

`UNINSTALL_HOOK_PERMISSIONS` is what the chart's pre-delete Job (`jitgrant revoke --all`) needs.
"""

from __future__ import annotations

from typing import NamedTuple


class Permission(NamedTuple):
    """One RBAC rule the operator needs: `api_group` "" is the core group."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    note: str


OPERATOR_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "jitgrant.dev",
        "accessrequests",
        ("get", "list", "watch", "patch", "delete"),
        "kopf watches requests, adds the finalizer and its progress annotations; finished requests are "
        "deleted after finishedRetention",
    ),
    Permission("jitgrant.dev", "accessrequests/status", ("get", "patch"), "phase, grant and timestamps"),
    Permission("jitgrant.dev", "grantpolicies", ("get", "list", "watch"), "policies decide every request"),
    Permission(
        "jitgrant.dev",
        "grantpolicies/status",
        ("get", "patch"),
        "each policy's Ready condition: valid, ClusterRoles exist, bindable and not widened",
    ),
    Permission(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        ("create",),
        "asks whether the operator may bind each ClusterRole a policy names (its own rights only)",
    ),
    Permission(
        "authorization.k8s.io",
        "subjectaccessreviews",
        ("create",),
        "the admission webhook asks whether a caller who sets jitgrant.dev/revoke may delete that "
        "AccessRequest (who may revoke, besides its requester and the policy's approvers)",
    ),
    Permission("", "events", ("create", "patch"), "kopf posts Events about the objects it handles"),
    Permission(
        "rbac.authorization.k8s.io",
        "rolebindings",
        ("get", "list", "watch", "create", "delete"),
        "the grant itself; list for the start-up and periodic expiry sweep",
    ),
    Permission(
        "",
        "serviceaccounts",
        ("get", "list", "create", "delete"),
        "per-grant identities for external agents; list for the sweep",
    ),
    Permission(
        "",
        "serviceaccounts/token",
        ("create",),
        "short-lived TokenRequest for the kubeconfig handed to an external agent",
    ),
    Permission("", "secrets", ("get", "create", "delete"), "kubeconfig Secrets for external agents"),
    Permission(
        "rbac.authorization.k8s.io",
        "roles",
        ("get", "create", "delete"),
        "a Role per kubeconfig Secret that lets only its requester read it (get on that one name)",
    ),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("get", "list", "watch"),
        "kopf's resource observer discovers the CRDs it serves",
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        ("get", "list", "create", "update", "delete"),
        "leader election among replicas (one Lease), and the OIDC replay set shared by every replica "
        "(a Lease per used token, deleted once the token has expired)",
    ),
)

GRANTABLE_CLUSTER_ROLE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "rbac.authorization.k8s.io",
        "clusterroles",
        ("bind", "get"),
        "bind only the allowlisted ClusterRoles (resourceNames); get to check that one exists",
    ),
)

INLINE_RULES_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "rbac.authorization.k8s.io",
        "roles",
        ("list", "escalate", "bind"),
        "inline-rules mode only, on top of get/create/delete: a Role per grant with rules the "
        "operator does not hold (escalate), bound by the grant's RoleBinding (bind), listed by the sweep",
    ),
)

CA_BUNDLE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "",
        "configmaps",
        ("get",),
        "only the ConfigMaps named in identity.caBundleConfigMaps (resourceNames), in the operator's "
        "namespace: extra CA certificates for an identity provider behind a private CA",
    ),
)

UNINSTALL_HOOK_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "jitgrant.dev",
        "accessrequests",
        ("get", "list", "patch", "delete"),
        "`jitgrant revoke --all` annotates every live request with jitgrant.dev/revoke and waits; the "
        "webhook lets it revoke requests it neither filed nor approves because it may delete them",
    ),
)


def atoms(
    permissions: tuple[Permission, ...], *, resource_names: tuple[str, ...] = ()
) -> frozenset[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName) for each permission; "" resourceName means any name.

    Comparing sets of atoms makes the check independent of how the chart groups its rules.
    """
    names = resource_names or ("",)
    return frozenset(
        (permission.api_group, permission.resource, verb, name)
        for permission in permissions
        for verb in permission.verbs
        for name in names
    )


def as_rbac_rules(
    permissions: tuple[Permission, ...], *, resource_names: tuple[str, ...] = ()
) -> list[dict[str, list[str]]]:
    """The permissions as the `rules` of a ClusterRole (what the chart renders from them)."""
    rules: list[dict[str, list[str]]] = []
    for permission in permissions:
        rule = {
            "apiGroups": [permission.api_group],
            "resources": [permission.resource],
            "verbs": list(permission.verbs),
        }
        if resource_names:
            rule["resourceNames"] = list(resource_names)
        rules.append(rule)
    return rules
