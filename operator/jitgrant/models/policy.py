"""GrantPolicy: the platform team's statement of who may get which access, for how long."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from jitgrant.models.base import Duration, WireModel, parse_duration
from jitgrant.models.rbac import PolicyRule


class ServiceAccountRef(WireModel):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)

    @property
    def username(self) -> str:
        """The name the API server authenticates this ServiceAccount as."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


class OIDCRequester(WireModel):
    """External agents proving themselves with an ID token from this issuer."""

    issuer: str = Field(min_length=1, description="Exact `iss` claim and base of the discovery document.")
    audience: str = Field(min_length=1, description="The `aud` the token must carry.")
    subjects: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    groups_claim: str = "groups"
    algorithms: tuple[str, ...] = ("RS256", "ES256")


class Requesters(WireModel):
    service_accounts: tuple[ServiceAccountRef, ...] = ()
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    oidc: tuple[OIDCRequester, ...] = ()

    @model_validator(mode="after")
    def _someone(self) -> Requesters:
        if not (self.service_accounts or self.users or self.groups or self.oidc):
            raise ValueError("requesters names nobody: list serviceAccounts, users, groups or oidc issuers")
        return self


class TargetType(StrEnum):
    IN_CLUSTER = "InCluster"
    EKS = "EKS"


class EKSTarget(WireModel):
    cluster_name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
    external_id: str | None = None


class Target(WireModel):
    type: TargetType = TargetType.IN_CLUSTER
    eks: EKSTarget | None = None

    @model_validator(mode="after")
    def _eks_needs_details(self) -> Target:
        if self.type is TargetType.EKS and self.eks is None:
            raise ValueError("target.type EKS needs target.eks (clusterName, region, roleArn)")
        if self.type is TargetType.IN_CLUSTER and self.eks is not None:
            raise ValueError("target.eks is only meaningful with target.type EKS")
        return self

    @property
    def cluster(self) -> str:
        """The name the audit trail and metrics use for the target cluster."""
        return self.eks.cluster_name if self.eks is not None else "in-cluster"


class GrantOption(WireModel):
    """One thing a request may ask for: a ClusterRole by name, or a set of inline rules."""

    cluster_role: str | None = Field(default=None, min_length=1)
    rules: tuple[PolicyRule, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> GrantOption:
        if (self.cluster_role is None) == (self.rules is None):
            raise ValueError("each grants entry needs exactly one of clusterRole or rules")
        return self


class Approvers(WireModel):
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


class ApprovalPolicy(WireModel):
    required: bool = False
    approvers: Approvers = Approvers()
    min_approvals: int = Field(default=1, ge=1, le=10)
    pending_timeout: Duration = "30m"

    @model_validator(mode="after")
    def _approvers_named(self) -> ApprovalPolicy:
        if self.required and not (self.approvers.users or self.approvers.groups):
            raise ValueError("approval.required needs approval.approvers (users or groups)")
        return self

    @property
    def pending_timeout_delta(self) -> timedelta:
        return parse_duration(self.pending_timeout)


class JustificationPolicy(WireModel):
    required: bool = False
    pattern: str | None = Field(default=None, description="Regular expression the justification must match.")


class GrantPolicySpec(WireModel):
    requesters: Requesters
    target: Target = Target()
    namespaces: tuple[str, ...] = Field(
        min_length=1,
        description='Namespaces grants may land in; "*" is any namespace except system ones.',
    )
    grants: tuple[GrantOption, ...] = Field(min_length=1)
    max_duration: Duration = "15m"
    default_duration: Duration | None = None
    approval: ApprovalPolicy = ApprovalPolicy()
    justification: JustificationPolicy = JustificationPolicy()

    @model_validator(mode="after")
    def _default_within_max(self) -> GrantPolicySpec:
        if self.default_duration is not None and self.default_duration_delta > self.max_duration_delta:
            raise ValueError(
                f"defaultDuration {self.default_duration} is longer than maxDuration {self.max_duration}"
            )
        return self

    @property
    def max_duration_delta(self) -> timedelta:
        return parse_duration(self.max_duration)

    @property
    def default_duration_delta(self) -> timedelta:
        return parse_duration(self.default_duration or self.max_duration)


class ObjectMeta(WireModel):
    """The part of metadata the models read; the rest of a live object is ignored."""

    model_config = WireModel.model_config | {"extra": "ignore"}
    name: str
    namespace: str | None = None
    uid: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class GrantPolicy(WireModel):
    model_config = WireModel.model_config | {"extra": "ignore"}
    api_version: Literal["jitgrant.dev/v1alpha1"] = "jitgrant.dev/v1alpha1"
    kind: Literal["GrantPolicy"] = "GrantPolicy"
    metadata: ObjectMeta
    spec: GrantPolicySpec

    @classmethod
    def from_object(cls, body: Any) -> GrantPolicy:
        return cls.model_validate(dict(body))
