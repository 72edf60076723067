"""Everything one grant consists of, decided before anything is created (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitgrant.grants.delivery import grant_service_account, kubeconfig_secret_name
from jitgrant.grants.objects import GrantOwner, inline_role, role_binding, subject_for
from jitgrant.models import AccessRequest, ProofKind
from jitgrant.policy import PolicyDecision


@dataclass(frozen=True)
class GrantPlan:
    owner: GrantOwner
    now: datetime
    expires_at: datetime
    binding: dict[str, Any]
    role: dict[str, Any] | None
    # Set when the requester has no identity in the target cluster (proven by OIDC): the grant
    # gets its own ServiceAccount and a kubeconfig Secret.
    service_account: dict[str, Any] | None

    @property
    def binding_name(self) -> str:
        name: str = self.binding["metadata"]["name"]
        return name

    @property
    def role_name(self) -> str | None:
        return None if self.role is None else str(self.role["metadata"]["name"])

    @property
    def service_account_name(self) -> str | None:
        return None if self.service_account is None else str(self.service_account["metadata"]["name"])

    @property
    def secret_name(self) -> str | None:
        return None if self.service_account is None else kubeconfig_secret_name(self.owner)


def plan_grant(
    *, request: AccessRequest, decision: PolicyDecision, duration: timedelta, now: datetime
) -> GrantPlan:
    """The objects for `request`; the window starts now, when the grant becomes active."""
    requester = request.spec.requester
    if requester is None:
        raise ValueError("a grant needs a verified requester")
    owner = GrantOwner(
        uid=request.metadata.uid or "", namespace=request.metadata.namespace or "", name=request.metadata.name
    )
    expires_at = now + duration
    namespace = request.spec.namespace
    role = (
        inline_role(owner=owner, namespace=namespace, expires_at=expires_at, rules=decision.rules)
        if decision.rules
        else None
    )
    service_account = (
        grant_service_account(owner=owner, namespace=namespace, expires_at=expires_at)
        if requester.proven_by is ProofKind.OIDC
        else None
    )
    subject = (
        {"kind": "ServiceAccount", "name": service_account["metadata"]["name"], "namespace": namespace}
        if service_account is not None
        else subject_for(requester)
    )
    binding = role_binding(
        owner=owner,
        namespace=namespace,
        expires_at=expires_at,
        subjects=[subject],
        cluster_role=decision.cluster_role if role is None else None,
        role=role["metadata"]["name"] if role is not None else None,
    )
    return GrantPlan(
        owner=owner,
        now=now,
        expires_at=expires_at,
        binding=binding,
        role=role,
        service_account=service_account,
    )
