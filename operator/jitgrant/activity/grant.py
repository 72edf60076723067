"""From an AccessRequest to the identity and window its calls are looked up by. Pure."""

from __future__ import annotations

from jitgrant.activity.attribution import GrantIdentity
from jitgrant.models.request import AccessRequest


class NoGrant(ValueError):
    """The request never had a grant, so it made no calls with one."""


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def identity_of(request: AccessRequest) -> GrantIdentity:
    """The grant's RoleBinding, the identities it binds, and the window it was live.

    A grant with its own ServiceAccount (an agent that receives a kubeconfig) is identified by that
    ServiceAccount, which nothing else uses; otherwise by the requester the RoleBinding binds.
    """
    status, name = request.status, f"{request.metadata.namespace}/{request.metadata.name}"
    grant = status.grant
    start = status.activated_at
    if grant is None or start is None:
        phase = status.phase.value if status.phase else "new"
        raise NoGrant(f"AccessRequest {name} has no grant (phase {phase}): it made no calls with one")
    end = status.ended_at or (status.expires_at if status.phase and status.phase.terminal else None)
    if grant.service_account:
        # The per-grant ServiceAccount lives where the record says (the grants namespace); a grant
        # recorded before records named it was made in the grant's namespace.
        where = next(
            (
                ref.namespace
                for ref in grant.objects
                if ref.kind == "ServiceAccount" and ref.name == grant.service_account
            ),
            grant.namespace,
        )
        usernames = frozenset({service_account_username(where, grant.service_account)})
        dedicated = True
    else:
        requester = request.spec.requester
        usernames = frozenset({requester.username}) if requester else frozenset()
        dedicated = False
    return GrantIdentity(
        binding_name=grant.role_binding,
        binding_namespace=grant.namespace,
        usernames=usernames,
        start=start,
        end=end,
        dedicated=dedicated,
    )
