"""Objects for delivering a grant to an agent with no identity in the target cluster (pure builders).

Such an agent (proven by OIDC) gets a ServiceAccount of its own for the grant, bound like any other
requester, and a kubeconfig holding a short-lived token for it. The ServiceAccount, the kubeconfig
Secret and the Role/RoleBinding that let only the Kubernetes identity which filed the request read
that Secret all live in the grants namespace: the only namespace where the operator may create
ServiceAccounts, mint tokens and read Secrets, so a stolen operator token cannot reach any other
Secret or ServiceAccount. An ownerReference cannot cross namespaces, so these objects carry none:
the operator removes them from the grant record, and the sweep removes any it finds past its window
or without a live request.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from jitgrant.grants.objects import GrantOwner, grant_metadata, grant_object_name

# The API server refuses TokenRequests shorter than this (expirationSeconds minimum).
MIN_TOKEN_SECONDS = 600
KUBECONFIG_KEY = "kubeconfig"


def token_seconds(window: timedelta) -> int:
    """The shortest lifetime the API server allows that still covers the grant's window."""
    return max(MIN_TOKEN_SECONDS, math.ceil(window.total_seconds()))


def grant_service_account(*, owner: GrantOwner, namespace: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": grant_metadata(
            owner=owner, name=grant_object_name(owner), namespace=namespace, expires_at=expires_at
        ),
        "automountServiceAccountToken": False,
    }


def kubeconfig_secret_name(owner: GrantOwner) -> str:
    return f"{grant_object_name(owner)}-kubeconfig"


def kubeconfig_secret(
    *, owner: GrantOwner, namespace: str, expires_at: datetime, kubeconfig_text: str
) -> dict[str, Any]:
    metadata = grant_metadata(
        owner=owner, name=kubeconfig_secret_name(owner), namespace=namespace, expires_at=expires_at
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "stringData": {KUBECONFIG_KEY: kubeconfig_text},
    }


def kubeconfig_reader_name(owner: GrantOwner) -> str:
    return f"{grant_object_name(owner)}-reader"


def kubeconfig_reader(
    *, owner: GrantOwner, namespace: str, expires_at: datetime, reader: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Role that can read exactly the kubeconfig Secret, and its binding to `reader` alone."""
    name = kubeconfig_reader_name(owner)
    role_meta = grant_metadata(owner=owner, name=name, namespace=namespace, expires_at=expires_at)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": role_meta,
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get"],
                "resourceNames": [kubeconfig_secret_name(owner)],
            }
        ],
    }
    binding_meta = grant_metadata(owner=owner, name=name, namespace=namespace, expires_at=expires_at)
    subject = (
        {"kind": "ServiceAccount", "name": reader.split(":")[3], "namespace": reader.split(":")[2]}
        if reader.startswith("system:serviceaccount:") and reader.count(":") == 3
        else {"kind": "User", "name": reader, "apiGroup": "rbac.authorization.k8s.io"}
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": binding_meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject],
    }
    return role, binding
