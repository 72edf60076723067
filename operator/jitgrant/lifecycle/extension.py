"""Extending an Active grant (issue 25 section 1; docs/identity-and-approvals.md, "Extending an active
grant"): pure decisions on an AccessRequest with `spec.extends`, shared by admission (refused before it
is stored), the dry run and the reconciler (checked again when it is applied).

An extension is a request of its own: the policy says whether it is allowed, how many and how much in
total (`spec.extensions`), and whether a human must approve it. Applied, it moves the original grant's
`expiresAt` later by its duration; no object is created, so there is no gap and nothing new to remove.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from jitgrant.models import AccessRequest, AccessRequestSpec, GrantPolicySpec, Phase, parse_duration
from jitgrant.models.vocabulary import format_time, parse_time

# The fields that make a grant's scope: an extension must repeat each of them exactly.
SCOPE_FIELDS = ("policy", "namespace", "cluster_role", "rules")


def extended_end(status: Mapping[str, Any]) -> datetime | None:
    """The end applied extensions moved a live grant's window to, from its stored status; None when
    it was never extended. The grant's objects keep the expires-at annotation they were issued with
    (the sweep's backstop), so the sweep asks this before removing them at that earlier time."""
    if status.get("phase") != Phase.ACTIVE.value or not status.get("extensions"):
        return None
    try:
        return parse_time(str(status.get("expiresAt")))
    except ValueError:
        return None


def extended_total(original: AccessRequest) -> timedelta:
    """What the extensions applied so far added to the grant's window."""
    return sum((parse_duration(entry.by) for entry in original.status.extensions), timedelta(0))


def extension_allowance(original: AccessRequest, policy: GrantPolicySpec) -> timedelta:
    """How far past `activatedAt + maxDuration` the policy lets this grant run now: what its applied
    extensions added, within the policy's current cap (none once the policy stops allowing them)."""
    if not policy.extensions.allowed:
        return timedelta(0)
    return min(extended_total(original), policy.extensions.max_total_delta)


def _by(extension: AccessRequestSpec) -> timedelta | None:
    try:
        return extension.duration_delta
    except ValueError:
        return None


def extension_refusal(
    *,
    extension: AccessRequestSpec,
    original: AccessRequest | None,
    policy: GrantPolicySpec | None,
    now: datetime,
) -> str | None:
    """Why this extension may not be applied, naming what was given and what would be accepted; None
    when it may. The order puts who asks first: someone else's grant is refused before anything about
    it (its phase, its scope) is told."""
    name = extension.extends
    if original is None:
        return f"spec.extends: AccessRequest {name!r} does not exist in namespace {extension.namespace}"
    asker = extension.requester.username if extension.requester else ""
    owner = original.spec.requester.username if original.spec.requester else ""
    if not asker or asker != owner:
        return f"spec.extends: only the requester of {name} may extend it (you are {asker or 'unknown'})"
    if original.spec.extends is not None:
        return f"spec.extends: {name} is itself an extension; extend {original.spec.extends} instead"
    differs = [field for field in SCOPE_FIELDS if getattr(extension, field) != getattr(original.spec, field)]
    if differs:
        wanted = ", ".join(f"{f}={getattr(original.spec, f)!r}" for f in differs)
        return (
            f"an extension's scope must equal the original's; {', '.join(differs)} differ "
            f"(an extension of {name} must ask for {wanted}): an extension never widens a grant"
        )
    phase = original.status.phase
    expires_at = original.status.expires_at
    if phase is not Phase.ACTIVE or expires_at is None or now >= expires_at:
        shown = phase.value if phase else "not yet decided"
        return f"spec.extends: {name} is {shown}; only an Active grant may be extended"
    if policy is None:
        return f"GrantPolicy {extension.policy!r} does not exist"
    rules = policy.extensions
    if not rules.allowed:
        return f"policy {extension.policy} does not allow extensions (spec.extensions.allowed is false)"
    count = len(original.status.extensions)
    if count >= rules.max_count:
        return (
            f"{name} was extended {count} time(s); policy {extension.policy} allows at most "
            f"{rules.max_count} (spec.extensions.maxCount)"
        )
    by = _by(extension)
    if by is None or by <= timedelta(0):
        return f"spec.duration: an extension names how much to add (e.g. 10m), got {extension.duration!r}"
    total = extended_total(original) + by
    if total > rules.max_total_delta:
        left = max(rules.max_total_delta - extended_total(original), timedelta(0))
        return (
            f"spec.duration: extending {name} by {extension.duration} would add {_text(total)} in all, past "
            f"policy {extension.policy}'s maxTotalDuration of {rules.max_total_duration} "
            f"(at most {_text(left)} more may be added)"
        )
    return None


def extension_needs_approval(
    *, extension: AccessRequestSpec, original: AccessRequest, policy: GrantPolicySpec
) -> bool:
    """Under a policy that requires approval, an extension waits for its approvers unless the running
    total stays within `autoApproveUpTo`; under one that does not, it never waits."""
    if not policy.approval.required:
        return False
    by = _by(extension) or timedelta(0)
    return extended_total(original) + by > policy.extensions.auto_approve_delta


def extended_until(*, extension: AccessRequestSpec, original: AccessRequest) -> datetime:
    """The grant's end once this extension is applied."""
    assert original.status.expires_at is not None  # extension_refusal: only an Active grant
    return original.status.expires_at + (_by(extension) or timedelta(0))


def extension_answer(
    *, extension: AccessRequestSpec, original: AccessRequest, policy: GrantPolicySpec
) -> str:
    """The dry run's and the pending status's words, e.g. "extension allowed, needs 1 approval"."""
    until = format_time(extended_until(extension=extension, original=original))
    if extension_needs_approval(extension=extension, original=original, policy=policy):
        return (
            f"extension allowed, needs {policy.approval.min_approvals} approval(s); "
            f"{extension.extends} would then end at {until}"
        )
    return f"extension allowed, approved without a human; {extension.extends} would end at {until}"


def _text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
