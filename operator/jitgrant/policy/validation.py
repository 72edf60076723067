"""Is a GrantPolicy usable as written, and is it ready to grant?

Two questions, asked in two places. `check_policy` is the apply-time question: the same pydantic
validation the operator parses with, plus the rules no schema states (malformed RBAC entries in the
policy's inline rules, acceptDangerous entries that name nothing dangerous). The validating webhook
refuses a policy that fails it, and a policy stored before the webhook existed (or while it was
bypassed) denies its requests as `PolicyInvalid` with the same sentences, instead of pretending the
policy does not exist. `readiness` is the live question the status handler asks: does each named
ClusterRole exist, may the operator bind it, and does it hold nothing dangerous the policy did not
accept.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from jitgrant.models import DenyRule, GrantPolicySpec, PolicyRule
from jitgrant.models.vocabulary import Reason
from jitgrant.policy.cluster_roles import widened_reason
from jitgrant.policy.dangerous import DANGEROUS_ENTRIES
from jitgrant.policy.deny import cluster_role_deny_problems, inline_deny_problems
from jitgrant.policy.rbac import malformed_entries
from jitgrant.policy.scope import policy_cluster_roles

_MAX_PROBLEMS = 10


@dataclass(frozen=True)
class PolicyCheck:
    """The parsed spec, or None, and every problem found, each naming its field."""

    spec: GrantPolicySpec | None
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return self.spec is not None and not self.problems

    @property
    def message(self) -> str:
        return "; ".join(self.problems)


def _location(loc: Sequence[int | str]) -> str:
    text = "spec"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def validation_problems(error: ValidationError) -> tuple[str, ...]:
    """One sentence per pydantic error: the field, then what is wrong with it."""
    errors = error.errors(include_url=False)
    locations = [tuple(item["loc"]) for item in errors]
    problems = []
    for item in errors:
        loc = tuple(item["loc"])
        # A list left empty because its one item failed says nothing the item's own error does not.
        if any(other != loc and other[: len(loc)] == loc for other in locations):
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{_location(loc)}: {message}")
    return tuple(problems[:_MAX_PROBLEMS])


def _rule_problems(index: int, rules: Sequence[PolicyRule]) -> list[str]:
    return [
        f"spec.grants[{index}].rules[{number}]: {problem}"
        for number, rule in enumerate(rules)
        for problem in malformed_entries(rule)
    ]


def lint(spec: GrantPolicySpec) -> tuple[str, ...]:
    """What the schema cannot say: RBAC entries that match nothing, opt-ins that opt in to nothing."""
    problems: list[str] = []
    known = ", ".join(sorted(DANGEROUS_ENTRIES))
    for index, option in enumerate(spec.grants):
        problems += _rule_problems(index, option.rules or ())
        problems += [
            f"spec.grants[{index}].acceptDangerous: '{entry}' is not on the dangerous list (known: {known})"
            for entry in option.accept_dangerous
            if entry not in DANGEROUS_ENTRIES
        ]
    problems += inline_deny_problems(spec)  # spec.deny; the cluster-wide rules need the operator's settings
    return tuple(problems)


def check_policy(spec: Mapping[str, Any] | None) -> PolicyCheck:
    """Parse and lint a GrantPolicy's spec as stored or as submitted."""
    try:
        parsed = GrantPolicySpec.model_validate(dict(spec or {}))
    except ValidationError as error:
        return PolicyCheck(spec=None, problems=validation_problems(error))
    return PolicyCheck(spec=parsed, problems=lint(parsed))


@dataclass(frozen=True)
class ClusterRoleState:
    """What the operator found about one ClusterRole a policy names, in the policy's target cluster."""

    name: str
    found: bool
    bindable: bool
    rules: tuple[PolicyRule, ...] = ()


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: Reason
    message: str


def readiness(
    *,
    policy_name: str,
    check: PolicyCheck,
    roles: Sequence[ClusterRoleState],
    cluster_wide_deny: Sequence[DenyRule] = (),
) -> Readiness:
    """The policy's Ready condition: every problem in one message, the reason of the first kind found."""
    if not check.valid or check.spec is None:
        return Readiness(False, Reason.POLICY_INVALID, check.message)
    found: list[tuple[Reason, str]] = []
    live = {role.name: role.rules for role in roles if role.found and role.bindable}
    denied = inline_deny_problems(check.spec, cluster_wide_deny)
    denied += cluster_role_deny_problems(check.spec, live, cluster_wide_deny)
    found += [(Reason.DENY_RULE_MATCHED, problem) for problem in denied]
    for role in roles:
        if not role.found:
            found.append((Reason.CLUSTER_ROLE_NOT_FOUND, f"ClusterRole '{role.name}' does not exist"))
        elif not role.bindable:
            found.append(
                (
                    Reason.CLUSTER_ROLE_NOT_BINDABLE,
                    f"the operator may not bind ClusterRole '{role.name}' (add it to the Helm value "
                    "grantableClusterRoles)",
                )
            )
        else:
            widened = widened_reason(
                policy_name=policy_name, policy=check.spec, cluster_role=role.name, rules=role.rules
            )
            if widened is not None:
                found.append((Reason.CLUSTER_ROLE_WIDENED, widened))
    if found:
        return Readiness(False, found[0][0], "; ".join(message for _, message in found))
    roles_text = ", ".join(policy_cluster_roles(check.spec)) or "none"
    return Readiness(True, Reason.POLICY_READY, f"valid; ClusterRoles bindable and as accepted: {roles_text}")
