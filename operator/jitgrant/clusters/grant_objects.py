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

from kubernetes.client import CoreV1Api, V1DeleteOptions, V1Preconditions
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
    listers = [
        ("RoleBinding", rbac.list_role_binding_for_all_namespaces),
        # Per-grant identities of agents without one of their own (kubeconfig delivery).
        ("ServiceAccount", CoreV1Api(api.client).list_service_account_for_all_namespaces),
    ]
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
    rbac, core = api.rbac, CoreV1Api(api.client)
    read, delete = {
        "RoleBinding": (rbac.read_namespaced_role_binding, rbac.delete_namespaced_role_binding),
        "Role": (rbac.read_namespaced_role, rbac.delete_namespaced_role),
        "ServiceAccount": (core.read_namespaced_service_account, core.delete_namespaced_service_account),
    }[obj.kind]
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


# -- delivery to agents without a cluster identity (ServiceAccount, token, kubeconfig Secret) --------


async def issue_service_account(api: ClusterApi, *, service_account: dict[str, Any], owner_uid: str) -> None:
    core = CoreV1Api(api.client)
    await _create_owned(
        api,
        create=core.create_namespaced_service_account,
        read=core.read_namespaced_service_account,
        body=service_account,
        owner_uid=owner_uid,
    )


async def mint_token(api: ClusterApi, *, namespace: str, service_account: str, seconds: int) -> str:
    """A TokenRequest for the grant's ServiceAccount; deleting the account invalidates it early."""
    core = CoreV1Api(api.client)
    result = await api.call(
        core.create_namespaced_service_account_token,
        service_account,
        namespace,
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    token: str = result.status.token
    return token


async def issue_kubeconfig(
    own: ClusterApi,
    *,
    secret: dict[str, Any],
    reader_role: dict[str, Any],
    reader_binding: dict[str, Any],
    owner_uid: str,
) -> None:
    core = CoreV1Api(own.client)
    rbac = own.rbac
    await _create_owned(
        own,
        create=core.create_namespaced_secret,
        read=core.read_namespaced_secret,
        body=secret,
        owner_uid=owner_uid,
    )
    await _create_owned(
        own,
        create=rbac.create_namespaced_role,
        read=rbac.read_namespaced_role,
        body=reader_role,
        owner_uid=owner_uid,
    )
    await _create_owned(
        own,
        create=rbac.create_namespaced_role_binding,
        read=rbac.read_namespaced_role_binding,
        body=reader_binding,
        owner_uid=owner_uid,
    )


async def remove_service_account(api: ClusterApi, *, namespace: str, name: str, owner_uid: str) -> None:
    """Deleting the ServiceAccount also invalidates every token minted for it."""
    core = CoreV1Api(api.client)
    await _delete_owned(
        api,
        read=core.read_namespaced_service_account,
        delete=core.delete_namespaced_service_account,
        namespace=namespace,
        name=name,
        owner_uid=owner_uid,
    )


async def remove_kubeconfig(
    own: ClusterApi, *, namespace: str, secret: str, reader: str, owner_uid: str
) -> None:
    core = CoreV1Api(own.client)
    rbac = own.rbac
    for read, delete, name in (
        (rbac.read_namespaced_role_binding, rbac.delete_namespaced_role_binding, reader),
        (rbac.read_namespaced_role, rbac.delete_namespaced_role, reader),
        (core.read_namespaced_secret, core.delete_namespaced_secret, secret),
    ):
        await _delete_owned(
            own, read=read, delete=delete, namespace=namespace, name=name, owner_uid=owner_uid
        )
