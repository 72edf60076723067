"""The answer to a dryRun create of an AccessRequest: the operator's own first decision, unstored.

The validating webhook runs this after the requester was stamped and sealed, with the same
`decide_new` the reconciler runs on a new request, so `check` can never disagree with what filing the
request would do. Allowed and pending come back as admission warnings, denied as the refusal message,
each starting `jitgrant.dev/dry-run: <Reason>: `; nothing is stored, audited or counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from jitgrant.lifecycle import Action
from jitgrant.lifecycle.open_requests import OpenRequest
from jitgrant.lifecycle.transitions import decide_new
from jitgrant.models import AccessRequest, GrantPolicySpec, format_duration
from jitgrant.models.vocabulary import DRY_RUN_WARNING


def _approvers(policy: GrantPolicySpec) -> str:
    people = policy.approval.approvers
    parts = [f"groups {', '.join(people.groups)}"] if people.groups else []
    parts += [f"users {', '.join(people.users)}"] if people.users else []
    return " or ".join(parts) + " (never the requester)"


async def answer_dry_run(
    *,
    body: Mapping[str, Any],
    policy: GrantPolicySpec | None,
    inline_rules_enabled: bool,
    operator_namespace: str,
    warnings: list[str],
    existing: OpenRequest | None = None,
    limit: str | None = None,
) -> None:
    """Append the decision to `warnings`, or raise the denial as an AdmissionError."""
    try:
        request = AccessRequest.from_object(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise kopf.AdmissionError(f"{DRY_RUN_WARNING}: InvalidRequest: {problems}", code=400) from exc
    step = decide_new(
        request=request,
        policy=policy,
        seal_valid=True,  # review_create verified the seal before this runs
        inline_rules_enabled=inline_rules_enabled,
        operator_namespace=operator_namespace,
        existing=existing,
        limit=limit,
    )
    if step.action in (Action.FAIL, Action.DENY):
        raise kopf.AdmissionError(f"{DRY_RUN_WARNING}: {step.reason}: {step.message}", code=403)
    assert policy is not None  # decide_new denies without one
    duration = format_duration(step.duration) if step.duration is not None else ""
    if step.action is Action.PEND:
        needed = policy.approval.min_approvals
        message = f"needs {needed} approval(s) from {_approvers(policy)} under policy {request.spec.policy}"
        details = f"duration={duration}; approvals={needed}; approvers={_approvers(policy)}"
    else:
        message = step.message
        details = f"duration={duration}; approvals=0; approvers="
    warnings.append(f"{DRY_RUN_WARNING}: {step.reason}: {message}; would be granted for {duration}")
    warnings.append(f"{DRY_RUN_WARNING}-detail: {details}")
