"""AccessRequest: an agent asking for one grant, and the operator's record of what became of it."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from jitgrant.models.base import Duration, WireModel, parse_duration
from jitgrant.models.policy import ObjectMeta, Target
from jitgrant.models.rbac import PolicyRule
from jitgrant.models.text import MAX_JUSTIFICATION_LENGTH

MAX_REQUEST_KEY_LENGTH = 128


class ProofKind(StrEnum):
    KUBERNETES = "kubernetes"  # the API server authenticated the creator (admission userInfo)
    OIDC = "oidc"  # an ID token verified against an issuer named in the policy


class RequesterStamp(WireModel):
    """Who asked, as established by the admission webhook; never taken from what the requester typed."""

    username: str = Field(description="The requester's username as the API server authenticated it.")
    uid: str = Field(default="", description="The requester's uid, if the authenticator gives one.")
    groups: tuple[str, ...] = Field(default=(), description="The requester's groups at creation.")
    extra: dict[str, tuple[str, ...]] = Field(
        default={}, description="Authenticator extras (e.g. who created a request for an OIDC agent)."
    )
    proven_by: ProofKind = Field(
        default=ProofKind.KUBERNETES,
        description="kubernetes (the API server authenticated the creator) or oidc (a verified ID token).",
    )
    issuer: str | None = Field(default=None, description="With oidc: the token's issuer.")
    subject: str | None = Field(default=None, description="With oidc: the token's subject.")


def _rule_text(rule: PolicyRule) -> str:
    verbs = ",".join(rule.verbs)
    targets: list[str] = []
    for resource in rule.resources:
        if not rule.resource_names:
            targets.append(resource)
        elif len(rule.resource_names) == 1 and "/" not in resource:
            targets.append(f"{resource}/{rule.resource_names[0]}")
        else:
            targets.append(f"{resource} (names: {', '.join(rule.resource_names)})")
    return f"{verbs} {', '.join(targets)}"


class AccessRequestSpec(WireModel):
    policy: str = Field(min_length=1, description="Name of the GrantPolicy to request under.")
    namespace: str = Field(min_length=1, description="Namespace the grant lands in.")
    cluster_role: str | None = Field(
        default=None, min_length=1, description="A ClusterRole the policy offers (set this or rules)."
    )
    rules: tuple[PolicyRule, ...] | None = Field(
        default=None, min_length=1, description="Inline rules within the policy's (set this or clusterRole)."
    )
    duration: Duration | None = Field(default=None, description="Defaults to the policy's defaultDuration.")
    justification: str = Field(
        default="",
        max_length=MAX_JUSTIFICATION_LENGTH,
        description=(
            f"Why (e.g. INC-4711 ...), at most {MAX_JUSTIFICATION_LENGTH} characters; approvers and the "
            "audit trail read it, and the policy's pattern applies."
        ),
    )
    request_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REQUEST_KEY_LENGTH,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description=(
            "Idempotency key of the caller's attempt (letters, digits, '.', '_', ':', '-'; at most "
            f"{MAX_REQUEST_KEY_LENGTH} characters): a retry with the same key while the first request "
            "is open gets that request back instead of a second one."
        ),
    )
    requester: RequesterStamp | None = Field(
        default=None, description="Set by the admission webhook on creation; anything typed here is replaced."
    )
    extends: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="An extension: the name of the requester's Active AccessRequest (same namespace) whose "
        "window this one extends by its duration. Its policy, namespace and clusterRole or rules must equal "
        "the original's: an extension never widens the scope.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AccessRequestSpec:
        if (self.cluster_role is None) == (self.rules is None):
            raise ValueError("set exactly one of clusterRole or rules")
        return self

    def scope_text(self) -> str:
        """What the request asks for, in one line for status, Events, the trail and reports, e.g.
        "patch deployments/checkout in payments" or "ClusterRole jit-restart in payments"."""
        if self.cluster_role is not None:
            return f"ClusterRole {self.cluster_role} in {self.namespace}"
        return f"{'; '.join(_rule_text(rule) for rule in self.rules or ())} in {self.namespace}"

    @property
    def duration_delta(self) -> timedelta | None:
        return parse_duration(self.duration) if self.duration is not None else None


class Phase(StrEnum):
    PENDING = "Pending"
    APPROVED = "Approved"
    ACTIVE = "Active"
    EXPIRED = "Expired"
    REVOKED = "Revoked"
    DENIED = "Denied"
    TIMED_OUT = "TimedOut"
    FAILED = "Failed"
    # An extension (spec.extends) whose time was added to the original grant's window.
    APPLIED = "Applied"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset(
    {Phase.EXPIRED, Phase.REVOKED, Phase.DENIED, Phase.TIMED_OUT, Phase.FAILED, Phase.APPLIED}
)


class ApprovalEntry(WireModel):
    """One approval the operator counted (a valid receipt from an eligible, distinct approver)."""

    approver: str = Field(description="Who approved, as the API server authenticated them.")
    groups: tuple[str, ...] = Field(default=(), description="The approver's groups when they approved.")
    at: datetime = Field(description="When the approval was recorded.")
    reason: str = Field(default="", description="What the approver wrote.")
    receipt: str = Field(default="", description="HMAC receipt binding approver, decision and spec.")


class ExtensionEntry(WireModel):
    """One extension applied to this grant: which request, by how much, who approved it."""

    request: str = Field(description="The extension AccessRequest (same namespace).")
    by: Duration = Field(description="How much it added to the window.")
    at: datetime = Field(description="When it was applied.")
    approved_by: tuple[str, ...] = Field(default=(), description="Its approvers; empty: auto-approved.")
    expires_at: datetime = Field(description="The grant's end after it.")


GrantObjectKind = Literal["RoleBinding", "Role", "ServiceAccount", "Secret"]


class GrantObjectRef(WireModel):
    """One object of a grant: recorded before it is created, with its uid once the operator made it."""

    cluster: str = Field(description="The cluster the object lives in (the target, or the operator's own).")
    kind: GrantObjectKind
    namespace: str
    name: str
    uid: str | None = Field(default=None, description="Set once the operator has created the object.")


class GrantRef(WireModel):
    """The grant plan: every object the operator creates for this request, written to status before
    the first of them exists, so a removal never depends on a status write that came after it."""

    cluster: str = Field(description="The target cluster's name (in-cluster, or the EKS cluster).")
    # Where the grant lives, kept with the grant so it can be removed even after its policy is
    # deleted or retargeted.
    target: Target | None = None
    namespace: str = Field(description="The namespace the grant is in.")
    role_binding: str = Field(description="The RoleBinding that grants the access.")
    role: str | None = Field(default=None, description="The Role made from inline rules, if any.")
    cluster_role: str | None = Field(default=None, description="The ClusterRole bound, if any.")
    service_account: str | None = Field(default=None, description="The ServiceAccount bound, if any.")
    kubeconfig_secret: str | None = Field(
        default=None, description="The Secret holding the delivered kubeconfig, if one was issued."
    )
    objects: tuple[GrantObjectRef, ...] = Field(
        default=(), description="Every object of the grant in creation order; removal works from this."
    )
    planned_at: datetime | None = Field(default=None, description="When the plan was recorded.")
    expires_at: datetime | None = Field(default=None, description="The end of the planned window.")


class Condition(WireModel):
    """A Kubernetes-style condition (Granted: True only while the grant is active)."""

    type: str = Field(description="The condition's name, e.g. Granted.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable reason for the last transition.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When status last changed.")


class AccessRequestStatus(WireModel):
    model_config = WireModel.model_config | {"extra": "ignore"}
    phase: Phase | None = Field(
        default=None,
        description="Pending, Approved, Active, or a terminal Expired, Revoked, Denied, TimedOut, Failed "
        "(and Applied, for an extension whose time was added).",
    )
    reason: str | None = Field(default=None, description="Machine-readable reason for the current phase.")
    message: str | None = Field(default=None, description="What happened and what would be allowed.")
    requested_at: datetime | None = Field(default=None, description="When the operator first saw it.")
    decided_at: datetime | None = Field(default=None, description="When it was approved or denied.")
    activated_at: datetime | None = Field(default=None, description="When the grant became active.")
    expires_at: datetime | None = Field(default=None, description="When the grant ends on its own.")
    ended_at: datetime | None = Field(default=None, description="When it reached a terminal phase.")
    approvals: tuple[ApprovalEntry, ...] = Field(default=(), description="The approvals counted so far.")
    approvals_required: int | None = Field(
        default=None,
        ge=0,
        description="How many approvals the policy required when the request went Pending (for "
        "clients that may not read the GrantPolicy).",
    )
    grant: GrantRef | None = Field(default=None, description="What the operator created, to remove it.")
    extensions: tuple[ExtensionEntry, ...] = Field(
        default=(), description="Extensions applied to this grant's window, oldest first."
    )
    conditions: tuple[Condition, ...] = Field(default=(), description="Kubernetes-style conditions.")


class AccessRequest(WireModel):
    model_config = WireModel.model_config | {"extra": "ignore"}
    api_version: Literal["jitgrant.dev/v1alpha1"] = "jitgrant.dev/v1alpha1"
    kind: Literal["AccessRequest"] = "AccessRequest"
    metadata: ObjectMeta
    spec: AccessRequestSpec
    status: AccessRequestStatus = AccessRequestStatus()

    @classmethod
    def from_object(cls, body: Any) -> AccessRequest:
        return cls.model_validate(dict(body))
