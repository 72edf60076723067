"""Deny rules: permissions no grant may carry, whatever a ClusterRole or inline rule says (issue 31 §5).

The dangerous list refuses a fixed set unless the policy accepts it; deny rules are the platform
team's own list, with no opt-in: "never delete pods". They come from the policy (`spec.deny`) and from
the operator (the chart's `denyRules`, one list for every policy).

A deny rule matches a granted permission when they overlap at every position, which is stricter than
RBAC's coverage on purpose: a ClusterRole granting `*` on `*` carries `delete pods`, and so does one
granting `delete` on `pods` for one name. So an aggregated ClusterRole that gains `delete pods` through
a label, or a ClusterRole edited after the policy was written, is caught at grant time against its
live rules, as the dangerous list catches them (`ClusterRoleWidened`).

Checked at policy apply (inline rules here in `check_policy`, ClusterRoles and the cluster-wide rules
by the validating webhook against the live objects), in the policy's Ready condition, and at grant
time on the live rules, before anything is bound (`DenyRuleMatched`).

Pure: the handlers read the ClusterRoles and pass their rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from jitgrant.models import DenyRule, GrantPolicySpec, PolicyRule
from jitgrant.policy.rbac import WILDCARD, Permission, breakdown

CLUSTER_WIDE_ORIGIN = "denyRules"  # the chart value (operator flag --deny-rules)


@dataclass(frozen=True)
class NamedDeny:
    """A deny rule and where it was written: `spec.deny[0]` or `denyRules[0]` (cluster-wide)."""

    origin: str
    rule: DenyRule

    @property
    def name(self) -> str:
        where = "the operator's cluster-wide deny rule" if self.origin.startswith(CLUSTER_WIDE_ORIGIN) else ""
        return f"{where} {self.origin}".strip()


def deny_rules_for(policy: GrantPolicySpec, cluster_wide: Sequence[DenyRule] = ()) -> tuple[NamedDeny, ...]:
    """The policy's own deny rules, then the operator's."""
    return tuple(NamedDeny(f"spec.deny[{i}]", rule) for i, rule in enumerate(policy.deny)) + tuple(
        NamedDeny(f"{CLUSTER_WIDE_ORIGIN}[{i}]", rule) for i, rule in enumerate(cluster_wide)
    )


def _plain_overlap(entries: Sequence[str], value: str) -> bool:
    return value == WILDCARD or WILDCARD in entries or value in entries


def _resource_overlap(entry: str, resource: str) -> bool:
    if WILDCARD in (entry, resource):
        return True  # a bare "*" is every resource and every subresource
    base, _, sub = entry.partition("/")
    other_base, _, other_sub = resource.partition("/")
    return sub == other_sub and (WILDCARD in (base, other_base) or base == other_base)


def denies(rule: DenyRule, permission: Permission) -> bool:
    """Whether the granted permission includes something the deny rule forbids."""
    names = not rule.resource_names or permission.resource_name is None
    return (
        _plain_overlap(rule.api_groups, permission.api_group)
        and _plain_overlap(rule.verbs, permission.verb)
        and any(_resource_overlap(entry, permission.resource) for entry in rule.resources)
        and (names or permission.resource_name in rule.resource_names)
    )


def applies_in(rule: DenyRule, namespaces: Iterable[str]) -> bool:
    """Whether the rule applies to a grant that may land in any of `namespaces` ("*": anywhere)."""
    if not rule.namespaces:
        return True
    return any(namespace == WILDCARD or namespace in rule.namespaces for namespace in namespaces)


@dataclass(frozen=True)
class DenyMatch:
    deny: NamedDeny
    permission: Permission


def deny_matches(
    rules: Iterable[PolicyRule], denied: Sequence[NamedDeny], namespaces: Iterable[str]
) -> tuple[DenyMatch, ...]:
    """Each (deny rule, granted permission) pair that meets, first permission per deny rule."""
    where = tuple(namespaces)
    applicable = [deny for deny in denied if applies_in(deny.rule, where)]
    found: dict[str, DenyMatch] = {}
    for rule in rules:
        for permission in breakdown(rule):
            for deny in applicable:
                if deny.origin not in found and denies(deny.rule, permission):
                    found[deny.origin] = DenyMatch(deny, permission)
    return tuple(found.values())


def _permission_text(permission: Permission) -> str:
    group = permission.api_group or '""'
    name = f" named {permission.resource_name}" if permission.resource_name is not None else ""
    return f"{permission.verb} {permission.resource}{name} (apiGroup {group})"


def deny_reason(
    *, subject: str, rules: Iterable[PolicyRule], denied: Sequence[NamedDeny], namespaces: Iterable[str]
) -> str | None:
    """Why `subject` (a ClusterRole or the inline rules of a grants entry) may not be granted; None if
    it carries nothing a deny rule forbids. Names each rule and the permission that met it."""
    matches = deny_matches(rules, denied, namespaces)
    if not matches:
        return None
    found = "; ".join(
        f"{_permission_text(m.permission)} meets {m.deny.name} ({m.deny.rule.describe()})" for m in matches
    )
    return (
        f"{subject} carries permissions a deny rule forbids: {found}. Deny rules have no opt-in: narrow "
        f"{subject}, or name another ClusterRole"
    )


def _where(spec: GrantPolicySpec) -> tuple[str, ...]:
    """Where the policy's grants may land, as deny rules' namespaces are held against: a selector may
    select any non-system namespace."""
    return (*spec.namespaces, WILDCARD) if spec.namespace_selector is not None else spec.namespaces


def inline_deny_problems(spec: GrantPolicySpec, cluster_wide: Sequence[DenyRule] = ()) -> tuple[str, ...]:
    """The policy's inline rules held against its deny rules (and the operator's), per grants entry."""
    denied = deny_rules_for(spec, cluster_wide)
    problems: list[str] = []
    for index, option in enumerate(spec.grants):
        if option.rules is None:
            continue
        reason = deny_reason(
            subject=f"spec.grants[{index}].rules",
            rules=option.rules,
            denied=denied,
            namespaces=_where(spec),
        )
        if reason is not None:
            problems.append(reason)
    return tuple(problems)


def cluster_role_deny_problems(
    spec: GrantPolicySpec, roles: Mapping[str, Sequence[PolicyRule]], cluster_wide: Sequence[DenyRule] = ()
) -> tuple[str, ...]:
    """The live rules of each ClusterRole the policy names (those found) held against the deny rules."""
    denied = deny_rules_for(spec, cluster_wide)
    problems: list[str] = []
    for index, option in enumerate(spec.grants):
        role = option.cluster_role
        if role is None or role not in roles:
            continue
        reason = deny_reason(
            subject=f"ClusterRole '{role}' (spec.grants[{index}])",
            rules=roles[role],
            denied=denied,
            namespaces=_where(spec),
        )
        if reason is not None:
            problems.append(reason)
    return tuple(problems)


def grant_deny_reason(
    *,
    policy: GrantPolicySpec,
    cluster_wide: Sequence[DenyRule],
    namespace: str,
    cluster_role: str | None,
    rules: Sequence[PolicyRule],
) -> str | None:
    """At grant time: the rules about to be granted in `namespace` (a ClusterRole's as read now, or the
    request's inline rules) held against the deny rules."""
    subject = f"ClusterRole '{cluster_role}'" if cluster_role is not None else "the requested rules"
    return deny_reason(
        subject=subject, rules=rules, denied=deny_rules_for(policy, cluster_wide), namespaces=(namespace,)
    )


def apply_deny_refusal(
    spec: GrantPolicySpec, roles: Mapping[str, Sequence[PolicyRule]], cluster_wide: Sequence[DenyRule] = ()
) -> str | None:
    """At policy apply: the ClusterRoles' live rules (those the webhook could read) and the inline rules
    held against the policy's and the operator's deny rules; None when nothing meets one."""
    problems = inline_deny_problems(spec, cluster_wide) + cluster_role_deny_problems(
        spec, roles, cluster_wide
    )
    return "; ".join(problems) if problems else None


_RULES = TypeAdapter(tuple[DenyRule, ...])


def _location(loc: Sequence[int | str]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def parse_deny_rules(text: str) -> tuple[DenyRule, ...]:
    """The operator's cluster-wide deny rules from their JSON (the chart renders `denyRules` so);
    ValueError naming the rule and field that is wrong, and what is accepted."""
    example = '[{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]'
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--deny-rules is not JSON ({error}); give a list of rules, e.g. {example}"
        ) from error
    try:
        return _RULES.validate_python(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"denyRules{_location(item['loc'])}: {item['msg']}"
            for item in error.errors(include_url=False)[:5]
        )
        raise ValueError(f"--deny-rules: {problems} (accepted: a list of rules, e.g. {example})") from error
