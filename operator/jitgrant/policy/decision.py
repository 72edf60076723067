"""The policy decision: does this request fit this policy, and if not, every reason why.

All checks run, even after the first refusal, so one status message tells the requester everything
it must change. Pure: no I/O, no clock; the handler supplies everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from jitgrant.models import (
    AccessRequestSpec,
    GrantPolicySpec,
    JustificationPolicy,
    PolicyRule,
    RequesterStamp,
    format_duration,
)
from jitgrant.models.policy import LabelSelector
from jitgrant.models.text import visible
from jitgrant.policy.dangerous import is_system_namespace
from jitgrant.policy.rbac import WILDCARD
from jitgrant.policy.requesters import requester_reason
from jitgrant.policy.scope import scope_reasons

DEFAULT_OPERATOR_NAMESPACE = "jitgrant-system"

# RFC 1123 label, what the API server accepts as a namespace name.
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

# Justifications are quoted back in reasons; keep the quote short.
_QUOTE_LIMIT = 80


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of `decide`.

    `cluster_role` and `rules` echo the requested scope (what is granted when allowed); `duration`
    is the granted window (the request's, or the policy's default) and None when refused.
    """

    allowed: bool
    reasons: tuple[str, ...]
    duration: timedelta | None
    needs_approval: bool
    cluster_role: str | None
    rules: tuple[PolicyRule, ...]

    @property
    def message(self) -> str:
        """All reasons in one line, for a status message or an event."""
        return "; ".join(self.reasons) if self.reasons else "allowed"


def _namespace_reason(
    *,
    policy_name: str,
    allowed: tuple[str, ...],
    namespace: str,
    operator_namespace: str,
    selector: LabelSelector | None = None,
) -> str | None:
    listed = [entry for entry in allowed if entry != WILDCARD]
    labelled = [f"non-system namespaces labelled {selector.describe()}"] if selector is not None else []
    allowed_text = ", ".join(
        listed + (["any non-system namespace"] if WILDCARD in allowed else []) + labelled
    )
    if namespace in ("", WILDCARD):
        return (
            f"namespace '{namespace}' asks for cluster-wide access, which jitgrant never grants: "
            f"name one namespace (allowed by policy {policy_name}: {allowed_text})"
        )
    if not _NAMESPACE_NAME.fullmatch(namespace):
        return (
            f"namespace '{namespace}' is not a valid namespace name "
            f"(allowed by policy {policy_name}: {allowed_text})"
        )
    if namespace in listed:
        return None
    if is_system_namespace(namespace, operator_namespace):
        return (
            f"namespace '{namespace}' is a system namespace and policy {policy_name} does not list it "
            f"by name (allowed: {allowed_text})"
        )
    if WILDCARD in allowed:
        return None
    return f"namespace '{namespace}' is not in policy {policy_name} (allowed: {allowed_text})"


def allowed_durations(policy: GrantPolicySpec) -> str:
    """The range a request's duration must fall in, as the refusal states it."""
    low, high = policy.min_duration_delta, policy.max_duration_delta
    if low == high:
        return f"exactly {format_duration(high)}"
    if low > timedelta(0):
        return f"{format_duration(low)} to {format_duration(high)}"
    return f"{format_duration(high)} or less"


def duration_reason(*, policy_name: str, policy: GrantPolicySpec, duration: timedelta) -> str | None:
    """Why this duration is outside the policy's minDuration..maxDuration, or None."""
    low, high = policy.min_duration_delta, policy.max_duration_delta
    if duration > high:
        limit = f"longer than policy {policy_name}'s maxDuration {format_duration(high)}"
    elif duration < low:
        limit = f"shorter than policy {policy_name}'s minDuration {format_duration(low)}"
    else:
        return None
    return f"duration {format_duration(duration)} is {limit} (ask for {allowed_durations(policy)})"


def _quote(text: str) -> str:
    text = visible(text)  # quoted back in refusals and status messages, which terminals show
    return text if len(text) <= _QUOTE_LIMIT else f"{text[:_QUOTE_LIMIT]}..."


def _justification_reason(*, policy_name: str, rule: JustificationPolicy, justification: str) -> str | None:
    """The pattern is searched, as JSON Schema `pattern` and CEL `matches()` do: the policy anchors it
    with ^ and $ where it means to (the documented example is '^(INC|CHG)-[0-9]+', so
    "INC-42 restart stuck checkout" passes). It applies whenever a justification is given, and an
    optional justification may be left empty."""
    text = justification.strip()
    pattern_text = f" matching '{rule.pattern}'" if rule.pattern else ""
    if not text:
        if rule.required:
            return f"a justification is required by policy {policy_name} (give one{pattern_text})"
        return None
    if rule.pattern is None:
        return None
    try:
        pattern = re.compile(rule.pattern)
    except re.error as error:
        return (
            f"policy {policy_name} has an invalid justification pattern '{rule.pattern}' ({error}), "
            "so no justification can pass; the platform team must fix the policy"
        )
    if pattern.search(text) is None:
        return (
            f"justification '{_quote(text)}' does not match policy {policy_name}'s pattern '{rule.pattern}'"
        )
    return None


def decide(
    *,
    policy_name: str,
    policy: GrantPolicySpec,
    request: AccessRequestSpec,
    requester: RequesterStamp,
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE,
    inline_rules_enabled: bool,
    check_duration: bool = True,
) -> PolicyDecision:
    """Decide whether `request`, made by `requester`, fits the GrantPolicy named `policy_name`.

    `requester` is the stamp the admission webhook set (or the verified OIDC identity), passed
    separately so the caller states which identity it trusts. `check_duration=False` leaves the
    window out: a live grant under a shortened maxDuration is cut short, not ended (lifecycle).
    """
    duration = request.duration_delta or policy.default_duration_delta
    candidates: list[str | None] = [
        None
        if request.policy == policy_name
        else f"the request names policy '{request.policy}' but was checked against policy '{policy_name}'",
        requester_reason(policy_name=policy_name, requesters=policy.requesters, requester=requester),
        _namespace_reason(
            policy_name=policy_name,
            allowed=policy.namespaces,
            selector=policy.namespace_selector,
            namespace=request.namespace,
            operator_namespace=operator_namespace,
        ),
        *scope_reasons(
            policy_name=policy_name, policy=policy, request=request, inline_rules_enabled=inline_rules_enabled
        ),
        duration_reason(policy_name=policy_name, policy=policy, duration=duration)
        if check_duration
        else None,
        _justification_reason(
            policy_name=policy_name, rule=policy.justification, justification=request.justification
        ),
    ]
    reasons = tuple(reason for reason in candidates if reason is not None)
    allowed = not reasons
    return PolicyDecision(
        allowed=allowed,
        reasons=reasons,
        duration=duration if allowed else None,
        needs_approval=policy.approval.required,
        cluster_role=request.cluster_role,
        rules=request.rules or (),
    )
