"""The validating webhook on GrantPolicy: a policy the operator could not use is refused at apply time.

It runs `jitgrant.policy.check_policy`, the same pydantic validation the operator parses policies with
plus the rules no schema states, so `kubectl apply` answers with the field and the fix instead of
the policy being stored and every request under it denied later. A policy stored while the webhook
was missing still denies its requests, as `PolicyInvalid` with the same sentences.

Importing this module registers the handler on kopf's default registry; `register` adds it to another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from kopf.on import WebhookDecorator

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.vocabulary import Reason
from jitgrant.policy import check_policy

PLURAL = "grantpolicies"
VALIDATE_POLICY_ID = "validate-policy"


def refusal(body: Mapping[str, Any]) -> str | None:
    """Why this GrantPolicy must not be stored, or None."""
    check = check_policy(body.get("spec"))
    if check.valid:
        return None
    name = (body.get("metadata") or {}).get("name") or "(unnamed)"
    return f"GrantPolicy {name} refused ({Reason.POLICY_INVALID}): {check.message}"


def _validating(registry: kopf.OperatorRegistry | None = None) -> WebhookDecorator:
    return kopf.on.validate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=VALIDATE_POLICY_ID,
        operations=["CREATE", "UPDATE"],
        ignore_failures=False,  # failurePolicy: Fail
        registry=registry,
    )


@_validating()
async def validate_policy(*, body: kopf.Body, **_: Any) -> None:
    reason = refusal(body)
    if reason is not None:
        raise kopf.AdmissionError(reason, code=422)


def register(registry: kopf.OperatorRegistry) -> None:
    """Register the same webhook on another registry (embedded operators, tests)."""
    _validating(registry)(validate_policy)
