"""Privilege-escalation prevention of the RBAC registry (pkg/registry/rbac/*/policybased).

Writing a Role/ClusterRole needs every permission it grants (in that scope) or the ``escalate``
verb on it; writing a RoleBinding/ClusterRoleBinding needs every permission of the referenced role
in the binding's scope, or the ``bind`` verb on that role (which resourceNames can narrow to named
ClusterRoles: the allowlist the operator relies on).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from . import errors
from .authn import MASTERS, User
from .rbac import Attributes as AuthzAttrs
from .rbac import RbacAuthorizer, RoleNotFound
from .resources import RBAC, ResourceType
from .store import Obj


def check_escalation(
    authorizer: RbacAuthorizer, user: User, rt: ResourceType, obj: Obj, old: Obj | None
) -> None:
    """Privilege escalation prevention of the RBAC registry (roles and bindings only)."""
    if rt.group != RBAC or MASTERS in user.groups:
        return
    if old is not None and _only_gc_fields_changed(obj, old):
        return
    meta = obj["metadata"]
    namespace = meta.get("namespace", "") if rt.namespaced else ""
    name = meta["name"]
    if rt.plural in ("roles", "clusterroles"):
        # The request's own name, as upstream: a create's URL has none, so an `escalate` limited by
        # resourceNames never lets a Role be created, only updated.
        asked = "" if old is None else name
        if authorizer.allowed(AuthzAttrs(user, "escalate", namespace, RBAC, rt.plural, name=asked)):
            return
        missing = authorizer.missing_rights(user, namespace, obj.get("rules") or [])
        if missing:
            raise errors.forbidden(rt.plural, rt.group, name, missing)
        return
    ref = obj.get("roleRef") or {}
    ref_resource = "roles" if ref.get("kind") == "Role" else "clusterroles"
    if authorizer.allowed(AuthzAttrs(user, "bind", namespace, RBAC, ref_resource, name=ref.get("name", ""))):
        return
    try:
        rules = authorizer.role_reference_rules(ref, namespace)
    except RoleNotFound as exc:  # upstream answers 404 for the missing role itself
        # with the singular resource, as the RBAC registry's role getter words it
        raise errors.not_found(ref_resource.removesuffix("s"), RBAC, ref.get("name", "")) from exc
    missing = authorizer.missing_rights(user, namespace, rules)
    if missing:
        raise errors.forbidden(rt.plural, rt.group, name, missing)


def _only_gc_fields_changed(obj: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    def strip(o: Mapping[str, Any]) -> dict[str, Any]:
        c = copy.deepcopy(dict(o))
        for key in ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation"):
            c.get("metadata", {}).pop(key, None)
        return c

    return strip(obj) == strip(old)
