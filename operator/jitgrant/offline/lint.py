"""`jitgrant policy lint`: the apply-time validation (`check_policy`, what the webhook refuses) as
errors, and what a reviewer wants pointed out as warnings. Pure: works on loaded manifests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from jitgrant.models import GrantPolicySpec, PolicyRule
from jitgrant.models.vocabulary import Reason
from jitgrant.offline.loader import LoadedPolicy, Manifests
from jitgrant.policy import (
    DEFAULT_OPERATOR_NAMESPACE,
    breakdown,
    dangerous_parts,
    is_system_namespace,
    rules_cover,
)

READ_VERBS = frozenset({"get", "list", "watch"})
LONG_DURATION = timedelta(hours=1)


class Level(StrEnum):
    ERROR = "error"  # the webhook refuses the policy at apply time (or a file is unusable)
    WARNING = "warning"  # valid, but a reviewer should look


@dataclass(frozen=True)
class Finding:
    path: Path | None
    policy: str
    level: Level
    field: str
    message: str


def _writes(rules: tuple[PolicyRule, ...]) -> list[str]:
    return sorted({verb for rule in rules for verb in rule.verbs if verb not in READ_VERBS})


def _grant_rules(
    spec: GrantPolicySpec, index: int, roles: dict[str, tuple[PolicyRule, ...]]
) -> tuple[PolicyRule, ...] | None:
    option = spec.grants[index]
    if option.rules is not None:
        return option.rules
    return roles.get(option.cluster_role or "")


def _warnings(loaded: LoadedPolicy, spec: GrantPolicySpec, manifests: Manifests) -> list[Finding]:
    name, path = loaded.name, loaded.path
    found: list[Finding] = []

    def warn(field: str, message: str) -> None:
        found.append(Finding(path, name, Level.WARNING, field, message))

    for index, option in enumerate(spec.grants):
        field = f"spec.grants[{index}]"
        rules = _grant_rules(spec, index, manifests.cluster_roles)
        if rules is None:
            warn(
                f"{field}.clusterRole",
                f"ClusterRole '{option.cluster_role}' is not on file: its rules "
                "cannot be checked (add its manifest to the directory)",
            )
            continue
        writes = _writes(rules)
        if writes and not spec.approval.required:
            what = f"ClusterRole '{option.cluster_role}'" if option.cluster_role else "inline rules"
            warn(
                field,
                f"{what} can write (verbs {', '.join(writes)}) and approval.required is false: "
                "granted without a human",
            )
        if option.accept_dangerous:
            warn(
                f"{field}.acceptDangerous",
                f"opts in to dangerous entries {', '.join(option.accept_dangerous)}",
            )
        if option.rules is not None:
            dangers = sorted(
                {part.entry for rule in option.rules for p in breakdown(rule) for part in dangerous_parts(p)}
            )
            if dangers:
                warn(
                    f"{field}.rules", f"inline rules name dangerous entries {', '.join(dangers)} (an opt-in)"
                )
    people = spec.requesters
    if people.dangerously_allow_system_groups:
        warn("spec.requesters.dangerouslyAllowSystemGroups", "admits every caller of a system group")
    for index, entry in enumerate(people.oidc):
        if entry.dangerously_allow_system_claims:
            warn(f"spec.requesters.oidc[{index}].dangerouslyAllowSystemClaims", "accepts 'system:' claims")
    sa_namespaces = sorted({sa.namespace for sa in people.service_accounts})
    wide = []
    if len(sa_namespaces) > 1:
        wide.append(f"ServiceAccounts in {len(sa_namespaces)} namespaces ({', '.join(sa_namespaces)})")
    if people.groups:
        wide.append(f"groups {', '.join(people.groups)}")
    wide += [f"OIDC groups {', '.join(e.groups)} of {e.issuer}" for e in people.oidc if e.groups]
    if wide:
        warn(
            "spec.requesters", "requesters are wider than one namespace's ServiceAccounts: " + "; ".join(wide)
        )
    if spec.max_duration_delta > LONG_DURATION:
        warn("spec.maxDuration", f"maxDuration {spec.max_duration} is over an hour")
    approvers = spec.approval.approvers
    both = sorted(set(approvers.users) & set(people.users)) + sorted(
        set(approvers.groups) & set(people.groups)
    )
    if spec.approval.required and both:
        warn(
            "spec.approval.approvers",
            f"{', '.join(both)} are both requesters and approvers (a requester never "
            "approves their own request, but may approve a peer's)",
        )
    return found


def _namespaces_cover(broad: GrantPolicySpec, narrow: GrantPolicySpec) -> bool:
    def covered(namespace: str) -> bool:
        if namespace in broad.namespaces:
            return True
        return (
            "*" in broad.namespaces
            and namespace != "*"
            and not is_system_namespace(namespace, DEFAULT_OPERATOR_NAMESPACE)
        )

    # A selector may select any non-system namespace: only "*" or the very same selector covers it.
    selected = narrow.namespace_selector is None or (
        "*" in broad.namespaces or broad.namespace_selector == narrow.namespace_selector
    )
    return selected and all(covered(ns) for ns in narrow.namespaces)


def _grants_cover(broad: GrantPolicySpec, narrow: GrantPolicySpec) -> bool:
    broad_rules = tuple(rule for option in broad.grants for rule in option.rules or ())
    for option in narrow.grants:
        if option.rules is not None and not rules_cover(broad_rules, option.rules):
            return False
        if option.cluster_role is not None:
            accepted = {
                e for o in broad.grants if o.cluster_role == option.cluster_role for e in o.accept_dangerous
            }
            if not any(o.cluster_role == option.cluster_role for o in broad.grants):
                return False
            if not set(option.accept_dangerous) <= accepted:
                return False
    return True


def shadows(broad: GrantPolicySpec, narrow: GrantPolicySpec) -> bool:
    """Whether every request `narrow` allows, `broad` allows the same requesters too, with no more
    approval, no stricter justification and no shorter limit: `narrow`'s restrictions are moot."""
    a, b = narrow.requesters, broad.requesters
    requesters = (
        set(a.service_accounts) <= set(b.service_accounts)
        and set(a.users) <= set(b.users)
        and set(a.groups) <= set(b.groups)
        and set(a.oidc) <= set(b.oidc)
    )
    approval = not broad.approval.required or (
        narrow.approval.required
        and broad.approval.min_approvals <= narrow.approval.min_approvals
        and set(narrow.approval.approvers.users) <= set(broad.approval.approvers.users)
        and set(narrow.approval.approvers.groups) <= set(broad.approval.approvers.groups)
    )
    justification = (not broad.justification.required or narrow.justification.required) and (
        broad.justification.pattern in (None, narrow.justification.pattern)
    )
    return (
        requesters
        and approval
        and justification
        and broad.target == narrow.target
        and broad.max_duration_delta >= narrow.max_duration_delta
        and _namespaces_cover(broad, narrow)
        and _grants_cover(broad, narrow)
    )


def lint(manifests: Manifests) -> list[Finding]:
    """Errors (what apply would refuse, unusable files) and warnings, policy by policy."""
    found = [Finding(None, "", Level.ERROR, "(file)", error) for error in manifests.errors]
    valid: dict[str, GrantPolicySpec] = {}
    for loaded in manifests.policies.values():
        check = loaded.check
        if not check.valid or check.spec is None:
            found += [
                Finding(
                    loaded.path,
                    loaded.name,
                    Level.ERROR,
                    problem.split(":", 1)[0],
                    f"{Reason.POLICY_INVALID}: {problem.split(': ', 1)[-1]}",
                )
                for problem in check.problems
            ]
            continue
        valid[loaded.name] = check.spec
        found += _warnings(loaded, check.spec, manifests)
    for name, spec in valid.items():
        for other, broad in valid.items():
            if other != name and shadows(broad, spec):
                found.append(
                    Finding(
                        manifests.policies[name].path,
                        name,
                        Level.WARNING,
                        "spec",
                        f"shadowed by policy {other}: every request it allows, {other} allows the same "
                        "requesters with no more approval, justification or duration limit",
                    )
                )
    return found
