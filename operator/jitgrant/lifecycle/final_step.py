"""The step a pass carries out, from the one `next_step` decided: an invalid policy turns anything that
moves toward a grant into a `PolicyInvalid` denial, and a revocation names who revoked it. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from jitgrant.lifecycle.revoker import named_revoker
from jitgrant.lifecycle.transitions import Action, Step
from jitgrant.models.vocabulary import Reason

# Steps that would decide or issue a grant: under an invalid policy they become a PolicyInvalid denial.
_GRANTWARD = frozenset({Action.APPROVE, Action.PEND, Action.ACTIVATE, Action.RECORD_APPROVALS})
_REPLACED_DENIALS = frozenset({Reason.POLICY_NOT_FOUND, Reason.POLICY_REFUSED})


def invalid_policy_step(step: Step, *, problem: str) -> Step:
    """The step to take instead when the policy is invalid: nothing moves toward a grant under it."""
    denial = step.action is Action.DENY and step.reason in _REPLACED_DENIALS
    if step.action in _GRANTWARD or denial:
        return Step(Action.DENY, reason=Reason.POLICY_INVALID, message=problem)
    if step.action is Action.REVOKE and step.reason == Reason.POLICY_CHANGED:
        # A live grant under a policy that no longer parses ends as under a deleted one (an invalid
        # policy allows nothing), saying what is wrong with it rather than "deleted".
        return Step(Action.REVOKE, reason=Reason.POLICY_CHANGED, message=f"{problem}; the grant ended")
    return step


def final_step(
    step: Step, *, policy_problem: str | None, key: bytes, uid: str, annotations: Mapping[str, str]
) -> Step:
    """`step` as carried out: an invalid policy is not a missing one (say what is wrong with it), and
    a revocation's message says who revoked, as proven by the webhook's stamp."""
    if policy_problem is not None:
        step = invalid_policy_step(step, problem=policy_problem)
    return named_revoker(step, key=key, uid=uid, annotations=annotations)
