"""Is the requested scope (a ClusterRole, or inline rules) within the policy's grants, and if not,
what exactly is missing and what the policy would allow instead?

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from jitgrant.models import AccessRequestSpec, GrantPolicySpec, PolicyRule
from jitgrant.policy.dangerous import DangerousPart, dangerous_parts, names_literally
from jitgrant.policy.rbac import (
    WILDCARD,
    Permission,
    breakdown,
    covering_rules,
    group_covers,
    malformed_entries,
    resource_covers,
    verb_covers,
    well_formed,
)


def _join(items: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(items))


def _quoted(items: Sequence[str]) -> str:
    return ", ".join(f"'{item}'" for item in dict.fromkeys(items))


def resource_text(api_group: str, resource: str) -> str:
    """kubectl's spelling: "pods", "deployments.apps", "deployments.apps/scale"."""
    base, slash, subresource = resource.partition("/")
    text = base if api_group in ("", WILDCARD) else f"{base}.{api_group}"
    text += f"{slash}{subresource}"
    return f"{text} (any API group)" if api_group == WILDCARD else text


def _target_text(permission: Permission) -> str:
    text = resource_text(permission.api_group, permission.resource)
    if permission.resource_name is not None:
        text += f" named '{permission.resource_name}'"
    return text


def policy_cluster_roles(policy: GrantPolicySpec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(option.cluster_role for option in policy.grants if option.cluster_role))


def policy_rules(policy: GrantPolicySpec) -> tuple[PolicyRule, ...]:
    """The union of the policy's inline rules: a request may combine permissions from several."""
    return tuple(rule for option in policy.grants for rule in option.rules or ())


def granting_rules(granted: Sequence[PolicyRule], permission: Permission) -> tuple[PolicyRule, ...]:
    """Policy rules that grant the permission, naming each of its dangerous parts literally."""
    parts = dangerous_parts(permission)
    return tuple(
        rule
        for rule in covering_rules(granted, permission)
        if all(names_literally(rule, part) for part in parts)
    )


@dataclass
class _Gaps:
    """Uncovered permissions grouped so one reason names all verbs that failed for the same cause."""

    policy_name: str
    resources: dict[tuple[str, str], None] = field(default_factory=dict)
    verbs: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def missing_resource(self, permission: Permission) -> None:
        self.resources[(permission.api_group, permission.resource)] = None

    def add(self, *, verb: str, subject: str, predicate: str) -> None:
        """Record "<verb> on <subject> is <predicate>"; verbs with the same subject and predicate merge."""
        self.verbs.setdefault((subject, predicate), [])
        if verb not in self.verbs[(subject, predicate)]:
            self.verbs[(subject, predicate)].append(verb)

    def reasons(self, granted: Sequence[PolicyRule]) -> tuple[str, ...]:
        allowed = _join(
            [
                resource_text(group, resource)
                for rule in granted
                for group in rule.api_groups
                for resource in rule.resources
            ]
        )
        out = [
            f"resource '{resource_text(group, resource)}' is not in policy {self.policy_name} "
            f"(allowed: {allowed})"
            for group, resource in self.resources
        ]
        for (subject, predicate), verbs in self.verbs.items():
            noun, be = ("verb", "is") if len(verbs) == 1 else ("verbs", "are")
            out.append(f"{noun} {_quoted(verbs)} on {subject} {be} {predicate}")
        return tuple(out)


def _dangerous_predicate(policy_name: str, parts: Sequence[DangerousPart]) -> str:
    named = " and ".join(
        f"{part.position} '{part.entry}'"
        + (f" with verb '{part.verb}'" if part.verb else "")
        + f" ({part.why})"
        for part in parts
    )
    return (
        f"dangerous and policy {policy_name} covers it only through a wildcard; "
        f"it is granted only where a policy rule names {named} literally"
    )


def _record_gap(gaps: _Gaps, granted: Sequence[PolicyRule], permission: Permission) -> None:
    """Say which part of the permission the policy lacks, checking the broadest cause first."""
    name = gaps.policy_name
    covering = covering_rules(granted, permission)
    if covering:
        parts = dangerous_parts(permission)
        missing = [p for p in parts if not any(names_literally(rule, p) for rule in covering)] or parts
        predicate = _dangerous_predicate(name, missing)
        gaps.add(verb=permission.verb, subject=_target_text(permission), predicate=predicate)
        return
    on_resource = [
        rule
        for rule in granted
        if group_covers(rule, permission.api_group) and resource_covers(rule, permission.resource)
    ]
    if not on_resource:
        gaps.missing_resource(permission)
        return
    with_verb = [rule for rule in on_resource if verb_covers(rule, permission.verb)]
    if not with_verb:
        verbs = _join([verb for rule in on_resource for verb in rule.verbs])
        predicate = f"not in policy {name} (allowed: {verbs})"
        gaps.add(verb=permission.verb, subject=_target_text(permission), predicate=predicate)
        return
    names = _join([n for rule in with_verb for n in rule.resource_names])
    subject = _target_text(permission)
    if permission.resource_name is None:
        subject += " (every name)"
    predicate = f"not in policy {name} (allowed names: {names})"
    gaps.add(verb=permission.verb, subject=subject, predicate=predicate)


def inline_rule_reasons(
    *, policy_name: str, granted: Sequence[PolicyRule], requested: Sequence[PolicyRule]
) -> tuple[str, ...]:
    """Why the requested rules are not within the policy's rules; empty when they are."""
    reasons: list[str] = []
    gaps = _Gaps(policy_name)
    for rule in requested:
        reasons.extend(malformed_entries(rule))
        for permission in breakdown(rule):
            # A malformed entry is reported once above; a "not in policy" reason would only confuse.
            if well_formed(permission) and not granting_rules(granted, permission):
                _record_gap(gaps, granted, permission)
    return tuple(dict.fromkeys([*reasons, *gaps.reasons(granted)]))


def scope_reasons(
    *, policy_name: str, policy: GrantPolicySpec, request: AccessRequestSpec, inline_rules_enabled: bool
) -> tuple[str, ...]:
    """Why the requested ClusterRole or inline rules are not grantable under the policy."""
    cluster_roles = policy_cluster_roles(policy)
    roles_text = (
        f"allowed ClusterRoles: {_join(cluster_roles)}" if cluster_roles else "it allows no ClusterRoles"
    )
    if request.cluster_role is not None:
        if request.cluster_role in cluster_roles:
            return ()
        if cluster_roles:
            return (
                f"ClusterRole '{request.cluster_role}' is not in policy {policy_name} "
                f"(allowed: {_join(cluster_roles)})",
            )
        return (
            f"ClusterRole '{request.cluster_role}' is not in policy {policy_name} "
            "(it allows no ClusterRoles, only inline rules)",
        )
    requested = request.rules or ()
    if not inline_rules_enabled:
        return (
            f"inline rules are refused because the operator's inline-rules mode is off; "
            f"request a ClusterRole instead (policy {policy_name}: {roles_text})",
        )
    granted = policy_rules(policy)
    if not granted:
        return (f"policy {policy_name} allows no inline rules ({roles_text})",)
    return inline_rule_reasons(policy_name=policy_name, granted=granted, requested=requested)


def describe_scope(request: AccessRequestSpec) -> str:
    """A short human line for tables and events: the spec's own `scope_text()`."""
    return request.scope_text()
