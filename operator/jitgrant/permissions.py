"""Every Kubernetes API permission the operator needs, in one machine-readable place, by scope.

The Helm chart's Roles and ClusterRoles are written by hand from these tuples, and a test renders
the chart and compares both ways, scope by scope: nothing the operator uses is missing, and nothing
broader is granted. A test on the real kube-apiserver (tests/realapi/test_operator_rights.py) lists
the operator ServiceAccount's effective rights in each namespace and fails on anything beyond these.
A handler that starts calling a new verb adds it here first. Pure data: no I/O, no Kubernetes client.

The scopes, least privilege first (docs/install.md, "What the operator can do"):

- `OPERATOR_PERMISSIONS`: cluster-wide, read-mostly. AccessRequests live in any namespace; the
  sweep lists RoleBindings everywhere. No Secrets, ServiceAccounts, tokens, Roles or Leases.
- `GRANTABLE_CLUSTER_ROLE_PERMISSIONS`: `bind` only the ClusterRoles the values allow
  (`grantableClusterRoles`), through `resourceNames`, so the API server itself refuses to let the
  operator bind anything else (RBAC's escalation check on RoleBinding creation).
- `GRANT_WRITE_PERMISSIONS`: creating and deleting the grants' RoleBindings. Bound only in the
  namespaces listed in the chart's `grantNamespaces`, or cluster-wide when that list is empty; either
  way the chart's ValidatingAdmissionPolicy refuses the operator any RoleBinding (or Role) write on an
  object without jitgrant's managed-by label, and any at all in kube-system, kube-public,
  kube-node-lease or the operator's own namespace.
- `GRANTS_NAMESPACE_PERMISSIONS`: only in the grants namespace the operator owns: per-grant
  ServiceAccounts and their tokens, the kubeconfig Secrets and their reader Role/RoleBinding. The only
  place the operator may mint a token or read a Secret.
- `OPERATOR_NAMESPACE_PERMISSIONS`: only in the operator's own namespace: the leader Lease (update by
  name) and the OIDC replay set (a Lease per used token, generated names, so get/create/delete cannot
  be narrowed by name).
- `INLINE_RULES_PERMISSIONS`: only with `inlineRules.enabled`, with the same scope and admission
  policy as the grant writes. Creating a Role with rules the operator does not hold needs `escalate`;
  binding that Role needs `bind`. Role names are generated per request, so neither can be narrowed
  by name; that is why it is an opt-in.

`CA_BUNDLE_PERMISSIONS`: a Role in the operator's namespace, only on the ConfigMaps and Secrets the
values name (`identity.caBundleConfigMaps`, `identity.caBundleSecrets`), by resourceNames.

`TARGET_*` are the same for an EKS target cluster (docs/eks.md): no AccessRequests, no Secrets, no
Leases there. `UNINSTALL_HOOK_PERMISSIONS` is what the chart's pre-delete Job (`jitgrant revoke
--all`) needs.
"""

from __future__ import annotations

from typing import NamedTuple

# The leader election's Lease (clusters/leader.py LEASE_NAME; a test keeps the two equal).
LEADER_LEASE = "jitgrant-leader"
# Namespaces the admission policy never lets the operator write RoleBindings or Roles in, whatever
# the RBAC says (the operator's own namespace is added by the chart).
PROTECTED_NAMESPACES: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease")


class Permission(NamedTuple):
    """One RBAC rule the operator needs: `api_group` "" is the core group; `resource_names` empty
    means any name."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    note: str
    resource_names: tuple[str, ...] = ()


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
        "",
        "namespaces",
        ("get", "list", "watch"),
        "read-only: a policy's namespaceSelector is matched against each Namespace's live labels, and a "
        "label removed ends the grants it allowed",
    ),
    Permission(
        "rbac.authorization.k8s.io",
        "rolebindings",
        ("get", "list", "watch"),
        "read-only: the start-up and periodic sweep finds expired grants in every namespace; get "
        "confirms a binding made by an earlier attempt is the operator's",
    ),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("get", "list", "watch"),
        "kopf's resource observer discovers the CRDs it serves",
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

GRANT_WRITE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "rbac.authorization.k8s.io",
        "rolebindings",
        ("create", "delete"),
        "the grant itself: only in grantNamespaces (or cluster-wide), and the admission policy admits "
        "only objects labelled as jitgrant's, never in the protected namespaces",
    ),
)

GRANTS_NAMESPACE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "",
        "serviceaccounts",
        ("get", "list", "create", "delete"),
        "per-grant identities for agents proven by OIDC; list for the sweep",
    ),
    Permission(
        "",
        "serviceaccounts/token",
        ("create",),
        "short-lived TokenRequest for the kubeconfig handed to an external agent (only for the "
        "grants namespace's own ServiceAccounts)",
    ),
    Permission(
        "",
        "secrets",
        ("get", "list", "create", "delete"),
        "kubeconfig Secrets for external agents; list for the sweep (no ownerReference can reach "
        "them from the request's namespace)",
    ),
    Permission(
        "rbac.authorization.k8s.io",
        "roles",
        ("get", "list", "create", "delete"),
        "a Role per kubeconfig Secret that lets only its requester read it (get on that one name); "
        "list for the sweep",
    ),
    Permission(
        "rbac.authorization.k8s.io",
        "rolebindings",
        ("create", "delete"),
        "the binding of each kubeconfig reader Role to the identity that filed the request",
    ),
)

OPERATOR_NAMESPACE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "coordination.k8s.io",
        "leases",
        ("get", "list", "create", "delete"),
        "the leader Lease (created once) and the OIDC replay set shared by every replica: a Lease "
        "per used token, named after it, deleted once the token has expired",
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        ("update",),
        "renewing and taking over the leader Lease, by name",
        resource_names=(LEADER_LEASE,),
    ),
)

INLINE_RULES_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "rbac.authorization.k8s.io",
        "roles",
        ("get", "create", "delete", "escalate", "bind"),
        "inline-rules mode only, with the grant writes' scope and admission policy: a Role per grant "
        "with rules the operator does not hold (escalate), bound by the grant's RoleBinding (bind)",
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
CA_BUNDLE_SECRET_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "",
        "secrets",
        ("get",),
        "only the Secrets named in identity.caBundleSecrets (resourceNames), in the operator's namespace: "
        "the same, for a CA bundle kept in a Secret",
    ),
)

# In an EKS target cluster (docs/eks.md): the grants and, in the target's grants namespace, the
# ServiceAccounts of agents without an identity there. The kubeconfig Secret stays in the operator's
# cluster. The bind rule is GRANTABLE_CLUSTER_ROLE_PERMISSIONS, as in the operator's own cluster.
TARGET_CLUSTER_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "rbac.authorization.k8s.io",
        "rolebindings",
        ("get", "list", "watch"),
        "read-only: the sweep finds expired grants in the target",
    ),
)
TARGET_GRANTS_NAMESPACE_PERMISSIONS: tuple[Permission, ...] = tuple(
    p for p in GRANTS_NAMESPACE_PERMISSIONS if p.resource in ("serviceaccounts", "serviceaccounts/token")
)

# The chart's post-delete hook (`<release>-cleanup`), in the release namespace only: the Leases the
# operator created (the leader Lease and the OIDC replay set) would otherwise outlive `helm uninstall`.
CLEANUP_HOOK_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "coordination.k8s.io",
        "leases",
        ("list", "delete"),
        "after helm uninstall: delete jitgrant-leader and the jitgrant-replay-* Leases in the release "
        "namespace (a Role there, nothing cluster-wide)",
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

    A permission's own `resource_names` win over the argument. Comparing sets of atoms makes the
    check independent of how the chart groups its rules.
    """
    return frozenset(
        (permission.api_group, permission.resource, verb, name)
        for permission in permissions
        for verb in permission.verbs
        for name in (permission.resource_names or resource_names or ("",))
    )


def as_rbac_rules(
    permissions: tuple[Permission, ...], *, resource_names: tuple[str, ...] = ()
) -> list[dict[str, list[str]]]:
    """The permissions as the `rules` of a Role or ClusterRole (what the chart renders from them)."""
    rules: list[dict[str, list[str]]] = []
    for permission in permissions:
        rule = {
            "apiGroups": [permission.api_group],
            "resources": [permission.resource],
            "verbs": list(permission.verbs),
        }
        names = permission.resource_names or resource_names
        if names:
            rule["resourceNames"] = list(names)
        rules.append(rule)
    return rules
