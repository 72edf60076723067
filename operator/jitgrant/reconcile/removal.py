"""Removing a grant's objects: the recorded plan, bindings first, each object only once proven ours."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jitgrant.clusters import grant_objects
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.port import GrantTarget
from jitgrant.grants.objects import GrantOwner
from jitgrant.models import (
    AccessRequest,
    GrantObjectRef,
    GrantPolicySpec,
    GrantRef,
    TargetType,
    cluster_name_of,
)
from jitgrant.reconcile.effects import Pass

log = logging.getLogger("jitgrant.reconcile")


def cluster_of(grant: GrantRef) -> str:
    """The identity of the grant's cluster, also for records that stored only its name."""
    return grant.target.cluster if grant.target is not None else grant.cluster


def legacy_objects(grant: GrantRef, *, request: AccessRequest, own: str) -> tuple[GrantObjectRef, ...]:
    """The objects of a grant recorded before plans listed them (an operator upgraded mid-grant)."""
    owner = GrantOwner(
        uid=request.metadata.uid or "", namespace=request.metadata.namespace or "", name=request.metadata.name
    )
    names: list[tuple[str, str, str, str | None]] = [
        (grant.cluster, "ServiceAccount", grant.namespace, grant.service_account),
        (grant.cluster, "Role", grant.namespace, grant.role),
        (grant.cluster, "RoleBinding", grant.namespace, grant.role_binding),
        (own, "Secret", owner.namespace, grant.kubeconfig_secret),
    ]
    if grant.kubeconfig_secret is not None:
        reader = grant.kubeconfig_secret.removesuffix("-kubeconfig") + "-reader"
        names += [(own, "Role", owner.namespace, reader), (own, "RoleBinding", owner.namespace, reader)]
    return tuple(
        GrantObjectRef.model_validate({"cluster": c, "kind": k, "namespace": ns, "name": n})
        for c, k, ns, n in names
        if n is not None
    )


def removal_order(objects: Sequence[GrantObjectRef]) -> list[GrantObjectRef]:
    """Bindings first (access ends with them), then the rest in reverse order of creation."""
    reverse = list(reversed(objects))
    return [o for o in reverse if o.kind == "RoleBinding"] + [o for o in reverse if o.kind != "RoleBinding"]


async def remove_recorded(
    p: Pass, grant: GrantRef, *, request: AccessRequest, policy: GrantPolicySpec | None
) -> None:
    """Remove every object of the recorded plan that is proven ours: the bindings first (access
    ends with them), then the Roles, the ServiceAccount (which voids its tokens) and the Secret.

    Raises when an object may stay behind and trying again can help, so the request does not
    end before its objects. One exception: a remote target that cannot be reached while no
    object of the plan is known to exist there (none has a recorded uid) does not hold the
    request up; the sweep removes whatever an interrupted attempt may have left once it can.
    """
    key, uid = p.engine.settings.receipt_key, request.metadata.uid or ""
    objects = grant.objects or legacy_objects(grant, request=request, own=p.engine.own.name)
    remote = grant.target is not None and grant.target.type is not TargetType.IN_CLUSTER
    confirmed = any(ref.uid for ref in objects if ref.cluster == grant.cluster)
    target: GrantTarget | None = None
    reached = remote
    for ref in removal_order(objects):
        in_target = ref.cluster == grant.cluster
        try:
            if in_target:
                target = target or await target_for_removal(p, grant, policy)
            port = target if in_target and target is not None else p.engine.own
            await grant_objects.delete_owned(
                port, ref, key=key, request_uid=uid, trust_labels=not grant.objects
            )
        except ClusterAccessError as exc:
            reached = reached and not in_target
            if exc.retryable and not (in_target and remote and not confirmed):
                raise  # the timer tries again
            # Asking again will not help (the operator lost its rights there), or nothing is
            # known to exist in a cluster that does not answer: say so; the sweep finishes it.
            log.error(
                "could not remove %s %s/%s in %s (%s); left to the sweep",
                ref.kind,
                ref.namespace,
                ref.name,
                ref.cluster,
                exc,
            )
    if reached:
        p.engine.cluster_reached(cluster_of(grant))


async def target_for_removal(p: Pass, grant: GrantRef, policy: GrantPolicySpec | None) -> GrantTarget:
    """The cluster the grant was made in, from the target recorded with it (its identity: a
    record written when clusters were keyed by name still carries region and role). Only a
    record from before EKS targets has none: it was made in the operator's own cluster, unless
    the policy still names a cluster of the recorded name, which is then the best there is."""
    target = grant.target
    if (
        target is None
        and policy is not None
        and policy.target.type is not TargetType.IN_CLUSTER
        and policy.target.cluster_name == cluster_name_of(grant.cluster)
    ):
        target = policy.target
    if target is None or target.type is TargetType.IN_CLUSTER:
        return p.engine.own
    return await p.engine.housekeeping_cluster(target)
