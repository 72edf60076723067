"""The answer to a dryRun create of an AccessRequest: the operator's own first decision, unstored.

The validating webhook runs this after the requester was stamped and sealed. The decision is
`jitgrant.lifecycle.dry_run.dry_run_answer` (the same `decide_new` the reconciler runs on a new
request, and the function `jitgrant policy test` evaluates offline), so `check` can never disagree
with what filing the request would do. Allowed and pending come back as admission warnings, denied
as the refusal message, each starting `jitgrant.dev/dry-run: <Reason>: `; nothing is stored, audited
or counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from jitgrant.lifecycle.dry_run import Outcome, dry_run_answer
from jitgrant.lifecycle.open_requests import OpenRequest
from jitgrant.models import GrantPolicySpec
from jitgrant.policy.gate import PolicyRefusal


async def answer_dry_run(
    *,
    body: Mapping[str, Any],
    policy: GrantPolicySpec | None,
    inline_rules_enabled: bool,
    operator_namespace: str,
    warnings: list[str],
    existing: OpenRequest | None = None,
    limit: str | None = None,
    refusal: PolicyRefusal | None = None,
) -> None:
    """Append the decision to `warnings`, or raise the denial as an AdmissionError."""
    answer = dry_run_answer(
        body=body,
        policy=policy,
        inline_rules_enabled=inline_rules_enabled,
        operator_namespace=operator_namespace,
        existing=existing,
        limit=limit,
        refusal=refusal,
    )
    if answer.outcome is Outcome.DENIED:
        raise kopf.AdmissionError(answer.refusal, code=answer.code)
    warnings.extend(answer.warnings())
