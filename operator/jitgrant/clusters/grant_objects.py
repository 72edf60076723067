"""Creating and removing the objects of a grant, through the cluster port, on proof of ownership.

An object is the operator's only if it carries the operator's seal for exactly that object and
request (`grants/ownership.py`), and, where the operator recorded it at creation, the same uid.
Labels only select. Create-or-confirm-ownership, never a blind overwrite or adoption; delete only
what is proven ours, with a uid precondition so an object recreated under the same name in the
meantime is left alone.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jitgrant.clusters.errors import Conflict, ForeignObjectError
from jitgrant.clusters.port import ClusterObject, GrantTarget
from jitgrant.grants.ownership import owner_seal, verify_owner_seal
from jitgrant.models import GrantObjectRef, cluster_name_of
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MANAGED_SELECTOR,
    OWNER_SEAL_ANNOTATION,
    REQUEST_UID_LABEL,
    parse_time,
)

log = logging.getLogger("jitgrant.grants")

# What the sweep looks at. RoleBindings (which give access) in every namespace, where the operator
# may list them; the identity objects only in the grants namespace, the one namespace where it may
# touch ServiceAccounts, Secrets and Roles at all. Those carry no ownerReference (an owner cannot be
# in another namespace), so the sweep is what removes them when the operator missed their end.
# In a target cluster the grants namespace holds only ServiceAccounts (the operator has no rights on
# Secrets or Roles there).
CLUSTER_WIDE_KINDS = ("RoleBinding",)
GRANTS_NAMESPACE_KINDS = ("ServiceAccount", "Secret", "Role")
TARGET_GRANTS_NAMESPACE_KINDS = ("ServiceAccount",)
SWEPT_KINDS = (*CLUSTER_WIDE_KINDS, *GRANTS_NAMESPACE_KINDS)


def proven_ours(obj: ClusterObject, *, key: bytes, cluster: str, request_uid: str | None = None) -> bool:
    """True only for an object sealed by the operator, in this cluster, for its request (and, when
    `request_uid` is given, for that request)."""
    uid = obj.labels.get(REQUEST_UID_LABEL, "")
    if request_uid is not None and uid != request_uid:
        return False
    # Objects an operator made before clusters were keyed by ARN are sealed over the bare name; they
    # still prove ours (to be removed), or an upgrade would leave them for ever.
    names = dict.fromkeys((cluster, cluster_name_of(cluster)))
    seal = obj.annotations.get(OWNER_SEAL_ANNOTATION)
    return any(
        verify_owner_seal(
            key=key,
            cluster=name,
            kind=obj.kind,
            namespace=obj.namespace,
            name=obj.name,
            request_uid=uid,
            seal=seal,
        )
        for name in names
    )


def sealed(body: Mapping[str, Any], *, key: bytes, cluster: str, request_uid: str) -> dict[str, Any]:
    """`body` with the labels that select it and the seal that proves it is the operator's."""
    out = copy.deepcopy(dict(body))
    meta = out["metadata"]
    meta.setdefault("labels", {}).update({MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: request_uid})
    meta.setdefault("annotations", {})[OWNER_SEAL_ANNOTATION] = owner_seal(
        key=key,
        cluster=cluster,
        kind=out["kind"],
        namespace=meta["namespace"],
        name=meta["name"],
        request_uid=request_uid,
    )
    return out


async def create_owned(
    port: GrantTarget, body: Mapping[str, Any], *, key: bytes, request_uid: str
) -> ClusterObject:
    """Create `body` sealed, or confirm that the object of that name is ours from an earlier attempt.

    Raises ForeignObjectError, without reading anything more of it, when the name is taken by an
    object the operator cannot prove it made."""
    try:
        return await port.create_object(sealed(body, key=key, cluster=port.name, request_uid=request_uid))
    except Conflict:
        pass
    meta = body["metadata"]
    existing = await port.read_object(str(body["kind"]), meta["namespace"], meta["name"])
    if existing is not None and proven_ours(existing, key=key, cluster=port.name, request_uid=request_uid):
        return existing
    raise ForeignObjectError(
        f"{body['kind']} {meta['namespace']}/{meta['name']} already exists and was not created by "
        "jitgrant for this request (it carries no valid jitgrant owner seal); it was left untouched "
        "and nothing was granted"
    )


async def delete_owned(
    port: GrantTarget, ref: GrantObjectRef, *, key: bytes, request_uid: str, trust_labels: bool = False
) -> bool:
    """Delete the object `ref` names if it is proven ours; True only when this call deleted it.

    `trust_labels` is only for grants recorded by an operator version that sealed nothing: their
    names come from status (which only the operator writes), and the request-uid label must match.
    """
    if ref.uid is not None:
        # The uid was recorded from the operator's own create (or a read that proved the seal), and
        # the API server never reuses one: the precondition alone proves it is ours, so no read first
        # (one call less on every revocation and expiry). Another object under the name: False.
        return await port.delete_object(ref.kind, ref.namespace, ref.name, uid=ref.uid)
    existing = await port.read_object(ref.kind, ref.namespace, ref.name)
    if existing is None:
        return False
    legacy = (
        trust_labels
        and OWNER_SEAL_ANNOTATION not in existing.annotations
        and (
            existing.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
            and existing.labels.get(REQUEST_UID_LABEL) == request_uid
        )
    )
    if not legacy and not proven_ours(existing, key=key, cluster=port.name, request_uid=request_uid):
        log.warning(
            "left %s %s/%s in %s alone: jitgrant cannot prove it made it",
            ref.kind,
            ref.namespace,
            ref.name,
            port.name,
        )
        return False
    return await port.delete_object(ref.kind, ref.namespace, ref.name, uid=existing.uid)


async def list_labelled(port: GrantTarget, *, grants_namespace: str, own: bool = True) -> list[ClusterObject]:
    """Every object of the swept kinds labelled as jitgrant's, proven or not (the caller judges).

    `own`: the operator's own cluster, whose grants namespace also holds kubeconfig Secrets and
    their reader Roles."""
    kinds = GRANTS_NAMESPACE_KINDS if own else TARGET_GRANTS_NAMESPACE_KINDS
    found = [
        *await port.list_labelled(CLUSTER_WIDE_KINDS, selector=MANAGED_SELECTOR),
        *await port.list_labelled(kinds, selector=MANAGED_SELECTOR, namespace=grants_namespace),
    ]
    # Never trust the server-side selector alone.
    return [obj for obj in found if obj.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE]


def parse_expiry(obj: ClusterObject) -> datetime | None:
    raw = obj.annotations.get(EXPIRES_AT_ANNOTATION)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        return None
