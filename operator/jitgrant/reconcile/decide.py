"""Deciding a pass's next step: the request parsed, its policy read once per pass, the seal checked,
the approvals counted, the guardrails' order (an earlier open request, the policy's limits) applied;
then `lifecycle.next_step` (pure) decides and `lifecycle.final_step` finishes the step."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from jitgrant.approvals.counting import ApprovalTally, tally
from jitgrant.approvals.receipts import parse_recorded
from jitgrant.clusters.port import StoredRequest
from jitgrant.identity.stamp import verify_requester_seal
from jitgrant.lifecycle import Action, Step, next_step
from jitgrant.lifecycle.final_step import final_step
from jitgrant.lifecycle.open_requests import OpenRequest, limit_refusal
from jitgrant.models import (
    AccessRequest,
    GrantPolicySpec,
    Phase,
)
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    REQUESTER_SEAL_ANNOTATION,
    Reason,
)
from jitgrant.reconcile.effects import Pass, status_patch
from jitgrant.reconcile.guardrails import idle_check, scoped_to_namespace
from jitgrant.reconcile.policies import load_policy

log = logging.getLogger("jitgrant.reconcile")


# An approval reaches Active in the same pass: Pending -> Approved -> Active needs three steps; the
# rest leaves room to decide again after a status write that lost to a concurrent change.
_MAX_STEPS_PER_PASS = 6


async def decide(p: Pass, stored: StoredRequest) -> tuple[Step, AccessRequest | None, GrantPolicySpec | None]:
    try:
        request = stored.parse()
    except ValidationError as exc:
        if stored.phase is not None and stored.phase.terminal:
            return Step(Action.NONE), None, None
        await fail_unparseable(p, stored, exc)
        return Step(Action.NONE), None, None
    settings = p.engine.settings
    name = request.spec.policy
    if name not in p.policies:
        p.policies[name] = await load_policy(p.engine.own, name, p.engine.watched_policies)
    policy, policy_problem = p.policies[name]
    policy = await scoped_to_namespace(p.engine, policy, request.spec.namespace)
    seal_valid = verify_requester_seal(
        key=settings.receipt_key,
        namespace=stored.namespace,
        name=stored.name,
        spec=stored.spec,
        seal=stored.annotations.get(REQUESTER_SEAL_ANNOTATION),
    )
    step = next_step(
        request=request,
        policy=policy,
        now=p.engine.clock(),
        seal_valid=seal_valid,
        tally=approval_tally(p, stored, request, policy),
        inline_rules_enabled=settings.inline_rules_enabled,
        operator_namespace=settings.operator_namespace,
        existing=duplicate_of(p, stored, policy),
        limit=limit(p, stored, policy),
    )
    if policy_problem is None and step.action is Action.WAIT:
        # An Active grant waiting for its expiry may end idle first.
        step = await idle_check(p.engine, request, policy) or step
    step = final_step(
        step,
        policy_problem=policy_problem,
        key=settings.receipt_key,
        uid=stored.uid,
        annotations=stored.annotations,
    )
    if stored.phase is None and step.action in (Action.PEND, Action.APPROVE):
        # Decided on: a duplicate reconciled before this decision's write lands loses to it (no
        # await between the check above and this mark, so no other pass runs in between).
        p.engine.open_requests.claim(stored.body)
    return step, request, policy


def duplicate_of(p: Pass, stored: StoredRequest, policy: GrantPolicySpec | None) -> OpenRequest | None:
    """Another open request of the same requester and scope that this new one loses to."""
    if stored.phase is not None or (policy is not None and not policy.limits.one_open_per_scope):
        return None
    return p.engine.open_requests.supersedes(stored.body)


def limit(p: Pass, stored: StoredRequest, policy: GrantPolicySpec | None) -> str | None:
    """Past the policy's spec.limits, counting only what comes before this request (a race
    between replicas' admissions is closed here, the same way on any leader)."""
    if stored.phase is not None or policy is None:
        return None
    return limit_refusal(
        p.engine.open_requests,
        stored.body,
        limits=policy.limits,
        now=p.engine.clock(),
        at_reconcile=True,
    )


def approval_tally(
    p: Pass, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec | None
) -> ApprovalTally | None:
    if policy is None or request.spec.requester is None:
        return None
    return tally(
        policy=policy.approval,
        requester=request.spec.requester,
        recorded=parse_recorded(stored.annotations.get(APPROVALS_ANNOTATION)),
        key=p.engine.settings.receipt_key,
        request_uid=stored.uid,
        spec=stored.spec,
    )


async def fail_unparseable(p: Pass, stored: StoredRequest, exc: ValidationError) -> None:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
    status = status_patch(
        phase=Phase.FAILED, reason=Reason.INVALID_REQUEST, message=problems, ended_at=p.now()
    )
    await p.engine.own.patch_request_status(
        stored.namespace, stored.name, status, resource_version=stored.resource_version
    )
