"""Admission of an extension (an AccessRequest with `spec.extends`): refused before it is stored when
the rules of lifecycle/extension.py refuse it (someone else's grant, a different scope, a grant that
is not Active, a policy without extensions, past maxCount or maxTotalDuration), with the reason the
agent reads; a dry run is answered in the extension's own words ("extension allowed, needs 1
approval"). The reconciler checks the same rules again when it applies the extension.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from jitgrant.lifecycle.dry_run import Outcome, dry_run_answer
from jitgrant.lifecycle.extension import extension_answer, extension_needs_approval, extension_refusal
from jitgrant.lifecycle.open_requests import OpenRequest
from jitgrant.models import AccessRequest, GrantPolicySpec
from jitgrant.models.dryrun import DryRunWire, encode_refusal, encode_warnings
from jitgrant.models.vocabulary import Reason
from jitgrant.operator.context import AdmissionContext

Refuse = Callable[[AdmissionContext, Mapping[str, Any], Reason, str], Awaitable[None]]


async def guard_extension(
    runtime: AdmissionContext,
    body: Mapping[str, Any],
    *,
    policy: GrantPolicySpec | None,
    dryrun: bool,
    warnings: Any,
    refuse: Refuse,
    existing: OpenRequest | None = None,
    limit: str | None = None,
) -> None:
    """Refuse the extension (through `refuse`: counted and audited like any guardrail) or, for a dry
    run, append its answer to `warnings`. A body that does not parse is left to the usual checks."""
    try:
        request = AccessRequest.from_object(body)
    except ValidationError:
        return
    assert request.spec.extends is not None  # called for extensions only
    namespace = request.metadata.namespace or str((body.get("metadata") or {}).get("namespace") or "")
    stored = await runtime.own.get_request(namespace, request.spec.extends)
    original = None
    if stored is not None and not stored.deleting:
        try:
            original = stored.parse()
        except ValidationError:
            original = None
    refusal = extension_refusal(extension=request.spec, original=original, policy=policy, now=runtime.clock())
    if refusal is not None and not dryrun:
        await refuse(runtime, body, Reason.EXTENSION_REFUSED, refusal)
    if not dryrun:
        return
    if refusal is not None:
        raise kopf.AdmissionError(encode_refusal(Reason.EXTENSION_REFUSED, refusal), code=403)
    # The rest of a request's first decision (the requester, the justification, the duration)
    # holds for an extension too.
    settings = runtime.settings
    first = dry_run_answer(
        body=body,
        policy=policy,
        inline_rules_enabled=settings.inline_rules_enabled,
        operator_namespace=settings.operator_namespace,
        existing=existing,
        limit=limit,
    )
    if first.outcome is Outcome.DENIED:
        raise kopf.AdmissionError(first.refusal, code=first.code)
    assert original is not None and policy is not None  # extension_refusal said yes
    waits = extension_needs_approval(extension=request.spec, original=original, policy=policy)
    people = policy.approval.approvers
    approvers = [f"groups {', '.join(people.groups)}"] if people.groups else []
    approvers += [f"users {', '.join(people.users)}"] if people.users else []
    answer = DryRunWire(
        outcome="pending-approval" if waits else "allowed",
        reason=Reason.AWAITING_APPROVAL if waits else Reason.AUTO_APPROVED,
        message=extension_answer(extension=request.spec, original=original, policy=policy),
        duration=request.spec.duration,
        approvals_needed=policy.approval.min_approvals if waits else 0,
        approvers=" or ".join(approvers) + " (never the requester)" if waits and approvers else None,
    )
    if isinstance(warnings, list):
        warnings.extend(encode_warnings(answer))
