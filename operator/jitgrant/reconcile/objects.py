"""Creating a grant's objects from its plan: sealed, the binding last and only inside the window."""

from __future__ import annotations

import logging
from typing import Any

from jitgrant.clusters import grant_objects
from jitgrant.clusters.port import GrantTarget
from jitgrant.grants.delivery import kubeconfig_reader, kubeconfig_secret, token_seconds
from jitgrant.grants.kubeconfig import kubeconfig_yaml, scoped_kubeconfig
from jitgrant.grants.plan import GrantPlan
from jitgrant.models import (
    AccessRequest,
    GrantRef,
)
from jitgrant.models.vocabulary import (
    CREATED_BY_EXTRA,
)
from jitgrant.reconcile.effects import Pass

log = logging.getLogger("jitgrant.reconcile")


class WindowClosed(Exception):
    """The grant's window ended before its RoleBinding was created: it is not created at all."""


async def create(
    p: Pass, plan: GrantPlan, *, record: GrantRef, request: AccessRequest, target: GrantTarget
) -> GrantRef:
    """Create every planned object, sealed; returns the record with each object's uid."""
    engine = p.engine
    key, uid = engine.settings.receipt_key, plan.owner.uid
    made: dict[tuple[str, str, str], str] = {}
    # The identity and the Role first: the binding, which gives access, comes last.
    for body in (plan.service_account, plan.role, plan.binding):
        if body is plan.binding and engine.clock() >= plan.expires_at:
            raise WindowClosed  # a slow cluster took the rest of the window: no binding now
        if body is not None:
            obj = await grant_objects.create_owned(target, body, key=key, request_uid=uid)
            made[(obj.kind, obj.namespace, obj.name)] = obj.uid
    if plan.service_account is not None:
        for body in await kubeconfig_objects(p, plan, request=request, target=target):
            obj = await grant_objects.create_owned(engine.own, body, key=key, request_uid=uid)
            made[(obj.kind, obj.namespace, obj.name)] = obj.uid
    objects = tuple(
        ref.model_copy(update={"uid": made.get((ref.kind, ref.namespace, ref.name), ref.uid)})
        for ref in record.objects
    )
    return record.model_copy(update={"objects": objects, "expires_at": plan.expires_at})


async def kubeconfig_objects(
    p: Pass, plan: GrantPlan, *, request: AccessRequest, target: GrantTarget
) -> list[dict[str, Any]]:
    """Token for the grant's ServiceAccount, wrapped in a kubeconfig only the requester can read."""
    assert plan.service_account_name is not None and request.spec.requester is not None
    token = await target.mint_token(
        namespace=plan.grants_namespace,
        service_account=plan.service_account_name,
        seconds=token_seconds(plan.expires_at - plan.now),
    )
    text = kubeconfig_yaml(
        scoped_kubeconfig(
            cluster_name=target.name,
            server=target.server,
            ca_pem=target.ca_pem,
            token=token,
            namespace=plan.namespace,
            user=plan.service_account_name,
        )
    )
    reader = request.spec.requester.extra.get(CREATED_BY_EXTRA, ("",))[0] or request.spec.requester.username
    where = plan.grants_namespace
    role, binding = kubeconfig_reader(
        owner=plan.owner, namespace=where, expires_at=plan.expires_at, reader=reader
    )
    secret = kubeconfig_secret(
        owner=plan.owner, namespace=where, expires_at=plan.expires_at, kubeconfig_text=text
    )
    return [secret, role, binding]
