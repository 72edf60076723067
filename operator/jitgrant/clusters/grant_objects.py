"""Creating and removing the objects of a grant in a cluster.

Create-or-confirm-ownership, never a blind overwrite; delete only what carries our labels for this
request (never-adopt), with a uid precondition so a foreign object recreated under the same name
in the meantime is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from kubernetes.client import CoreV1Api, V1DeleteOptions, V1Preconditions
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.own import ClusterApi
from jitgrant.grants.objects import owned_by
from jitgrant.models.vocabulary import EXPIRES_AT_ANNOTATION, MANAGED_SELECTOR, REQUEST_UID_LABEL


class ForeignObjectError(Exception):
    """An object with the grant's name exists and jitgrant did not create it for this request."""


@dataclass(frozen=True)
class ManagedObject:
    kind: str  # "RoleBinding" | "Role" | "ServiceAccount"
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


class _Methods(NamedTuple):
    create: Any
    read: Any
    delete: Any
    list_all: Any


def _methods(api: ClusterApi, kind: str) -> _Methods:
    """The official client's calls for one kind of namespaced object a grant is made of."""
    rbac, core = api.rbac, CoreV1Api(api.client)
    table = {
        "RoleBinding": _Methods(
            rbac.create_namespaced_role_binding,
            rbac.read_namespaced_role_binding,
            rbac.delete_namespaced_role_binding,
            rbac.list_role_binding_for_all_namespaces,
        ),
        "Role": _Methods(
            rbac.create_namespaced_role,
            rbac.read_namespaced_role,
            rbac.delete_namespaced_role,
            rbac.list_role_for_all_namespaces,
        ),
        "ServiceAccount": _Methods(
            core.create_namespaced_service_account,
            core.read_namespaced_service_account,
            core.delete_namespaced_service_account,
            core.list_service_account_for_all_namespaces,
        ),
        "Secret": _Methods(
            core.create_namespaced_secret, core.read_namespaced_secret, core.delete_namespaced_secret, None
        ),
    }
    return table[kind]


async def create_owned(api: ClusterApi, body: dict[str, Any], *, owner_uid: str) -> None:
    """Create `body`, or confirm that an object of that name is ours from an earlier attempt."""
    methods = _methods(api, body["kind"])
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        await api.call(methods.create, namespace, body)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise
    existing = api.client.sanitize_for_serialization(await api.call(methods.read, name, namespace))
    if not owned_by(existing, owner_uid):
        raise ForeignObjectError(
            f"{body['kind']} {namespace}/{name} already exists and was not created by jitgrant for this "
            "request; it was left untouched and nothing was granted"
        )


async def delete_owned(api: ClusterApi, kind: str, *, namespace: str, name: str, owner_uid: str) -> bool:
    """Delete if it is ours; True only when this call deleted it (absent or foreign: False)."""
    methods = _methods(api, kind)
    try:
        existing = api.client.sanitize_for_serialization(await api.call(methods.read, name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    if not owned_by(existing, owner_uid):
        return False
    options = V1DeleteOptions(preconditions=V1Preconditions(uid=existing["metadata"]["uid"]))
    try:
        await api.call(methods.delete, name, namespace, body=options)
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise
        return False
    return True


async def create_all(api: ClusterApi, bodies: Sequence[dict[str, Any] | None], *, owner_uid: str) -> None:
    """Create in order (a Role before the binding that names it), tolerating our own earlier attempt."""
    for body in bodies:
        if body is not None:
            await create_owned(api, body, owner_uid=owner_uid)


async def delete_all(
    api: ClusterApi, objects: Sequence[tuple[str, str | None]], *, namespace: str, owner_uid: str
) -> None:
    """Delete (kind, name) pairs in order: callers put the RoleBinding first, since access ends with it."""
    for kind, name in objects:
        if name is not None:
            await delete_owned(api, kind, namespace=namespace, name=name, owner_uid=owner_uid)


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


async def list_managed(api: ClusterApi, *, include_roles: bool) -> list[ManagedObject]:
    """Every RoleBinding and per-grant ServiceAccount (and Role, in inline-rules mode) jitgrant
    labelled, in all namespaces."""
    kinds = ["RoleBinding", "ServiceAccount", *(["Role"] if include_roles else [])]
    found: list[ManagedObject] = []
    for kind in kinds:
        result = await api.call(_methods(api, kind).list_all, label_selector=MANAGED_SELECTOR)
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
    return await delete_owned(
        api, obj.kind, namespace=obj.namespace, name=obj.name, owner_uid=obj.labels.get(REQUEST_UID_LABEL, "")
    )


def parse_expiry(obj: ManagedObject) -> datetime | None:
    raw = obj.annotations.get(EXPIRES_AT_ANNOTATION)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
