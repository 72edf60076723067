"""Kubernetes RBAC rule semantics: when does one set of rules cover another?

This follows the API server's escalation check (`policy_comparator.go` in k8s.io/component-helpers),
which is stricter than the authorizer's matching and is the right question for "may this request
be granted under that policy": every requested rule is broken down into atomic permissions (one API
group, one resource, one verb, one name or every name) and each must be covered by a single policy
rule, where a policy entry covers a requested entry if it is equal to it or is "*":

- apiGroups and verbs: "*" covers anything; otherwise exact, case-sensitive equality.
- resources: "*" covers every resource and every subresource; "*/scale" covers the scale
  subresource of every resource; "deployments" does NOT cover "deployments/scale". There is no
  "deployments/*" form: RBAC treats it as a literal string.
- resourceNames: an empty list means every name. A requested rule without resourceNames asks for
  every name, so only a policy rule without resourceNames covers it.
- A requested "*" asks for everything at that position, so only a policy "*" there covers it.

Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jitgrant.models import PolicyRule

WILDCARD = "*"

# A resource entry RBAC can match: "*", "name", "*/sub" or "name/sub". Anything else ("pods/*",
# "*/*", "a/b/c", "/status") matches no real request through the URL path, and the escalation check
# and the authorizer disagree on some of them, so requests carrying them are refused as malformed.
_RESOURCE_ENTRY = re.compile(r"(\*|[^/*]+)(/[^/*]+)?")


@dataclass(frozen=True)
class Permission:
    """One atomic permission a rule grants.

    `resource` may name a subresource ("deployments/scale"); `resource_name` None means every name
    (the rule listed no resourceNames).
    """

    api_group: str
    resource: str
    verb: str
    resource_name: str | None = None


def breakdown(rule: PolicyRule) -> tuple[Permission, ...]:
    """Every atomic permission the rule grants, in the rule's own order, without duplicates."""
    names: tuple[str | None, ...] = rule.resource_names or (None,)
    atoms = (
        Permission(api_group=group, resource=resource, verb=verb, resource_name=name)
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
        for name in names
    )
    return tuple(dict.fromkeys(atoms))


def group_covers(rule: PolicyRule, api_group: str) -> bool:
    return WILDCARD in rule.api_groups or api_group in rule.api_groups


def verb_covers(rule: PolicyRule, verb: str) -> bool:
    return WILDCARD in rule.verbs or verb in rule.verbs


def resource_covers(rule: PolicyRule, resource: str) -> bool:
    if WILDCARD in rule.resources or resource in rule.resources:
        return True
    _, slash, subresource = resource.partition("/")
    return bool(slash) and f"*/{subresource}" in rule.resources


def name_covers(rule: PolicyRule, resource_name: str | None) -> bool:
    if not rule.resource_names:
        return True
    return resource_name is not None and resource_name in rule.resource_names


def rule_covers(rule: PolicyRule, permission: Permission) -> bool:
    """Whether this one rule grants the whole atomic permission."""
    return (
        group_covers(rule, permission.api_group)
        and resource_covers(rule, permission.resource)
        and verb_covers(rule, permission.verb)
        and name_covers(rule, permission.resource_name)
    )


def covering_rules(granted: Iterable[PolicyRule], permission: Permission) -> tuple[PolicyRule, ...]:
    return tuple(rule for rule in granted if rule_covers(rule, permission))


def uncovered_permissions(
    granted: Sequence[PolicyRule], requested: Iterable[PolicyRule]
) -> tuple[Permission, ...]:
    """The atomic permissions of `requested` that no single rule of `granted` covers."""
    atoms = dict.fromkeys(atom for rule in requested for atom in breakdown(rule))
    return tuple(atom for atom in atoms if not covering_rules(granted, atom))


def rules_cover(granted: Sequence[PolicyRule], requested: Iterable[PolicyRule]) -> bool:
    """Whether `granted` grants everything `requested` grants (RBAC semantics, see module doc)."""
    return not uncovered_permissions(granted, requested)


def _group_ok(group: str) -> bool:
    return WILDCARD not in group or group == WILDCARD


def _resource_ok(resource: str) -> bool:
    return _RESOURCE_ENTRY.fullmatch(resource) is not None


def _verb_ok(verb: str) -> bool:
    return bool(verb) and (WILDCARD not in verb or verb == WILDCARD)


def _name_ok(name: str | None) -> bool:
    return name is None or (bool(name) and WILDCARD not in name)


def well_formed(permission: Permission) -> bool:
    """Whether every entry of the permission means what RBAC would match (see malformed_entries)."""
    return (
        _group_ok(permission.api_group)
        and _resource_ok(permission.resource)
        and _verb_ok(permission.verb)
        and _name_ok(permission.resource_name)
    )


def malformed_entries(rule: PolicyRule) -> tuple[str, ...]:
    """Why a requested rule cannot be read as RBAC means it, one sentence per bad entry."""
    problems: list[str] = []
    problems += [
        f"apiGroup '{group}' is not valid RBAC: '*' only stands alone"
        for group in rule.api_groups
        if not _group_ok(group)
    ]
    problems += [
        f"resource '{resource}' is not valid RBAC: write 'resource', 'resource/subresource', "
        "'*' or '*/subresource' (there is no 'resource/*')"
        for resource in rule.resources
        if not _resource_ok(resource)
    ]
    problems += [
        f"verb '{verb}' is not valid RBAC: a verb is a word or '*' alone"
        for verb in rule.verbs
        if not _verb_ok(verb)
    ]
    problems += [
        f"resourceNames entry '{name}' names no object (names do not glob); "
        "leave resourceNames out to ask for every name"
        for name in rule.resource_names
        if not _name_ok(name)
    ]
    return tuple(problems)
