"""Creating and removing the RBAC objects of a grant in a target cluster.

Create-or-confirm-ownership, never a blind overwrite; delete only what carries our labels for this
request (invariant 7), with a uid precondition so a foreign object recreated under the same name
in the meantime is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes.client import V1DeleteOptions, V1Preconditions
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.own import ClusterApi
from jitgrant.grants.objects import MANAGED_SELECTOR, REQUEST_UID_LABEL, owned_by


class ForeignObjectError(Exception):
    """An object with the grant's name exists and jitgrant did not create it for this request."""


@dataclass(frozen=True)
class ManagedObject:
    kind: str  # "RoleBinding" | "Role"
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


async def _create_owned(
    api: ClusterApi, *, create: Any, read: Any, body: dict[str, Any], owner_uid: str
) -> None:
    namespace = body["metadata"]["namespace"]
    name = body["metadata"]["name"]
    try:
        await api.call(create, namespace, body)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise
    existing = await api.call(read, name, namespace)
    existing_dict = api.client.sanitize_for_serialization(existing)
    if not owned_by(existing_dict, owner_uid):
        raise ForeignObjectError(
            f"{body['kind']} {namespace}/{name} already exists and was not created by jitgrant for this "
            "request; it was left untouched and nothing was granted"
        )


async def issue(
    api: ClusterApi, *, binding: dict[str, Any], role: dict[str, Any] | None, owner_uid: str
) -> None:
    """Create the Role (if any) and then the RoleBinding, tolerating our own earlier attempt."""
    rbac = api.rbac
    if role is not None:
        await _create_owned(
            api,
            create=rbac.create_namespaced_role,
            read=rbac.read_namespaced_role,
            body=role,
            owner_uid=owner_uid,
        )
    await _create_owned(
        api,
        create=rbac.create_namespaced_role_binding,
        read=rbac.read_namespaced_role_binding,
        body=binding,
        owner_uid=owner_uid,
    )


async def _delete_owned(
    api: ClusterApi, *, read: Any, delete: Any, namespace: str, name: str, owner_uid: str
) -> bool:
    """Delete if it is ours; True only when this call deleted it (absent or foreign: False)."""
    try:
        existing = api.client.sanitize_for_serialization(await api.call(read, name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    if not owned_by(existing, owner_uid):
        return False
    options = V1DeleteOptions(preconditions=V1Preconditions(uid=existing["metadata"]["uid"]))
    try:
        await api.call(delete, name, namespace, body=options)
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise
        return False
    return True


async def remove(api: ClusterApi, *, namespace: str, binding: str, role: str | None, owner_uid: str) -> None:
    """Remove the binding first: access ends with it, the Role alone grants nothing."""
    rbac = api.rbac
    await _delete_owned(
        api,
        read=rbac.read_namespaced_role_binding,
        delete=rbac.delete_namespaced_role_binding,
        namespace=namespace,
        name=binding,
        owner_uid=owner_uid,
    )
    if role is not None:
        await _delete_owned(
            api,
            read=rbac.read_namespaced_role,
            delete=rbac.delete_namespaced_role,
            namespace=namespace,
            name=role,
            owner_uid=owner_uid,
        )


async def list_managed(api: ClusterApi, *, include_roles: bool) -> list[ManagedObject]:
    """Every RoleBinding (and Role, in inline-rules mode) jitgrant labelled, in all namespaces."""
    rbac = api.rbac
    found: list[ManagedObject] = []
    listers = [("RoleBinding", rbac.list_role_binding_for_all_namespaces)]
    if include_roles:
        listers.append(("Role", rbac.list_role_for_all_namespaces))
    for kind, lister in listers:
        result = await api.call(lister, label_selector=MANAGED_SELECTOR)
        for item in api.client.sanitize_for_serialization(result).get("items", []):
            meta = item.get("metadata", {})
            labels = meta.get("labels") or {}
            # Never trust the server-side selector alone: act only on what carries our label.
            if labels.get("app.kubernetes.io/managed-by") != "jitgrant":
                continue
            found.append(
                ManagedObject(
                    kind=kind,
                    namespace=meta["namespace"],
                    name=meta["name"],
                    uid=meta.get("uid", ""),
                    labels=labels,
                    annotations=meta.get("annotations") or {},
                )
            )
    return found


async def delete_managed(api: ClusterApi, obj: ManagedObject) -> bool:
    """Delete one labelled object if it is still ours; True when this call removed it."""
    rbac = api.rbac
    read, delete = (
        (rbac.read_namespaced_role_binding, rbac.delete_namespaced_role_binding)
        if obj.kind == "RoleBinding"
        else (rbac.read_namespaced_role, rbac.delete_namespaced_role)
    )
    return await _delete_owned(
        api,
        read=read,
        delete=delete,
        namespace=obj.namespace,
        name=obj.name,
        owner_uid=obj.labels.get(REQUEST_UID_LABEL, ""),
    )


def parse_expiry(obj: ManagedObject) -> datetime | None:
    raw = obj.annotations.get("jitgrant.dev/expires-at")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
