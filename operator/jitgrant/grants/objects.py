"""The RoleBinding (and, in inline-rules mode, the Role) that carry one grant.

Every object is labelled and annotated so that the sweep can find it, tell whose it is and when it
must be gone, even when the AccessRequest has vanished or the operator was down at expiry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitgrant.models import PolicyRule, RequesterStamp
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_ANNOTATION,
    REQUEST_UID_LABEL,
    format_time,
)

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class GrantOwner:
    """The AccessRequest a grant object belongs to."""

    uid: str
    namespace: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def grant_object_name(owner: GrantOwner) -> str:
    """A deterministic name, so a retry after a crash finds the object it already created.

    The uid suffix keeps a recreated request with the same name from colliding with an old grant.
    """
    digest = hashlib.sha256(f"{owner.namespace}/{owner.name}".encode()).hexdigest()[:6]
    base = f"jit-{owner.name}"[: 63 - 16]
    return f"{base}-{digest}-{owner.uid[:8]}".lower()


def grant_metadata(*, owner: GrantOwner, name: str, namespace: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: owner.uid},
        "annotations": {REQUEST_ANNOTATION: owner.ref, EXPIRES_AT_ANNOTATION: format_time(expires_at)},
    }


def subject_for(requester: RequesterStamp) -> dict[str, str]:
    """The RBAC subject that names the requester's own identity in the target cluster."""
    if requester.username.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, name = requester.username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
        return {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    return {"kind": "User", "name": requester.username, "apiGroup": "rbac.authorization.k8s.io"}


def role_binding(
    *,
    owner: GrantOwner,
    namespace: str,
    expires_at: datetime,
    subjects: Sequence[Mapping[str, str]],
    cluster_role: str | None,
    role: str | None,
) -> dict[str, Any]:
    """A RoleBinding to either an allowlisted ClusterRole or the grant's own Role."""
    if (cluster_role is None) == (role is None):
        raise ValueError("a grant binds exactly one of a ClusterRole or a Role")
    name = grant_object_name(owner)
    role_ref = (
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}
        if cluster_role is not None
        else {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
    )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": grant_metadata(owner=owner, name=name, namespace=namespace, expires_at=expires_at),
        "roleRef": role_ref,
        "subjects": [dict(subject) for subject in subjects],
    }


def inline_role(
    *, owner: GrantOwner, namespace: str, expires_at: datetime, rules: Sequence[PolicyRule]
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": grant_metadata(
            owner=owner, name=grant_object_name(owner), namespace=namespace, expires_at=expires_at
        ),
        "rules": [rule.to_k8s() for rule in rules],
    }
