"""May a request be filed under this policy at all? Asked at admission before anything is stored.

Issue 24 §5: the answer before filing must be the answer after. A request naming a policy that does
not exist, does not parse, or whose Ready condition is False would only be stored to end Denied or
Failed; the validating webhook refuses it instead, with the message its dry run gives (so `check`,
`--dry-run` and the real request say the same words).

Which Ready states refuse: only `False` written for the policy's current generation. `Unknown` (the
target or an IdP could not be reached) decides nothing, as the reconciler waits such trouble out; a
condition written for an older generation is stale (the leader rewrites it within seconds of the
edit); no condition yet means not judged. Ready is judged for the policy as a whole: a policy with
one missing ClusterRole refuses requests for its others too, until the platform team fixes it.

Pure: the webhook passes the policy object as it read or watched it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jitgrant.models import GrantPolicySpec
from jitgrant.models.vocabulary import READY_CONDITION, Reason
from jitgrant.policy.validation import PolicyCheck, check_policy


@dataclass(frozen=True)
class ReadyState:
    """The Ready condition as the operator last wrote it, and whether it is about the current spec."""

    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    current: bool  # written for metadata.generation (status.observedGeneration)


@dataclass(frozen=True)
class PolicyRefusal:
    """Why no request may be filed under the policy: the admission refusal and the dry run's answer."""

    reason: Reason
    message: str


def ready_state(body: Mapping[str, Any] | None) -> ReadyState | None:
    """The policy object's Ready condition, or None when the operator has not written one."""
    if body is None:
        return None
    status = body.get("status") or {}
    condition = next(
        (
            c
            for c in status.get("conditions") or ()
            if isinstance(c, Mapping) and c.get("type") == READY_CONDITION
        ),
        None,
    )
    if condition is None:
        return None
    generation = (body.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    return ReadyState(
        status=str(condition.get("status") or "Unknown"),
        reason=str(condition.get("reason") or ""),
        message=str(condition.get("message") or ""),
        # Without generations (a test double's object) the condition is taken as current.
        current=generation is None or observed is None or observed == generation,
    )


def policy_not_found_message(name: str) -> str:
    return f"GrantPolicy {name!r} does not exist; ask the platform team which to use (jitgrant policies)"


def policy_invalid_message(name: str, check: PolicyCheck) -> str:
    return f"GrantPolicy {name!r} is invalid: {check.message}; the platform team must fix it"


def not_ready(name: str, state: ReadyState | None) -> PolicyRefusal | None:
    """The refusal for a policy whose current Ready condition is False; None otherwise."""
    if state is None or state.status != "False" or not state.current:
        return None
    return PolicyRefusal(
        Reason.POLICY_NOT_READY,
        f"GrantPolicy {name!r} is not Ready ({state.reason}: {state.message}); a request under it would "
        "end Failed, so none is filed: ask the platform team to fix the policy, or use another that is "
        "Ready (jitgrant policies)",
    )


def policy_gate(
    name: str, body: Mapping[str, Any] | None
) -> tuple[GrantPolicySpec | None, PolicyRefusal | None]:
    """The policy's spec, and why no request may be filed under it (or None)."""
    if body is None:
        return None, PolicyRefusal(Reason.POLICY_NOT_FOUND, policy_not_found_message(name))
    check = check_policy(body.get("spec"))
    if not check.valid or check.spec is None:
        return None, PolicyRefusal(Reason.POLICY_INVALID, policy_invalid_message(name, check))
    return check.spec, not_ready(name, ready_state(body))
