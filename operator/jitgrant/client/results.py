"""What the client returns besides AccessRequest and GrantPolicy: small frozen models an agent (or an
MCP client) can read field by field, serialised with the same camelCase aliases as the CRDs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import PrivateAttr

from jitgrant.models import AccessRequest, GrantPolicySpec, PolicyRule, format_duration
from jitgrant.models.base import WireModel
from jitgrant.models.dryrun import Outcome


class Identity(WireModel):
    """Who the API server says the caller is (a SelfSubjectReview)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()


class ApprovalNeeds(WireModel):
    required: bool
    min_approvals: int = 0
    approver_groups: tuple[str, ...] = ()
    approver_users: tuple[str, ...] = ()
    pending_timeout: str | None = None


class Grantable(WireModel):
    """A GrantPolicy the caller is a requester of, and what it may ask for under it."""

    policy: str
    cluster: str
    namespaces: tuple[str, ...]
    cluster_roles: tuple[str, ...] = ()
    rule_shapes: tuple[PolicyRule, ...] = ()
    max_duration: str
    default_duration: str
    approval: ApprovalNeeds
    justification_required: bool
    justification_pattern: str | None = None
    # The policy's Ready condition, as the operator last wrote it: a request under a policy that is not
    # Ready ends Failed. None: the operator has not judged it yet.
    ready: bool | None = None
    ready_reason: str | None = None
    ready_message: str = ""

    @classmethod
    def of(cls, name: str, spec: GrantPolicySpec, readiness: PolicyReadiness | None = None) -> Grantable:
        approval = spec.approval
        ready = readiness or PolicyReadiness()
        return cls(
            ready=ready.ready,
            ready_reason=ready.reason,
            ready_message=ready.message,
            policy=name,
            cluster=spec.target.cluster,
            namespaces=spec.namespaces,
            cluster_roles=tuple(g.cluster_role for g in spec.grants if g.cluster_role is not None),
            rule_shapes=tuple(rule for g in spec.grants for rule in g.rules or ()),
            max_duration=spec.max_duration,
            default_duration=format_duration(spec.default_duration_delta),
            approval=ApprovalNeeds(
                required=approval.required,
                min_approvals=approval.min_approvals if approval.required else 0,
                approver_groups=approval.approvers.groups if approval.required else (),
                approver_users=approval.approvers.users if approval.required else (),
                pending_timeout=approval.pending_timeout if approval.required else None,
            ),
            justification_required=spec.justification.required,
            justification_pattern=spec.justification.pattern,
        )


@dataclass(frozen=True)
class PolicyReadiness:
    """A GrantPolicy's Ready condition (status.conditions[type=Ready]); ready None: not judged yet."""

    ready: bool | None = None
    reason: str | None = None
    message: str = ""

    @classmethod
    def of(cls, policy: Mapping[str, Any]) -> PolicyReadiness:
        conditions = (policy.get("status") or {}).get("conditions") or ()
        for condition in conditions:
            if isinstance(condition, Mapping) and condition.get("type") == "Ready":
                status = condition.get("status")
                return cls(
                    ready=True if status == "True" else False if status == "False" else None,
                    reason=str(condition.get("reason") or "") or None,
                    message=str(condition.get("message") or ""),
                )
        return cls()


class CheckResult(WireModel):
    """The operator's own decision on a request that was not filed (a dryRun create)."""

    outcome: Outcome
    reason: str
    message: str
    duration: str | None = None
    approvals_needed: int = 0
    approvers: str | None = None


class Progress(WireModel):
    """Where a request stands while the agent waits; emitted whenever any field changes."""

    phase: str | None
    reason: str | None = None
    message: str = ""
    approvals: int = 0
    approvals_needed: int | None = None
    approved_by: tuple[str, ...] = ()
    expires_at: datetime | None = None

    def describe(self) -> str:
        """One line for a person or a model: pending (k of N), approved, active until T."""
        if self.phase is None:
            return "waiting for the operator to decide..."
        if self.phase == "Pending":
            if self.approvals_needed is None:
                text = f"pending approval: {self.approvals} counted so far"
            else:
                missing = max(self.approvals_needed - self.approvals, 0)
                text = (
                    f"pending approval: {missing} more approval(s) needed "
                    f"({self.approvals} of {self.approvals_needed})"
                )
            return text + (f"; approved by {', '.join(self.approved_by)}" if self.approved_by else "")
        if self.phase == "Approved":
            if self.reason in ("Approved", "AutoApproved"):
                return f"approved ({self.message}); the operator is issuing the grant"
            return f"approved, not active yet: {self.reason}: {self.message}"
        if self.phase == "Active":
            until = self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.expires_at else "?"
            return f"active until {until}: {self.message}"
        return f"{self.phase}: {self.reason}: {self.message}"


class Grant(WireModel):
    """An active grant: the request as the operator last wrote it, and the kubeconfig if one was
    delivered (agents proven by OIDC, who have no identity in the target cluster)."""

    request: AccessRequest
    kubeconfig: str | None = None
    # The client's `extend`, set by the `wait()` (or `grant()`) that returned this grant.
    _extender: Callable[..., Any] | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.request.metadata.name

    def extend(self, *, by: str | timedelta, justification: str) -> Any:
        """More time on this grant: the client's `extend(self.name, ...)`. From a `Client`, the grant's
        AccessRequest with its new `expires_at`; from an `AsyncClient`, an awaitable of it. This object
        keeps the end it was returned with."""
        if self._extender is None:
            raise ValueError(
                "this Grant was not returned by a client's wait() or grant(); call "
                f"client.extend({self.name!r}, by=..., justification=...) instead"
            )
        return self._extender(self.name, by=by, justification=justification, namespace=self.namespace)

    @property
    def namespace(self) -> str:
        return self.request.metadata.namespace or ""

    @property
    def expires_at(self) -> datetime | None:
        return self.request.status.expires_at
