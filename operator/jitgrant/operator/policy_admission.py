"""The validating webhook on GrantPolicy: a policy the operator could not use is refused at apply time.

It runs `jitgrant.policy.check_policy`, the same pydantic validation the operator parses policies with
plus the rules no schema states, so `kubectl apply` answers with the field and the fix instead of
the policy being stored and every request under it denied later. A policy stored while the webhook
was missing still denies its requests, as `PolicyInvalid` with the same sentences.

Importing this module registers the handler on kopf's default registry; `register` adds it to another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from kopf.on import WebhookDecorator

from jitgrant.lifecycle.idle import idle_refusal
from jitgrant.models import API_GROUP, API_VERSION, TargetType
from jitgrant.models.vocabulary import Reason
from jitgrant.policy import check_policy, rules_of
from jitgrant.policy.deny import apply_deny_refusal
from jitgrant.policy.notifications import unknown_notifiers
from jitgrant.policy.scope import policy_cluster_roles
from jitgrant.reconcile.guardrails import activity_source

PLURAL = "grantpolicies"
log = logging.getLogger("jitgrant.policy_admission")
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


async def deny_refusal(body: Mapping[str, Any], runtime: Any) -> str | None:
    """Why this (valid) GrantPolicy must not be stored because what it grants meets a deny rule: its
    inline rules, and the live rules of the ClusterRoles it names in this cluster. A
    ClusterRole that cannot be read now is judged by the Ready check and again at grant time."""
    check = check_policy(body.get("spec"))
    if check.spec is None or runtime is None:
        return None
    spec, roles = check.spec, {}
    own = getattr(runtime, "own", None)
    if own is not None and spec.target.type is TargetType.IN_CLUSTER:
        for role in policy_cluster_roles(spec):
            try:
                read = await own.read_cluster_role(role)
            except Exception as error:  # judged by the Ready check and at grant time instead
                log.warning("could not read ClusterRole %s to check deny rules: %s", role, error)
                continue
            if read.found:
                roles[role] = rules_of(read.body)
    problems = apply_deny_refusal(spec, roles, getattr(runtime.settings, "deny_rules", ()))
    if problems is None:
        return None
    name = (body.get("metadata") or {}).get("name") or "(unnamed)"
    return f"GrantPolicy {name} refused ({Reason.DENY_RULE_MATCHED}): {problems}"


def _notifier_refusal(body: Mapping[str, Any], runtime: Any) -> str | None:
    """A spec.notifications naming a notifier this operator does not have."""
    check = check_policy(body.get("spec"))
    if check.spec is None or check.spec.notifications is None or runtime is None:
        return None
    notifier = getattr(runtime, "notifier", None)
    configured = [n.name for n in getattr(notifier, "notifiers", ())]
    problem = unknown_notifiers(check.spec.notifications, configured)
    if problem is None:
        return None
    name = (body.get("metadata") or {}).get("name") or "(unnamed)"
    return f"GrantPolicy {name} refused ({Reason.POLICY_INVALID}): {problem}"


def _idle_refusal(body: Mapping[str, Any], runtime: Any) -> str | None:
    """A spec.idleTimeout nothing could enforce: no activity source for the target."""
    check = check_policy(body.get("spec"))
    if check.spec is None or check.spec.idle_timeout is None or runtime is None:
        return None
    problem = idle_refusal(check.spec, has_source=activity_source(runtime, check.spec) is not None)
    if problem is None:
        return None
    name = (body.get("metadata") or {}).get("name") or "(unnamed)"
    return f"GrantPolicy {name} refused ({Reason.POLICY_INVALID}): {problem}"


@_validating()
async def validate_policy(*, body: kopf.Body, memo: Any = None, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None) if memo is not None else None
    reason = (
        refusal(body)
        or await deny_refusal(body, runtime)
        or _notifier_refusal(body, runtime)
        or _idle_refusal(body, runtime)
    )
    if reason is not None:
        raise kopf.AdmissionError(reason, code=422)


def register(registry: kopf.OperatorRegistry) -> None:
    """Register the same webhook on another registry (embedded operators, tests)."""
    _validating(registry)(validate_policy)
