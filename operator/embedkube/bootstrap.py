"""What a fresh API server creates at start: system namespaces and the default RBAC policy.

The roles are the documented defaults (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), trimmed to
the resources this server serves. ``admin``/``edit``/``view`` are flattened (no aggregation).
"""

from __future__ import annotations

from typing import Any

from .resources import RBAC

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _cluster_role(name: str, rules: list[dict[str, Any]], *, aggregate_to: str = "") -> dict[str, Any]:
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    if aggregate_to:
        labels[f"rbac.authorization.k8s.io/aggregate-to-{aggregate_to}"] = "true"
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    }


def _aggregated(name: str, rules: list[dict[str, Any]], *, aggregate_to: str = "") -> dict[str, Any]:
    role = _cluster_role(name, rules, aggregate_to=aggregate_to)
    selector = {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{name}": "true"}}
    role["aggregationRule"] = {"clusterRoleSelectors": [selector]}
    return role


def _binding(name: str, role: str, subjects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def _group(name: str) -> dict[str, Any]:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


_VIEW = [
    _rule(
        [""],
        [
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "pods",
            "pods/log",
            "pods/status",
            "replicationcontrollers",
            "services",
            "serviceaccounts",
            "events",
            "namespaces",
            "namespaces/status",
        ],
        READ,
    ),
    _rule(
        ["apps"],
        [
            "deployments",
            "deployments/status",
            "deployments/scale",
            "daemonsets",
            "replicasets",
            "statefulsets",
        ],
        READ,
    ),
    _rule(["events.k8s.io"], ["events"], READ),
    _rule(["coordination.k8s.io"], ["leases"], READ),
]
_EDIT = [
    _rule([""], ["configmaps", "pods", "secrets", "serviceaccounts", "services", "events"], WRITE),
    _rule([""], ["secrets"], READ),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    # Upstream's edit (and so admin) may act as any ServiceAccount of the namespace.
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods/exec", "pods/attach", "pods/portforward"], ["create", "get"]),
    _rule(["apps"], ["deployments", "deployments/scale"], WRITE),
    _rule(["coordination.k8s.io"], ["leases"], WRITE),
]
_ADMIN = [
    _rule([RBAC], ["roles", "rolebindings"], [*READ, *WRITE]),
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
]


def cluster_roles() -> list[dict[str, Any]]:
    return [
        _cluster_role(
            "cluster-admin", [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]
        ),
        _cluster_role(
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        _cluster_role(
            "system:basic-user",
            [
                _rule(
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    ["create"],
                ),
                _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
            ],
        ),
        _cluster_role(
            "system:public-info-viewer",
            [
                {
                    "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }
            ],
        ),
        # As upstream: view/edit/admin are aggregated ClusterRoles filled from the
        # system:aggregate-to-* parts (and from any ClusterRole a user labels aggregate-to-*);
        # view's rules flow into edit, edit's into admin.
        _aggregated("view", _VIEW, aggregate_to="edit"),
        _aggregated("edit", _VIEW + _EDIT, aggregate_to="admin"),
        _aggregated("admin", _VIEW + _EDIT + _ADMIN),
        _cluster_role("system:aggregate-to-view", _VIEW, aggregate_to="view"),
        _cluster_role("system:aggregate-to-edit", _EDIT, aggregate_to="edit"),
        _cluster_role("system:aggregate-to-admin", _ADMIN, aggregate_to="admin"),
        _cluster_role(
            "system:auth-delegator",
            [
                _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
                _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
            ],
        ),
    ]


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        _binding("cluster-admin", "cluster-admin", [_group("system:masters")]),
        _binding("system:discovery", "system:discovery", [_group("system:authenticated")]),
        _binding("system:basic-user", "system:basic-user", [_group("system:authenticated")]),
        _binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [_group("system:authenticated"), _group("system:unauthenticated")],
        ),
    ]
