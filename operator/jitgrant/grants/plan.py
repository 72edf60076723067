"""Everything one grant consists of, decided before anything is created (pure).

The plan names every object of the grant, the kubeconfig Secret and its reader Role/RoleBinding
included, and `record()` turns it into the `status.grant` written before the first object exists:
removal always works from that record and never re-derives a name. The identity objects (a
ServiceAccount in the target, the kubeconfig Secret and its reader in the operator's cluster) live in
the grants namespace, the only place the operator may touch ServiceAccounts, tokens and Secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitgrant.grants.delivery import grant_service_account, kubeconfig_reader_name, kubeconfig_secret_name
from jitgrant.grants.objects import GrantOwner, inline_role, role_binding, subject_for
from jitgrant.models import AccessRequest, GrantObjectRef, GrantRef, ProofKind, Target
from jitgrant.policy import PolicyDecision


@dataclass(frozen=True)
class GrantPlan:
    owner: GrantOwner
    now: datetime
    expires_at: datetime
    binding: dict[str, Any]
    role: dict[str, Any] | None
    # Set when the requester has no identity in the target cluster (proven by OIDC): the grant
    # gets its own ServiceAccount and a kubeconfig Secret, both in `grants_namespace`.
    service_account: dict[str, Any] | None
    grants_namespace: str

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

    @property
    def reader_name(self) -> str | None:
        """The Role and RoleBinding that let the requester read the kubeconfig Secret."""
        return None if self.service_account is None else kubeconfig_reader_name(self.owner)

    @property
    def namespace(self) -> str:
        return str(self.binding["metadata"]["namespace"])

    def object_refs(self, *, target_cluster: str, own_cluster: str) -> tuple[GrantObjectRef, ...]:
        """Every object in creation order: in the target, the identity and the Role before the
        binding that gives access; then, in the operator's cluster, the Secret and its reader (all
        three in the grants namespace, like the ServiceAccount)."""

        def ref(cluster: str, kind: str, namespace: str, name: str | None) -> list[GrantObjectRef]:
            if name is None:
                return []
            return [
                GrantObjectRef.model_validate(
                    {"cluster": cluster, "kind": kind, "namespace": namespace, "name": name}
                )
            ]

        grants = self.grants_namespace
        return (
            *ref(target_cluster, "ServiceAccount", grants, self.service_account_name),
            *ref(target_cluster, "Role", self.namespace, self.role_name),
            *ref(target_cluster, "RoleBinding", self.namespace, self.binding_name),
            *ref(own_cluster, "Secret", grants, self.secret_name),
            *ref(own_cluster, "Role", grants, self.reader_name),
            *ref(own_cluster, "RoleBinding", grants, self.reader_name),
        )

    def record(self, *, target: Target, own_cluster: str, cluster_role: str | None) -> GrantRef:
        """The write-ahead record for `status.grant`: nothing created yet, so no uid is known."""
        return GrantRef(
            cluster=target.cluster,
            target=target,
            namespace=self.namespace,
            role_binding=self.binding_name,
            role=self.role_name,
            cluster_role=cluster_role if self.role is None else None,
            service_account=self.service_account_name,
            kubeconfig_secret=self.secret_name,
            objects=self.object_refs(target_cluster=target.cluster, own_cluster=own_cluster),
            planned_at=self.now,
            expires_at=self.expires_at,
        )


def plan_grant(
    *,
    request: AccessRequest,
    decision: PolicyDecision,
    duration: timedelta,
    now: datetime,
    grants_namespace: str,
) -> GrantPlan:
    """The objects for `request`; the window starts now, when the grant becomes active.

    A per-grant ServiceAccount lives in `grants_namespace` and is bound from the grant's namespace
    (a RoleBinding subject may name a ServiceAccount of another namespace)."""
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
        grant_service_account(owner=owner, namespace=grants_namespace, expires_at=expires_at)
        if requester.proven_by is ProofKind.OIDC
        else None
    )
    subject = (
        {"kind": "ServiceAccount", "name": service_account["metadata"]["name"], "namespace": grants_namespace}
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
        grants_namespace=grants_namespace,
    )
